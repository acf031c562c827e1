"""The workshop store under a class: one instructor refresh's CPU, and 30 participants' answers at once.

``python -m bench.classroom`` prints :func:`run_classroom_bench`'s figures as JSON.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PEOPLE, EXERCISES = 30, 10


def _filled(store):
    """A room of 30 participants who did each of 10 exercises (a third of them twice, after a wrong answer) and
    sat the quiz before and after."""
    room = store.create_room("gradcam-in-45-minutes")
    for n in range(PEOPLE):
        token = store.join(room.code, f"participant {n:02d}")
        store.record_quiz(room.code, token, "before", {f"q{i}": i % 3 for i in range(6)}, n % 4, 6, "quiz-before")
        for e in range(EXERCISES):
            tries = 2 if (n + e) % 3 == 0 else 1
            for t in range(tries):
                store.record_attempt(room.code, token, f"ex{e}", {"box": [0.1, 0.15, 0.6, 0.8 + t / 10]},
                                     score=0.3 + t / 2, correct=t == tries - 1, seconds=20.0 + e, attempt_id=f"{e}-{t}")
        store.record_quiz(room.code, token, "after", {f"q{i}": i % 2 for i in range(6)}, 3 + n % 4, 6, "quiz-after")
    return room


def _lesson():
    """The built-in lesson's first predicted box as ten exercises ``ex0``…``ex9`` (the ids :func:`_filled` uses)."""
    import dataclasses

    from core import lessons

    lesson = lessons.builtin()
    box = next(e for e in lesson.exercises if e.kind == "predict_box")
    return dataclasses.replace(lesson, exercises=tuple(
        dataclasses.replace(box, id=f"ex{e}", title=f"exercise {e}") for e in range(EXERCISES)))


def refresh(store, room, lesson, selected: str = "ex0", seen: dict | None = None) -> int:
    """One tick of the instructor's live view, as its two fragments do it (ui/lesson_class.py): the store's reads
    (the table, the quiz, the selected exercise's answers), the frames built from them and what Streamlit makes of
    them (the table's Arrow bytes, the chart's spec), and the where-looked picture only when the boxes changed
    since the last tick (``seen``: the fingerprint of the last boxes drawn). Returns the rows read."""
    from streamlit.dataframe_util import convert_pandas_df_to_arrow_bytes

    from core.imaging import render
    from ui import lesson_class as lc

    frame, _ = lc.live_data(store, room.code, room.key, lesson)
    convert_pandas_df_to_arrow_bytes(frame)
    ex = next(e for e in lesson.exercises if e.id == selected)
    answers, counts = lc.exercise_data(store, room.code, room.key, ex)
    if len(counts):
        lc.answers_chart(counts).to_dict()
    boxes = lc.boxes_of(answers)
    mark = lc.fingerprint([ex.photo, boxes])
    if seen is not None and seen.get(selected) != mark:
        base = seen.setdefault("base", render.display_base(np.zeros((480, 640, 3), np.uint8), 480))
        from core import lessons

        lc.data_url(render.overlay(base, lessons.where_looked([tuple(b) for b in boxes], base.shape[:2]), 0.55,
                                   "jet", vmax=1.0))
        seen[selected] = mark
    return len(frame) + len(answers)


def _thirty_at_once(store, answers: int = 20) -> float:
    """Wall seconds for 30 threads to submit ``answers`` answers each into a new room."""
    room = store.create_room("gradcam-in-45-minutes")
    tokens = [store.join(room.code, f"p{n}") for n in range(PEOPLE)]
    start = threading.Barrier(PEOPLE + 1)

    def submit(token):
        start.wait()
        for i in range(answers):
            store.record_attempt(room.code, token, f"ex{i % EXERCISES}", {"choice": i % 3}, 1.0, True, 5.0, f"a{i}")

    threads = [threading.Thread(target=submit, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def run_classroom_bench(repeats: int = 25) -> dict:
    """``instructor_refresh_cpu_s``: the median CPU seconds of one tick of the instructor's live view (see
    :func:`refresh`: the table of 30 participants × 10 exercises, the quiz, one exercise's answers and chart; the
    boxes unchanged since the tick before, so no picture) in a temporary SQLite store; ``classroom_600_answers_s``:
    the wall seconds of 30 threads submitting 20 answers each into it."""
    from core.store import Store

    with tempfile.TemporaryDirectory(prefix="gradcam-classroom-") as folder:
        store = Store(f"sqlite:///{Path(folder) / 'workshop.sqlite3'}")
        try:
            room, lesson, seen = _filled(store), _lesson(), {}
            if refresh(store, room, lesson, seen=seen) != 2 * PEOPLE:  # the first tick draws the picture
                raise RuntimeError("The instructor's view did not show every participant's answers.")
            cpu = []
            for _ in range(repeats):
                t = time.process_time()
                refresh(store, room, lesson, seen=seen)
                cpu.append(time.process_time() - t)
            wall = _thirty_at_once(store)
        finally:
            store.close()
    return {"instructor_refresh_cpu_s": round(statistics.median(cpu), 4), "classroom_600_answers_s": round(wall, 2)}


if __name__ == "__main__":
    print(json.dumps(run_classroom_bench(), indent=1))
