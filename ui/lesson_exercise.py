"""The Lesson page's answer widgets, one set per check kind, and the submit that hands an answer to the page.

Every widget is a plain Streamlit control (drivable by AppTest): a box is two range sliders in % of the photo's
width and height with a live preview; a mask is up to three rectangles the same way. A widget's value is read
from the session by its key, as a raw JSON-able dict (see :func:`raw_answer`), which is what the workshop store
keeps; :func:`to_answer` turns it into what :func:`core.lessons.check` takes.

A click on Submit (:func:`submit`, the button's callback, before the run) snapshots that raw answer with a fresh
attempt id into the session's pending submits, once: a second click while one is pending or after the exercise is
done is ignored, and a run that is interrupted and repeated handles the same pending submit with the same id, which
the store keeps once. A submit without a complete answer is remembered under :data:`MISSING` for the page to say
so in one line (:data:`MISSING_TEXT`). Callbacks name the learner's run by its key
(:func:`ui.lesson_state.run_key`); widget keys name the lesson only.
"""
from __future__ import annotations

import time
import uuid

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from core.cam import methods, occlusion
from core.imaging import render
from core.lessons.checks import share_text

from .lesson_state import MISSING, PENDING, RUNS, before_open
from .pictures import show

BOX_COLOUR = (255, 0, 200)
OBJECT_COLOUR = (0, 220, 90)
MAX_RECTS = 3
QUIZ_MISSING = "Answer every question before you submit."
MISSING_TEXT = {  # per kind: what a submit without an answer says
    "predict_box": "Draw a box with some width and height before you submit.",
    "earliest_layer": "Choose an answer before you submit.",
    "flip_mask": "Draw a rectangle with some width and height before you submit.",
    "choice": "Choose an answer before you submit.",
    "value": "Enter a number before you submit.",
}


def key(lesson_id: str, exercise_id: str, name: str) -> str:
    """A widget's session key for one exercise of one lesson."""
    return f"lx:{lesson_id}:{exercise_id}:{name}"


def draw_boxes(rgb: np.ndarray, boxes, colour=BOX_COLOUR, width: int = 3) -> np.ndarray:
    """A copy of the picture with rectangle outlines at fractions (x0, y0, x1, y1) of its width and height."""
    img = Image.fromarray(np.asarray(rgb, np.uint8))
    pen = ImageDraw.Draw(img)
    w, h = img.size
    for x0, y0, x1, y1 in boxes:
        pen.rectangle([x0 * (w - 1), y0 * (h - 1), x1 * (w - 1), y1 * (h - 1)], outline=colour, width=width)
    return np.asarray(img)


def rects_mask(rects, height: int, width: int) -> np.ndarray:
    """A (height, width) bool mask: True inside any of the rectangles (fractions x0, y0, x1, y1)."""
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in rects:
        c0, c1 = int(round(x0 * width)), int(round(x1 * width))
        r0, r1 = int(round(y0 * height)), int(round(y1 * height))
        mask[r0:r1, c0:c1] = True
    return mask


# ---------------------------------------------------------------------------------------------- raw answers

def _pct_box(lid: str, eid: str, name: str) -> list[float] | None:
    xs, ys = st.session_state.get(key(lid, eid, f"{name}_x")), st.session_state.get(key(lid, eid, f"{name}_y"))
    if xs is None or ys is None:
        return None
    return [xs[0] / 100, ys[0] / 100, xs[1] / 100, ys[1] / 100]


