"""The computed side of an exercise (:func:`expected`) and the check of a learner's answer (:func:`check`).

:func:`expected` reads the engine's cached pass for the exercise's photo and class (one pass gives every layer), and
runs passes of its own only where the exercise needs them: the masked photos of ``value``'s ``prob_after_*`` (one
forward pass each) and the sanity check of ``choice``'s ``compute = "sanity"`` (a randomised copy of the model). Its
results are kept in one small bounded LRU (:data:`CACHE`) keyed by everything that changes them (the exercise's
fields and params, the photo's boxes, the model, the photo's pixels); nothing else is kept per process or per user.

:func:`check` is then cheap: arithmetic on the answer and the :class:`Expected`, except ``flip_mask``, which runs
one forward pass of the learner's masked photo, and a ``prob_after_mask`` value of an ``object`` that its box does
not accept, which runs the other rectangles over the object once (:func:`.covers.cover_range`, kept in
:data:`CACHE`).

Every map is the method's raw map upsampled (bilinear) to the photo and divided by its maximum (negatives as 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .boxes import boxes_for
from .lru import LRU
from .schema import Exercise, photo_box

CACHE_ENTRIES = 32
CACHE_BYTES = 96 * 2**20


@dataclass(frozen=True)
class Expected:
    """What the studio computed for an exercise: the class, the map at the photo's resolution (h, w, in [0, 1]),
    the answer (predict_box: the map's region box in fractions; earliest_layer: a layer name or None; choice: an
    option's index; value: a number in the exercise's unit; flip_mask: None) and the figures behind it."""

    kind: str
    class_index: int
    class_name: str
    map: np.ndarray | None = field(repr=False)
    answer: object
    detail: dict


@dataclass(frozen=True)
class Outcome:
    """A checked answer: ``correct`` None where there is no wrong answer (predict_box), ``score`` the figure stored
    (IoU, share of the photo, 1/0), ``feedback`` one or two sentences, ``detail`` the numbers behind them."""

    correct: bool | None
    score: float | None
    feedback: str
    detail: dict


CACHE = LRU(CACHE_ENTRIES, CACHE_BYTES)


def _key(ex: Exercise, engine, rgb: np.ndarray) -> tuple:
    from ..imaging import images

    params = tuple(sorted((k, repr(v)) for k, v in ex.params.items()))
    try:  # the photo's boxes, as the lesson's boxes file says now (an edited file changes the answers)
        boxes = tuple((b.label, b.box) for b in boxes_for(ex.photo, ex.folder))
    except ValueError as exc:  # a broken entry: the computation that needs it says so
        boxes = str(exc)
    return (ex.id, ex.kind, ex.photo, engine.spec.name, ex.layer, ex.class_index, ex.method, params,
            str(ex.folder), boxes, images.pixel_hash(rgb))


def unit_map(raw: np.ndarray, width: int, height: int) -> np.ndarray:
    """A raw map upsampled (bilinear) to width × height and divided by its maximum; negatives 0; float32."""
    from ..imaging import render

    up = np.maximum(render.upsample(raw, width, height), 0.0)
    top = float(up.max())
    return (up / top).astype(np.float32) if top > 0 else up.astype(np.float32)


def peak(unit: np.ndarray) -> tuple[float, float] | None:
    """The map's maximum (its first pixel in row order) as fractions (x, y) of the photo, at the pixel's centre;
    None for a map without positive values."""
    if unit.max() <= 0:
        return None
    y, x = np.unravel_index(int(np.argmax(unit)), unit.shape)
    return (float((x + 0.5) / unit.shape[1]), float((y + 0.5) / unit.shape[0]))


def inside(point, box) -> bool:
    return bool(point is not None and box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def region_box(unit: np.ndarray, threshold: float) -> tuple[float, float, float, float] | None:
    """The bounding box, in fractions, of the largest connected region where the map is ≥ threshold × its max
    (the ILSVRC/CAM protocol of :func:`core.metrics.localisation.cam_box`); None for an empty map."""
    from ..metrics import localisation

    b = localisation.cam_box(unit, threshold)
    h, w = unit.shape
    return None if b is None else (b[0] / w, b[1] / h, b[2] / w, b[3] / h)


def box_iou(a, b) -> float:
    from ..metrics import localisation

    return float(localisation.iou(a, b))


def _fraction_mask(box, width: int, height: int) -> np.ndarray:
    """Pixels whose centre lies inside a box given in fractions."""
    xc, yc = (np.arange(width) + 0.5) / width, (np.arange(height) + 0.5) / height
    return (((yc >= box[1]) & (yc <= box[3]))[:, None] & ((xc >= box[0]) & (xc <= box[2]))[None, :])


def _map_at(name: str, engine, res, layer: str, rgb: np.ndarray, width: int, height: int, progress=None):
    """A method's or a baseline's map for the photo, as :func:`unit_map`."""
    from ..cam import methods
    from ..metrics import baselines

    if name in baselines.BASELINES:  # edges at the model input's size, the others on the layer's grid
        gh, gw = (engine.spec.input_size,) * 2 if name == "edges" else engine.layer_shape(layer)[:2]
        raw = baselines.baseline(name, gh, gw, 0, rgb)
    else:
        raw = methods.compute(name, res, layer, engine=engine, rgb=rgb, progress=progress)
    return unit_map(raw, width, height)


def _prob(engine, rgb: np.ndarray, cls: int) -> tuple[float, int]:
    """p(cls) and the top-1 class of one photo: one forward pass."""
    p = engine.predict(engine.prepare(rgb))[0]
    return float(p[cls]), int(np.argmax(p))


def expected(exercise: Exercise, engine, rgb: np.ndarray, progress: Callable[[float], None] | None = None) -> Expected:
    """The studio's side of ``exercise`` on ``rgb`` with ``engine`` (kept in :data:`CACHE`; callers asking for
    the same missing entry at once wait for one computation)."""
    out = CACHE.get_or_make(_key(exercise, engine, rgb), lambda: _compute(exercise, engine, rgb, progress),
                            lambda e: 0 if e.map is None else e.map.nbytes)
    if progress:
        progress(1.0)
    return out


def _compute(ex: Exercise, engine, rgb: np.ndarray, progress) -> Expected:
    from ..cam import occlusion

    spec = engine.spec
    res = engine.run(rgb, ex.class_index)
    cls, name = res.class_index, spec.label(res.class_index)
    layer = ex.layer or spec.default_layer
    h, w = rgb.shape[:2]
    p = ex.params
    unit = _map_at(ex.method, engine, res, layer, rgb, w, h, None if ex.kind == "choice" else progress)
    detail: dict = {"layer": layer, "method": ex.method, "peak": peak(unit), "prob": float(res.probs[cls])}
    answer = None
    if ex.kind == "predict_box":
        answer = region_box(unit, p["threshold"])
        detail["threshold"] = p["threshold"]
    elif ex.kind == "earliest_layer":
        from ..cam import methods

        box = photo_box(None, ex)
        peaks = {}
        for L in spec.layers:
            peaks[L] = peak(unit_map(methods.compute(ex.method, res, L), w, h))
        hits = [inside(peaks[L], box) for L in spec.layers]
        if p["rule"] == "first":
            answer = next((L for L, hit in zip(spec.layers, hits) if hit), None)
        else:  # the earliest layer from which on every map's maximum stays inside the box
            answer = None
            for i in range(len(hits) - 1, -1, -1):
                if not hits[i]:
                    break
                answer = spec.layers[i]
        detail.update(box=box, peaks=peaks, inside=dict(zip(spec.layers, hits)), rule=p["rule"])
    elif ex.kind == "flip_mask":
        detail["top1"] = int(np.argmax(res.probs))
    elif ex.kind == "choice":
        answer, figures = _choice(ex, engine, res, layer, rgb, unit, progress)
        detail["figures"] = figures
    elif ex.kind == "value":
        what = p["compute"]
        if what == "top1_prob":
            value = float(res.probs.max())
        elif what == "class_prob":
            value = float(res.probs[cls])
        else:
            if what == "prob_after_mask":
                box = photo_box(None, ex)
                mask = _fraction_mask(box, w, h)
                detail["box"] = box
            else:
                mask = occlusion.top_fraction_mask(unit, p["percent"])
            value, top1 = _prob(engine, occlusion.apply_fill(rgb, mask, p["fill"]), cls)
            detail.update(share=float(mask.mean()), top1_after=top1, top1_after_name=spec.label(top1))
            # "gray out the dog": other rectangles over it give other figures (cover_range, asked by check)
            detail["covers"] = what == "prob_after_mask" and p.get("box") is None
        detail["probability"] = value
        answer = value * 100 if p["unit"] == "%" else value
    return Expected(ex.kind, cls, name, unit, answer, detail)


def _choice(ex: Exercise, engine, res, layer, rgb, unit, progress):
    """(the computed option's index, the figures per option) of a choice (None, {} for a fixed answer)."""
    p = ex.params
    what = p.get("compute")
    if what is None:
        return p["answer"], {}
    h, w = rgb.shape[:2]
    if what == "points_at":
        at = peak(unit)
        boxes = [photo_box(None, ex, label) for label in p["labels"]]
        dist = []
        for b in boxes:  # 0 inside the box, else the distance to it (the nearest box wins where none holds it)
            dx = max(b[0] - at[0], 0, at[0] - b[2]) if at else 1
            dy = max(b[1] - at[1], 0, at[1] - b[3]) if at else 1
            dist.append(float(np.hypot(dx, dy)))
        return int(np.argmin(dist)), dict(zip(p["labels"], dist))
    if what == "fooled":
        from ..metrics import localisation

        box = photo_box(None, ex)
        px = [(box[0] * w, box[1] * h, box[2] * w, box[3] * h)]
        figures = {}
        for i, m in enumerate(p["maps"]):
            up = _map_at(m, engine, res, layer, rgb, w, h)
            if p["metric"] == "energy":
                figures[m] = localisation.energy(up, px)
            elif p["metric"] == "pointing":
                figures[m] = float(localisation.pointing(up, px))
            else:
                figures[m] = localisation.best_iou(up, px, p["threshold"])
            if progress:
                progress((i + 1) / len(p["maps"]))
        return int(np.argmax([figures[m] for m in p["maps"]])), figures
    return _sanity(engine, rgb, res.class_index, layer, p["maps"], progress)


def _sanity(engine, rgb, cls: int, layer: str, maps: list, progress):
    """The sanity check's last step for each map, on one randomised private copy of the model: (the option whose
    map correlates most with its original, {map: Spearman ρ}). The same weights as ``sanity.cascade(...,
    final_only=True)``: every block re-initialised from ``default_rng(0)``."""
    from .. import models
    from ..metrics import sanity

    private = sanity.private_engine(engine.spec, models.load_model(engine.spec.name))
    originals = {m: sanity.map_of(private, rgb, m, layer, cls) for m in maps}
    if progress:
        progress(0.4)
    sanity.randomise(private, seed=0)
    rho = {}
    for i, m in enumerate(maps):
        rho[m] = float(sanity.compare(originals[m], sanity.map_of(private, rgb, m, layer, cls),
                                      engine.spec.input_size)[0])
        if progress:
            progress(0.4 + 0.6 * (i + 1) / len(maps))
    return int(np.argmax([rho[m] for m in maps])), rho


FILL_WORDS = {"gray": "grayed out", "black": "blacked out", "blur": "blurred", "noise": "covered with noise",
              "mean": "filled with its mean colour"}  # core.cam.occlusion.FILLS, as the feedback says them


def share_text(share: float, limit: float | None = None) -> str:
    """A share of the photo in percent with one decimal, or more where one would show a share over ``limit`` as
    within it (10.04 % of a 10 % limit: "10.04%", not "10.0%")."""
    for digits in range(1, 6):
        text = f"{share:.{digits}%}"
        if limit is None or share <= limit or float(text[:-1]) > limit * 100:
            return text
    return text


def check(exercise: Exercise, answer, expected: Expected, engine=None, rgb: np.ndarray | None = None) -> Outcome:
    """Score the learner's ``answer`` against ``expected`` (see :class:`Expected` for each kind's answer).

    Raises:
        ValueError: one sentence, where the answer has the wrong form for the kind.
    """
    kind, p = exercise.kind, exercise.params
    if kind == "predict_box":
        box = _box_answer(answer)
        region, at = expected.answer, expected.detail["peak"]
        iou = 0.0 if region is None else box_iou(box, region)
        hit = inside(at, box)
        where = "falls inside your box" if hit else "falls outside your box"
        return Outcome(None, iou, f"Your box overlaps the map's region (above {p['threshold']:.0%} of its maximum) "
                       f"with IoU {iou:.2f}, and the map's maximum {where}.",
                       {"iou": iou, "peak_inside": hit, "region": region, "peak": at})
    if kind == "earliest_layer":
        layers = list(engine.spec.layers) if engine is not None else list(expected.detail["peaks"])
        if answer not in layers:
            raise ValueError(f"{answer!r} is not a layer of this model; choose one of {', '.join(layers)}")
        right = expected.answer
        if right is None:
            return Outcome(False, 0.0, "At no layer does the map's maximum stay inside the object's box here.",
                           {"answer": None})
        off = layers.index(answer) - layers.index(right)
        ok = abs(off) <= p["tolerance"]
        side = "" if off == 0 else (" (earlier)" if off < 0 else " (later)")
        return Outcome(ok, 1.0 if ok else 0.0, f"{'Right' if ok else 'Not quite'}: the studio finds `{right}`; you "
                       f"chose `{answer}`{side}, {abs(off)} stop(s) away ({p['tolerance']} accepted).",
                       {"answer": right, "stops": off})
    if kind == "flip_mask":
        return _check_mask(exercise, answer, expected, engine, rgb)
    if kind == "choice":
        options = p["options"]
        if isinstance(answer, bool) or not isinstance(answer, (int, np.integer)) or not 0 <= answer < len(options):
            raise ValueError(f"choose one of the {len(options)} options (0 to {len(options) - 1})")
        ok = int(answer) == expected.answer
        figures = expected.detail.get("figures") or {}
        why = (" (" + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()) + ")") if figures else ""
        return Outcome(ok, 1.0 if ok else 0.0, f"{'Right' if ok else 'Not this one'}: the answer is "
                       f"“{options[expected.answer]}”{why}.", {"answer": expected.answer, "figures": figures})
    if kind == "value":
        try:
            v = float(answer)
        except (TypeError, ValueError):
            raise ValueError("enter a number") from None
        if not np.isfinite(v):
            raise ValueError("enter a finite number")
        lo = hi = expected.answer
        if abs(v - lo) > p["tolerance"] + 1e-9 and expected.detail.get("covers") and engine is not None:
            from .covers import cover_range

            lo, hi, _n = cover_range(exercise, expected, engine, rgb)  # the learner's rectangle was another one
        err = max(lo - v, v - hi, 0.0)
        ok = err <= p["tolerance"] + 1e-9
        u = p["unit"]
        verdict = "Right" if ok else "Not within the tolerance"
        if hi > lo:  # an object grayed out: what the answer is depends on the rectangle drawn over it
            said = (f"{verdict}: graying out the {p['object']} gives {lo:.1f}–{hi:.1f}{u}, depending on the "
                    f"rectangle drawn over it ({expected.answer:.1f}{u} for its box); you entered {v:g}{u} "
                    f"(±{p['tolerance']:g}{u} around that range accepted).")
        else:
            said = (f"{verdict}: the studio computes {expected.answer:.3f}{u}; you entered {v:g}{u} "
                    f"(±{p['tolerance']:g}{u} accepted).")
        return Outcome(ok, 1.0 if ok else 0.0, said, {"answer": expected.answer, "error": err})
    raise ValueError(f"unknown kind {kind!r}")


