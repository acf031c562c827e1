"""A view as a link: model, sample photo, layer, class, method and alpha as URL query parameters.

``?model=efficientnet_lite0&sample=cat_and_dog&layer=top_activation&class=285&method=gradcam&alpha=0.45``
(``sample``: a bundled photo's file stem; ``class``: the class index). :func:`parse` checks each part
against the registries and keeps only what is valid; what it ignores it says in one line, and that
part opens with its default. :func:`to_params` is the other direction, for the URL to follow the view.

A link comes from anyone: the line shows at most :data:`MAX_SHOWN` characters of a value (cut with "…"), its
control characters escaped, inside a Markdown code span with its backticks replaced, so the sidebar (which
renders Markdown) shows it as it is: no link, image, HTML, emphasis or formula of the URL's making.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from .cam import methods
from .models import REGISTRY
from .safetext import printable

KEYS = ("model", "sample", "layer", "class", "method", "alpha")
MAX_SHOWN = 100


@dataclass(frozen=True)
class View:
    """The parts of a view a link sets (None: not set, the default applies)."""

    model: str | None = None
    sample: str | None = None
    layer: str | None = None
    class_index: int | None = None
    method: str | None = None
    alpha: float | None = None
    ignored: tuple[str, ...] = field(default=())

    @property
    def message(self) -> str | None:
        """One line of Markdown saying what the link asked for that does not exist (None when nothing was ignored);
        each value from the link is a code span (:func:`shown`)."""
        if not self.ignored:
            return None
        return "Ignored from the link, showing the default instead: " + "; ".join(self.ignored) + "."


def shown(value: str) -> str:
    """``value`` as an inline code span: at most :data:`MAX_SHOWN` characters (cut with "…"), control and format
    characters as ``\\x1b``-style escapes, backticks as ``'`` (a span cannot be closed early; nothing inside one
    is Markdown)."""
    text = printable(value[:MAX_SHOWN]).replace("`", "'")
    if len(value) > MAX_SHOWN or len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN - 1] + "…"
    return f"`{text}`"


def _first(value) -> str:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return str(value).strip()


def parse(params: Mapping[str, object], samples, default_model: str, num_classes: int = 1000) -> View:
    """The valid parts of a link's query parameters.

    Args:
        params: query parameters (a value may be a list: the last one counts).
        samples: the bundled photos' file stems.
        default_model: the model whose layers a ``layer`` is checked against when the link names no model.
        num_classes: the number of classes of the model.
    """
    got = {k: _first(params[k]) for k in KEYS if k in params and _first(params[k]) != ""}
    ignored, out = [], {}
    for key, valid in (("model", REGISTRY), ("sample", samples), ("method", methods.REGISTRY)):
        if key in got:
            if got[key] in valid:
                out[key] = got[key]
            else:
                ignored.append(f"unknown {key} {shown(got[key])}")
    if "layer" in got:
        spec = REGISTRY[out.get("model", default_model)]
        if got["layer"] in spec.layers:
            out["layer"] = got["layer"]
        else:
            ignored.append(f"{spec.name} has no layer {shown(got['layer'])}")
    if "class" in got:
        try:
            c = int(got["class"])
            if not 0 <= c < num_classes:
                raise ValueError
            out["class_index"] = c
        except ValueError:
            ignored.append(f"class {shown(got['class'])} is not an index 0…{num_classes - 1}")
    if "alpha" in got:
        try:
            a = float(got["alpha"])
            if not (math.isfinite(a) and 0.0 <= a <= 1.0):
                raise ValueError
            out["alpha"] = round(a, 2)
        except ValueError:
            ignored.append(f"alpha {shown(got['alpha'])} is not a number from 0 to 1")
    return View(**out, ignored=tuple(ignored))


def to_params(model: str, sample: str | None, layer: str, class_index: int, method: str, alpha: float) -> dict:
    """The query parameters of a view (``sample`` None: an uploaded photo, which a link cannot carry)."""
    out = {"model": model}
    if sample is not None:
        out["sample"] = sample
    out.update({"layer": layer, "class": str(int(class_index)), "method": method, "alpha": f"{float(alpha):.2f}"})
    return out