def raw_answer(lid: str, exercise) -> dict | None:
    """The learner's answer as the widgets hold it now (None where it is not complete)."""
    eid, kind = exercise.id, exercise.kind
    if kind == "predict_box":
        box = _pct_box(lid, eid, "box")
        return None if box is None else {"box": box}
    if kind == "earliest_layer":
        layer = st.session_state.get(key(lid, eid, "layer"))
        return None if layer is None else {"layer": layer}
    if kind == "flip_mask":
        n = st.session_state.get(key(lid, eid, "rects"), 1)
        rects = [r for r in (_pct_box(lid, eid, f"r{i}") for i in range(n)) if r is not None]
        return {"rects": rects, "fill": exercise.params.get("fill", "gray")}
    if kind == "choice":
        choice = st.session_state.get(key(lid, eid, "choice"))
        return None if choice is None else {"choice": int(choice)}
    value = st.session_state.get(key(lid, eid, "value"))
    return None if value is None else {"value": float(value)}


def to_answer(exercise, raw: dict, shape: tuple[int, int]):
    """What :func:`core.lessons.check` takes for ``raw``; ``shape`` is the photo's (height, width)."""
    kind = exercise.kind
    if kind == "predict_box":
        return tuple(float(v) for v in raw["box"])
    if kind == "earliest_layer":
        return raw["layer"]
    if kind == "flip_mask":
        return rects_mask(raw["rects"], *shape)
    if kind == "choice":
        return int(raw["choice"])
    return float(raw["value"])


def _area(box) -> bool:
    return box[2] > box[0] and box[3] > box[1]


def submit(rk: str, item: str, raw: dict | None) -> None:
    """Submit's callback: keep the answer with a fresh attempt id, once (see the module's docstring); a missing
    answer is remembered for the page to say so."""
    run = st.session_state.get(RUNS, {}).get(rk)
    if run is None:
        return
    if raw is None:
        st.session_state[MISSING] = (rk, item)
        return
    pending = st.session_state.setdefault(PENDING, {})
    if item.startswith("quiz:"):
        phase = item[5:]
        done = phase in run["quiz"] or (phase == "before" and not before_open(run))
    else:
        done = item in run["done"]
    if (rk, item) in pending or done:
        return
    began = run["started"].get(item, time.monotonic())
    pending[(rk, item)] = {"raw": raw, "attempt_id": uuid.uuid4().hex,
                           "seconds": max(0.0, time.monotonic() - began)}


def submit_exercise(rk: str, lesson_id: str, exercise) -> None:
    """Submit's callback for an exercise: reads the widgets' answer and calls :func:`submit` (a box or rectangle
    of no width or height is no answer)."""
    raw = raw_answer(lesson_id, exercise)
    if raw is not None and exercise.kind == "flip_mask":
        raw["rects"] = [r for r in raw["rects"] if _area(r)]
        raw = raw if raw["rects"] else None
    if raw is not None and exercise.kind == "predict_box" and not _area(raw["box"]):
        raw = None
    submit(rk, exercise.id, raw)


def submit_quiz(rk: str, lesson_id: str, phase: str, question_ids: tuple[str, ...]) -> None:
    """Submit's callback for the quiz of ``phase``: every question answered, or only the missing line."""
    answers = {q: st.session_state.get(key(lesson_id, f"quiz_{phase}", q)) for q in question_ids}
    if any(v is None for v in answers.values()):
        submit(rk, f"quiz:{phase}", None)
        return
    submit(rk, f"quiz:{phase}", {q: int(v) for q, v in answers.items()})


def missing(rk: str, item: str) -> bool:
    """Whether the last submit of ``item`` lacked an answer (said once: the flag is cleared)."""
    if st.session_state.get(MISSING) == (rk, item):
        del st.session_state[MISSING]
        return True
    return False


def again(rk: str, exercise_id: str) -> None:
    """Try again: forget the exercise's result in this session (the store keeps every attempt)."""
    run = st.session_state.get(RUNS, {}).get(rk)
    if run is not None:
        run["done"].pop(exercise_id, None)
        run["started"][exercise_id] = time.monotonic()


# ---------------------------------------------------------------------------------------------- the widgets