def _box_answer(answer) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in answer)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
        raise ValueError("draw a box: (x0, y0, x1, y1) as fractions of the width and height, x0 < x1, y0 < y1")
    return box


def _check_mask(ex: Exercise, mask, expected: Expected, engine, rgb) -> Outcome:
    from ..cam import occlusion

    if engine is None or rgb is None:
        raise ValueError("a flip_mask check needs the engine and the photo")
    h, w = rgb.shape[:2]
    try:
        m = occlusion.resample_mask(np.asarray(mask, bool), w, h)
    except occlusion.MaskError as exc:
        raise ValueError(str(exc)) from None
    share, limit = float(m.mean()), ex.params["max_share"]
    before = expected.detail["top1"]
    if not m.any():
        return Outcome(False, None, "Paint a mask first: nothing is covered.", {"share": 0.0})
    if share > limit:
        return Outcome(False, None, f"Your mask covers {share_text(share, limit)} of the photo; at most "
                       f"{share_text(limit)} is allowed, so it was not tried.", {"share": share, "refused": True})
    p = engine.predict(engine.prepare(occlusion.apply_fill(rgb, m, ex.params["fill"])))[0]
    after = int(np.argmax(p))
    names = engine.spec.label(before), engine.spec.label(after)
    detail = {"share": share, "before": before, "after": after, "after_name": names[1], "p_after": float(p[after])}
    done = FILL_WORDS.get(ex.params["fill"], "covered")
    if after != before:
        return Outcome(True, share, f"Flipped: with {share_text(share)} of the photo {done} the model says "
                       f"{names[1]} ({p[after]:.0%}) instead of {names[0]}.", detail)
    return Outcome(False, None, f"Not flipped: with {share_text(share)} of the photo {done} the model still says "
                   f"{names[0]} ({p[after]:.0%}).", detail)


def quiz_score(questions, answers: dict) -> tuple[int, int]:
    """(right, asked): every question counts as asked; a missing or unknown answer counts as wrong."""
    qs = list(questions)
    return sum(1 for q in qs if answers.get(q.id) == q.answer), len(qs)


def where_looked(boxes, shape: tuple[int, int]) -> np.ndarray:
    """The share of the learners' boxes (fractions x0, y0, x1, y1) covering each pixel (a pixel whose centre lies
    inside): (h, w) float32 in [0, 1]; zeros where there are no boxes."""
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), np.float32)
    boxes = list(boxes)
    for b in boxes:
        out += _fraction_mask(tuple(float(v) for v in b), w, h)
    return out / len(boxes) if boxes else out
