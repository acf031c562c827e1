"""The lesson checks' server CPU: one check of each kind of the built-in lesson on a warm engine pass.

``python -m bench.lesson`` prints :func:`run_lesson_bench`'s figures as JSON.
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

# one answer per exercise of the built-in lesson, as a learner sends it
ANSWERS = {"predict-cat": (0.0, 0.1, 0.5, 0.9), "layers-edges-to-objects": "block6b_add", "other-class": (0.6, 0.0, 1.0, 1.0),
           "counterfactual": 1, "gray-out-the-dog": 12.9, "heatmap-guided-occlusion": 5.0, "fooled-metric": 1,
           "planted-shortcut": 0, "sanity-check": 2}
SLOW = ("sanity-check",)  # runs the sanity check (a randomised copy of the model): reported on its own
COVER = ("gray-out-the-dog", 9.6)  # an answer from a rectangle wider than the dog's box: its check runs the others


def _eye_mask(rgb: np.ndarray) -> np.ndarray:
    m = np.zeros(rgb.shape[:2], bool)
    m[100:200, 170:300] = True  # the cat's eye in cat_and_dog.jpg: flips the top-1
    return m


def run_lesson_bench(model_name: str = "efficientnet_lite0", repeats: int = 7) -> dict:
    """Median process CPU seconds (``time.process_time``: every thread, TensorFlow's included) per exercise of the
    built-in lesson, the engine's pass for the photo and class already cached:

    - ``first``: :func:`core.lessons.expected` computed from that pass (the lesson cache emptied) + the check —
      what the first learner of a room costs;
    - ``cached``: the expected answer from the lesson cache + the check — every later learner.

    ``lesson_check_cpu_s`` is the largest ``first`` figure among the exercises that run neither the sanity check nor
    curves; ``lesson_check_cached_cpu_s`` the largest ``cached`` one; ``lesson_sanity_cpu_s`` the sanity-check
    exercise's ``first`` (one run: a randomised copy of the model, two maps per option); ``lesson_cover_range_cpu_s``
    the first check of gray-out-the-dog answered from another rectangle than the dog's box (its other rectangles'
    passes, :func:`core.lessons.covers.cover_range`)."""
    from core import lessons, models
    from core.engine import Engine
    from core.imaging import images

    spec = models.get_spec(model_name)
    engine = Engine(spec, *models.load_inference(model_name))
    lesson = lessons.builtin()
    per: dict = {}
    for ex in lesson.exercises:
        rgb = images.load_path(lessons.photo_path(lesson, ex)).rgb
        engine.run(rgb, ex.class_index)  # the warm pass every check reuses
        answer = _eye_mask(rgb) if ex.kind == "flip_mask" else ANSWERS[ex.id]
        lessons.check(ex, answer, lessons.expected(ex, engine, rgb), engine, rgb)  # imports, traces
        firsts, cached = [], []
        for _ in range(1 if ex.id in SLOW else repeats):
            lessons.CACHE.clear()
            t = time.process_time()
            lessons.check(ex, answer, lessons.expected(ex, engine, rgb), engine, rgb)
            firsts.append(time.process_time() - t)
            t = time.process_time()
            lessons.check(ex, answer, lessons.expected(ex, engine, rgb), engine, rgb)
            cached.append(time.process_time() - t)
        per[ex.id] = {"kind": ex.kind, "first": round(statistics.median(firsts), 4),
                      "cached": round(statistics.median(cached), 4)}
    # gray-out-the-dog answered from another rectangle over the dog than its box: the other rectangles' passes, once
    ex = next(e for e in lesson.exercises if e.id == COVER[0])
    rgb = images.load_path(lessons.photo_path(lesson, ex)).rgb
    covers = []
    for _ in range(max(1, repeats // 3)):
        lessons.CACHE.clear()
        t = time.process_time()
        lessons.check(ex, COVER[1], lessons.expected(ex, engine, rgb), engine, rgb)
        covers.append(time.process_time() - t)
    cheap = [v for k, v in per.items() if k not in SLOW]
    return {"lesson_check_cpu_s": max(v["first"] for v in cheap),
            "lesson_cover_range_cpu_s": round(statistics.median(covers), 4),
            "lesson_check_cached_cpu_s": max(v["cached"] for v in cheap),
            "lesson_sanity_cpu_s": per["sanity-check"]["first"],
            "lesson_checks": per}


if __name__ == "__main__":
    print(json.dumps(run_lesson_bench(), indent=2))
