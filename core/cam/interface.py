"""What a map method is: a function of one :class:`Context`, registered once as a :class:`Method` that says what it
needs, what it costs, whether it can run live and which numbers (:class:`Tunable`) a person may set.

The pages, the command line, the benchmark and the metrics read these fields; none of them asks for a method by
name. The entries themselves are in :mod:`core.cam.methods`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..engine import PassResult


class NotApplicable(ValueError):
    """A method that is not defined for this model/layer; ``str(err)`` says why in one sentence."""


@dataclass
class Context:
    """Everything a method may read to draw one map.

    Attributes:
        result: the engine's cached pass for the photo and class (every layer's activations and gradients).
        layer: the explained layer (a key of ``result.acts``); for a method whose map has a place of its own,
            that place (:attr:`Method.layer`).
        engine: the engine, for methods that read the model's weights or run passes of their own.
        rgb: the photo, (H, W, 3) uint8, for methods that run passes of their own.
        progress: called with the fraction done (0..1) by methods that run passes of their own.
        options: values of the method's tunables by :attr:`Tunable.name`; one missing or None takes the
            tunable's default (:meth:`Method.run` fills them in).
        passes: the forward passes the method ran for this map (it counts them here).
        notes: sentences the method has to say about this map (integrated gradients: how complete its sum is);
            the pages show them under the map, the command line prints them.
    """

    result: PassResult
    layer: str
    engine: Any = None
    rgb: np.ndarray | None = None
    progress: Callable[[float], None] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    passes: int = 0
    notes: list = field(default_factory=list)

    @property
    def acts(self) -> np.ndarray:
        """The layer's activations, (h, w, c)."""
        return self.result.acts[self.layer]

    @property
    def grads(self) -> np.ndarray:
        """The gradients of the class logit at the layer, (h, w, c)."""
        return self.result.grads[self.layer]


@dataclass(frozen=True)
class Tunable:
    """A number a method takes, and how the pages and the command line offer it.

    Attributes:
        name: its key in :attr:`Context.options` and the keyword of :func:`core.cam.explain.explain`; the command
            line's flag is ``--name`` with dashes (:attr:`flag`), the pages' widget key ends in :attr:`key`.
        label: the pages' widget label.
        help: the pages' widget help.
        cli_help: the command line's help.
        default: the value when none is given (None: the method's own choice, e.g. every channel).
        page_default: the pages' starting value.
        low, high, step: the pages' widget range.
        minimum: the command line refuses less (None: any value).
        choices: for a named choice instead of a number (e.g. a baseline image): the values offered; ``default``
            and ``page_default`` are then one of them, and ``low``/``high``/``step`` are unused.
    """

    name: str
    label: str
    help: str
    cli_help: str
    default: int | str | None
    page_default: int | str
    low: int = 0
    high: int = 0
    step: int = 1
    minimum: int | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def key(self) -> str:
        return self.name.replace("_", "")


@dataclass(frozen=True)
class Method:
    """One map method, registered once: what the pages, the CLI, the benchmark and the docs need to know about it.

    Attributes:
        name: the key (CLI ``--method``, the URL's ``method=``).
        title: the name people know it by.
        summary: its idea in one line.
        paper: authors, title and year.
        url: where the paper is.
        fn: ``fn(ctx) -> map``: the raw map, float64, after the method's own ReLU/combination, before any
            upsampling or normalisation.
        on_pass: ``on_pass(A, G) -> map`` where the method is a function of one layer's activations and gradients
            alone (``fn`` calls it); None otherwise.
        needs_model: reads the model beyond the cached pass (the classifier's weights, or forward passes).
        extra_passes: runs forward passes of its own (slow): pages run it once per view, never on a redraw.
        needs_gap_dense: applies only at a layer that feeds global average pooling → Dense (NotApplicable elsewhere).
        live: cheap enough to redraw on every change and every camera frame.
        progress: reports its progress through :attr:`Context.progress` (pages show a bar).
        layer: where its map is when it is not at the chosen layer (``"input"``: the model input's resolution);
            None for a map at the chosen layer.
        pixels: the map has the model input's resolution (every method with ``layer="input"``, and those that
            combine a layer's map with one at the input, like Guided Grad-CAM).
        reading: how to read its colours in one line, where they are not "the class's evidence, strongest
            brightest" (e.g. a gradient's magnitude); pages show it under the map.
        signed: its map has both signs (negative: evidence against), drawn on a diverging scale; every other map
            is non-negative, after the method's own ReLU or magnitude.
        family: what the map measures, for the pages' tables: ``"CAM"`` (weights one layer's channels: a coarse
            map at the layer that follows the class), ``"gradients"`` (how the class score changes with each input
            pixel) or ``"perturbation"`` (how the score drops when parts of the photo are hidden).
        pages: offered by the pages' method lists (sidebar, Compare, Measure, Learn); occlusion has a page of
            its own.
        tunables: the numbers a person may set.
    """

    name: str
    title: str
    summary: str
    paper: str
    url: str
    fn: Callable[[Context], np.ndarray] = field(repr=False, compare=False)
    on_pass: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)
    needs_model: bool = False
    extra_passes: bool = False
    needs_gap_dense: bool = False
    live: bool = True
    progress: bool = False
    layer: str | None = None
    pixels: bool = False
    reading: str = ""
    signed: bool = False
    family: str = "CAM"
    pages: bool = True
    tunables: tuple[Tunable, ...] = ()

    def run(self, ctx: Context) -> np.ndarray:
        """The raw map for ``ctx``, its options completed with the tunables' defaults (``ctx.passes`` counts the
        passes it ran).

        Raises:
            ValueError: ``ctx.layer`` is not in the pass (for a map at the chosen layer); NotApplicable.
        """
        if self.layer is None and ctx.layer not in ctx.result.acts:
            raise ValueError(f"unknown layer {ctx.layer!r}")
        given = {k: v for k, v in ctx.options.items() if v is not None}
        ctx.options = {**{t.name: t.default for t in self.tunables}, **given}
        return self.fn(ctx)

    def display(self, cam: np.ndarray) -> dict:
        """How its map is coloured — ``signed`` (the diverging scale) and ``vmax`` (the display top: the 99.5th
        percentile of a map at the model input's resolution, else None, its maximum) — as keywords of
        :func:`core.imaging.render.overlay`: the pages and ``explain --out`` alike."""
        from ..imaging import render

        return {"signed": self.signed, "vmax": render.pixel_scale(cam) if self.pixels else None}

    def page_options(self) -> dict:
        """The tunables' starting values on the pages, by name."""
        return {t.name: t.page_default for t in self.tunables}


def of_pass(name: str, title: str, summary: str, paper: str, url: str,
            on_pass: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Method:
    """The entry of a method computed from one layer's activations and gradients alone: free given the cached pass,
    live, at any layer."""
    return Method(name, title, summary, paper, url, fn=lambda ctx: on_pass(ctx.acts, ctx.grads), on_pass=on_pass)


SEED = Tunable("seed", "Random seed", "Which random draws the method makes (RISE's masks, SmoothGrad's noise): the "
               "same seed gives the same map.", "seed of the method's random draws (RISE's masks, SmoothGrad's noise)",
               default=0, page_default=0, low=0, high=9999, step=1, minimum=0)