def _box_sliders(container, lid: str, eid: str, name: str, label: str, default=(25, 75), disabled=False):
    container.slider(f"{label}: left – right (% of the width)", 0, 100, default, key=key(lid, eid, f"{name}_x"),
                     disabled=disabled)
    container.slider(f"{label}: top – bottom (% of the height)", 0, 100, default, key=key(lid, eid, f"{name}_y"),
                     disabled=disabled)


def predict_box(lid: str, exercise, base: np.ndarray, done: bool) -> None:
    """Two range sliders and the photo with the box drawn live; the map stays hidden until the box is submitted."""
    left, right = st.columns([2, 3])
    _box_sliders(left, lid, exercise.id, "box", "Your box", disabled=done)
    box = _pct_box(lid, exercise.id, "box")
    right_pic = draw_boxes(base, [box]) if box else base
    show(right, right_pic, caption="Your box (the model's map is revealed once you submit it)")


def earliest_layer(lid: str, exercise, engine, rgb: np.ndarray, base: np.ndarray, cls: int, obj_box,
                   colormap: str = "jet") -> None:
    """A slider over the model's layers; the chosen layer's map over the photo, with the object's box."""
    shapes = {n: engine.layer_shape(n) for n in engine.spec.layers}
    layer = st.select_slider("Layer (early → late)", options=list(engine.spec.layers),
                             value=engine.spec.layers[0],
                             key=key(lid, exercise.id, "layer"), format_func=layer_text(shapes))
    res = engine.run(rgb, cls)
    cam = methods.from_pass(exercise.method, res, layer, engine)[0]
    pic = render.overlay(base, cam, 0.5, colormap)
    if obj_box is not None:
        pic = draw_boxes(pic, [obj_box], OBJECT_COLOUR)
    title = methods.EVERY[exercise.method].title if exercise.method in methods.EVERY else exercise.method
    show(st, pic, caption=f"{title} at `{layer}` · {shapes[layer][0]}×{shapes[layer][1]}"
                          + (" · empty" if render.is_empty(cam) else "")
                          + (" · the object's box in green" if obj_box is not None else ""))


class layer_text:
    """A select_slider's format_func: "name · h×w" (a small object, so the widget keeps only the shapes)."""

    def __init__(self, shapes: dict):
        self.shapes = shapes

    def __call__(self, name: str) -> str:
        s = self.shapes[name]
        return f"{name} · {s[0]}×{s[1]}"


def flip_mask(lid: str, exercise, rgb: np.ndarray, base: np.ndarray, done: bool) -> float:
    """Up to three rectangles by sliders; the photo masked with the lesson's fill and the share it covers, live.
    Returns the share."""
    eid = exercise.id
    left, right = st.columns([2, 3])
    n = left.slider("Rectangles", 1, MAX_RECTS, 1, key=key(lid, eid, "rects"), disabled=done)
    for i in range(n):
        _box_sliders(left, lid, eid, f"r{i}", f"Rectangle {i + 1}", (40, 60), done)
    raw = raw_answer(lid, exercise)
    mask = rects_mask(raw["rects"], base.shape[0], base.shape[1])
    shown = occlusion.apply_fill(base, mask, raw["fill"])
    share = float(rects_mask(raw["rects"], *rgb.shape[:2]).mean())
    limit = exercise.params.get("max_share")
    said = f"Masked photo ({raw['fill']} fill) · {share_text(share, limit)} of the photo"
    if limit is not None:
        said += f" (at most {share_text(limit)}" + (": too much, it will not be tried)" if share > limit else ")")
    show(right, shown, caption=said)
    return share


def choice(lid: str, exercise, done: bool) -> None:
    options = list(exercise.params.get("options", []))
    st.radio("Your answer", range(len(options)), index=None, format_func=options.__getitem__,
             key=key(lid, exercise.id, "choice"), disabled=done)


def value(lid: str, exercise, done: bool) -> None:
    unit = exercise.params.get("unit", "")
    st.number_input(f"Your answer{f' ({unit})' if unit else ''}", value=None, format="%.4f",
                    key=key(lid, exercise.id, "value"), disabled=done)
