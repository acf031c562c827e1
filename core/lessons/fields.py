"""The lesson file's fields, read one at a time: each reader checks a value and, when it is wrong, adds one line to
the file's problems (:class:`Problems`) and returns a default, so one load reports every problem at once. The
exercise kinds' settings (``params``) are read here too (:func:`params`; docs/lessons.md lists them)."""
from __future__ import annotations

import math
from pathlib import Path

KINDS = ("predict_box", "earliest_layer", "flip_mask", "choice", "value")
CHOICE_COMPUTE = ("sanity", "fooled", "points_at")  # a choice's answer computed by the studio
VALUE_COMPUTE = ("top1_prob", "class_prob", "prob_after_mask", "prob_after_hottest")
FOOLED_METRICS = ("energy", "iou", "pointing")  # localisation figures against the object's box: no passes
LAYER_RULES = ("stays", "first")
NEEDS = ("trained",)  # what an optional exercise needs from the session


class Problems:
    """Collects one line per problem of one file."""

    def __init__(self, path: Path):
        self.name, self.lines = str(path), []

    def add(self, where: str, name: str, message: str) -> None:
        self.lines.append(f"{self.name}: {where}: field '{name}': {message}".replace("\n", " "))


def text(table: dict, key: str, probs: Problems, where: str, required: bool = True, default: str = "") -> str:
    value = table.get(key)
    if value is None:
        if required:
            probs.add(where, key, "missing")
        return default
    if not isinstance(value, str) or (required and not value.strip()):
        probs.add(where, key, f"must be a non-empty string, not {value!r}"[:160])
        return default
    return value


def number(value, probs: Problems, where: str, name: str, low: float, high: float, integer: bool = False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        probs.add(where, name, f"must be {kind} from {low:g} to {high:g}, not {value!r}"[:160])
        return None
    return value


def strings(value, probs: Problems, where: str, name: str, least: int = 0) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value) or len(value) < least:
        probs.add(where, name, f"must be a list of at least {max(least, 1)} non-empty strings")
        return ()
    return tuple(value)


