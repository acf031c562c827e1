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


def refresh(store, room) -> int:
    """What the instructor's live view reads each time: the table, every exercise's answers and the quiz."""
    rows = len(store.table(room.code, room.key))
    for e in range(EXERCISES):
        rows += len(store.answers(room.code, room.key, f"ex{e}"))
    store.quiz(room.code, room.key)
    return rows


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
    """``instructor_refresh_cpu_s``: the median CPU seconds of one instructor refresh (table, answers of each of
    10 exercises, quiz) of 30 participants in a temporary SQLite store; ``classroom_600_answers_s``: the wall
    seconds of 30 threads submitting 20 answers each into it."""
    from core.store import Store

    with tempfile.TemporaryDirectory(prefix="gradcam-classroom-") as folder:
        store = Store(f"sqlite:///{Path(folder) / 'workshop.sqlite3'}")
        try:
            room = _filled(store)
            if refresh(store, room) != PEOPLE * (EXERCISES + 1):
                raise RuntimeError("The instructor's view did not show every participant's answers.")
            cpu = []
            for _ in range(repeats):
                t = time.process_time()
                refresh(store, room)
                cpu.append(time.process_time() - t)
            wall = _thirty_at_once(store)
        finally:
            store.close()
    return {"instructor_refresh_cpu_s": round(statistics.median(cpu), 4), "classroom_600_answers_s": round(wall, 2)}


if __name__ == "__main__":
    print(json.dumps(run_classroom_bench(), indent=1))