def params(kind: str, raw: dict, ex: dict, spec, photo_labels, probs: Problems, where: str) -> dict:
    """The check's settings with their defaults, each one checked (see docs/lessons.md)."""
    from ..cam import methods, occlusion
    from ..metrics import baselines

    def num(key, default, low, high, integer=False):
        return default if key not in raw else number(raw[key], probs, where, f"params.{key}", low, high, integer)

    def label_ok(key):
        value = raw.get(key)
        if value is not None and value not in photo_labels:
            probs.add(where, f"params.{key}", f"no box labelled {value!r} for this photo "
                      f"(labels: {', '.join(photo_labels) or 'none'})")

    def box_ok(key):
        b = raw.get(key)
        if b is None:
            return
        if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            for v in b) and 0 <= b[0] < b[2] <= 1
                and 0 <= b[1] < b[3] <= 1):
            probs.add(where, f"params.{key}", "must be [x0, y0, x1, y1], fractions of the width and height "
                      "with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")

    def no_box():
        if "box" not in raw and not photo_labels:
            probs.add(where, "photo", "has no object box (assets/boxes.toml or boxes.toml beside the lesson); "
                      "give params.box")

    def maps_ok(n_options):
        maps = raw.get("maps")
        good = [*methods.EVERY, *baselines.BASELINES]
        if not isinstance(maps, list) or len(maps) != n_options:
            probs.add(where, "params.maps", f"must list one map (a method or {', '.join(baselines.BASELINES)}) "
                      "per option")
        else:
            for m in maps:
                if m not in good:
                    probs.add(where, "params.maps", f"unknown method {m!r}; choose from {', '.join(good)}")

    out: dict = {}
    allowed: set = set()
    if kind == "predict_box":
        allowed = {"threshold"}
        out["threshold"] = num("threshold", 0.5, 0.01, 1.0)
    elif kind == "earliest_layer":
        allowed = {"tolerance", "rule", "object", "box"}
        out["tolerance"] = num("tolerance", 1, 0, 100, integer=True)
        out["rule"] = raw.get("rule", "stays")
        if out["rule"] not in LAYER_RULES:
            probs.add(where, "params.rule", f"must be one of {', '.join(LAYER_RULES)}")
        label_ok("object"), box_ok("box")
        no_box()
    elif kind == "flip_mask":
        allowed = {"max_share", "fill"}
        out["max_share"] = num("max_share", 0.25, 0.001, 1.0)
        out["fill"] = raw.get("fill", "gray")
        if out["fill"] not in occlusion.FILLS:
            probs.add(where, "params.fill", f"must be one of {', '.join(occlusion.FILLS)}")
    elif kind == "choice":
        allowed = {"options", "answer", "compute", "maps", "metric", "labels", "threshold", "object", "box", "needs"}
        options = strings(raw.get("options"), probs, where, "params.options", least=2)
        answer, compute = raw.get("answer"), raw.get("compute")
        if (answer is None) == (compute is None):
            probs.add(where, "params.answer", "give either a fixed answer (an option's index from 0) or compute")
        elif answer is not None and options:
            number(answer, probs, where, "params.answer", 0, len(options) - 1, integer=True)
        elif compute is not None and compute not in CHOICE_COMPUTE:
            probs.add(where, "params.compute", f"unknown {compute!r}; choose one of {', '.join(CHOICE_COMPUTE)}")
        elif compute in ("sanity", "fooled") and options:
            maps_ok(len(options))
            if compute == "fooled" and raw.get("metric") not in FOOLED_METRICS:
                probs.add(where, "params.metric", f"must be one of {', '.join(FOOLED_METRICS)}")
        elif compute == "points_at" and options:
            labels = raw.get("labels", list(options))
            if not isinstance(labels, list) or len(labels) != len(options):
                probs.add(where, "params.labels", "must give one box label per option")
            else:
                for lab in labels:
                    if lab not in photo_labels:
                        probs.add(where, "params.labels", f"no box labelled {lab!r} for this photo "
                                  f"(labels: {', '.join(photo_labels) or 'none'})")
            out["labels"] = labels
        if compute == "fooled":
            label_ok("object"), box_ok("box")
            no_box()
            out["threshold"] = num("threshold", 0.5, 0.01, 1.0)
        if raw.get("needs") is not None and raw.get("needs") not in NEEDS:
            probs.add(where, "params.needs", f"must be one of {', '.join(NEEDS)}")
        out["options"] = options
    elif kind == "value":
        allowed = {"compute", "tolerance", "unit", "object", "box", "percent", "fill"}
        compute = raw.get("compute")
        if compute not in VALUE_COMPUTE:
            probs.add(where, "params.compute", f"must be one of {', '.join(VALUE_COMPUTE)}, not {compute!r}")
        if "tolerance" not in raw:
            probs.add(where, "params.tolerance", "missing")
        out["tolerance"] = num("tolerance", 0.0, 0.0, 1e9)
        out["unit"] = raw.get("unit", "")
        if out["unit"] not in ("", "%"):
            probs.add(where, "params.unit", "must be '' (a probability 0..1) or '%' (percent)")
        if compute == "prob_after_mask":
            label_ok("object"), box_ok("box")
            if "object" not in raw and "box" not in raw:
                probs.add(where, "params.box", "prob_after_mask needs the region to gray out: box or object")
        if compute == "prob_after_hottest":
            out["percent"] = num("percent", None, 0.1, 100.0) if "percent" in raw else None
            if "percent" not in raw:
                probs.add(where, "params.percent", "missing")
        out["fill"] = raw.get("fill", "gray")
        if out["fill"] not in occlusion.FILLS:
            probs.add(where, "params.fill", f"must be one of {', '.join(occlusion.FILLS)}")
    for key in sorted(set(raw) - allowed):
        probs.add(where, f"params.{key}", f"not a setting of {kind}")
    return {**raw, **out}
