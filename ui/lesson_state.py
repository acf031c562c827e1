"""The Lesson and Class pages' shared parts: the lessons on offer, the one workshop store per process, the
lesson photos, and a learner's progress (kept in ``st.session_state`` only, one record per lesson).

A learner's progress is a plain dict (JSON-able) so that it downloads as it is:
``{"lesson", "title", "step", "quiz": {"before": {...}, "after": {...}}, "done": {exercise_id: {...}},
"started": {exercise_id: seconds}}``; ``step`` 0 is the quiz before, 1…n the exercises, n + 1 the quiz after.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import streamlit as st

from core import lessons
from core.imaging import images
from core.store.export import cell

LESSONS_ENV = "GRADCAM_STUDIO_LESSONS"  # more folders of lesson files (os.pathsep between them)
RUNS = "lesson_runs"  # session key: lesson id → progress
PENDING = "lesson_pending"  # session key: (lesson id, exercise id or "quiz:<phase>") → a submit not yet handled


# ---------------------------------------------------------------------------------------------- lessons on offer

def folders() -> list[Path]:
    """The lesson folders: the bundled one, then those named by ``$GRADCAM_STUDIO_LESSONS``."""
    extra = [Path(p) for p in os.environ.get(LESSONS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(lessons.BUILTIN_DIR), *extra]


def catalog() -> tuple[dict[str, lessons.Lesson], list[str]]:
    """Every good lesson by id (the built-in one first) and one line per bad file. Read on each run: a few small
    TOML files, and an instructor's edited lesson shows at once."""
    found: dict[str, lessons.Lesson] = {}
    problems: list[str] = []
    try:
        first = lessons.builtin()
        found[first.id] = first
    except lessons.LessonError as exc:
        problems.append(str(exc))
    for folder in folders():
        if not folder.is_dir():
            problems.append(f"{folder}: no such folder of lessons")
            continue
        good, bad = lessons.load_folder(folder)
        problems.extend(bad)
        for lesson in good:
            found.setdefault(lesson.id, lesson)
    return found, problems


@st.cache_resource(max_entries=24, show_spinner=False)
def photo(path: str) -> images.LoadedImage:
    """A lesson's photo, decoded once per process (shared: the file's pixels are the same for everyone)."""
    return images.load_path(Path(path))


def exercise_photo(lesson: lessons.Lesson, exercise: lessons.Exercise) -> images.LoadedImage:
    return photo(str(lessons.photo_path(lesson, exercise)))


# ---------------------------------------------------------------------------------------------- the store

@st.cache_resource(max_entries=4, show_spinner=False)
def _store_for(url: str):
    from core.store import Store

    return Store(url)


def shared_store():
    """The one workshop store of this process for the database ``core.store.default_url()`` names (thread-safe)."""
    from core.store import default_url

    return _store_for(default_url())


def store_or_say():
    """The shared store, or None after one sentence where the database cannot be opened."""
    from core.store import StoreError

    try:
        return shared_store()
    except StoreError as exc:
        st.error(str(exc))
        return None


# ---------------------------------------------------------------------------------------------- progress

def progress(lesson: lessons.Lesson) -> dict:
    """This session's progress in ``lesson`` (created empty)."""
    runs = st.session_state.setdefault(RUNS, {})
    return runs.setdefault(lesson.id, {"lesson": lesson.id, "title": lesson.title, "step": 0,
                                       "quiz": {}, "done": {}, "started": {}})


def steps(lesson: lessons.Lesson) -> int:
    """The number of steps: the quiz before, the exercises, the quiz after."""
    return len(lesson.exercises) + 2


def go(lesson_id: str, step: int) -> None:
    """Move to ``step`` (a button's callback)."""
    run = st.session_state.get(RUNS, {}).get(lesson_id)
    if run is not None:
        run["step"] = max(0, int(step))


def started(run: dict, exercise_id: str) -> float:
    """When the learner first saw the exercise (a clock of this process)."""
    return run["started"].setdefault(exercise_id, time.monotonic())


def gain(run: dict) -> float | None:
    """The quiz's after − before share of right answers (None until both were answered)."""
    q = run["quiz"]
    if "before" not in q or "after" not in q:
        return None
    share = {p: q[p]["right"] / max(1, q[p]["asked"]) for p in ("before", "after")}
    return share["after"] - share["before"]


def to_json(run: dict) -> str:
    """The progress as a small JSON document (what the download gives)."""
    out = {k: run[k] for k in ("lesson", "title", "quiz", "done")}
    out["gain"] = gain(run)
    return json.dumps(out, indent=2, default=str)


CSV_FIELDS = ("lesson", "item", "kind", "answer", "score", "correct", "seconds")


def to_csv(run: dict) -> str:
    """The progress as CSV: one row per exercise done and one per quiz answered."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS)
    writer.writeheader()
    rows = []
    for ex_id, d in run["done"].items():
        rows.append({"lesson": run["lesson"], "item": ex_id, "kind": d.get("kind"),
                     "answer": json.dumps(d.get("answer")), "score": d.get("score"),
                     "correct": d.get("correct"), "seconds": round(float(d.get("seconds") or 0.0), 1)})
    for phase, d in run["quiz"].items():
        rows.append({"lesson": run["lesson"], "item": f"quiz {phase}", "kind": "quiz",
                     "answer": json.dumps(d.get("answers")), "score": d["right"] / max(1, d["asked"]),
                     "correct": None, "seconds": None})
    for row in rows:  # formula-like text written as text, as in the room's export
        writer.writerow({k: cell(v) for k, v in row.items()})
    return buf.getvalue()


class lesson_title:
    """The lesson selectbox's format_func (a small object: the widget keeps only the titles)."""

    def __init__(self, found: dict):
        self.titles = {k: v.title for k, v in found.items()}

    def __call__(self, lesson_id: str) -> str:
        return self.titles.get(lesson_id, lesson_id)


class bar_progress:
    """A ``progress(fraction)`` callback that moves a Streamlit progress bar."""

    def __init__(self, bar, text: str):
        self.bar, self.text = bar, text

    def __call__(self, fraction: float) -> None:
        f = min(1.0, max(0.0, float(fraction)))
        self.bar.progress(f, text=f"{self.text} {f:.0%}")


def plain(value):
    """``value`` with numpy scalars and arrays turned into JSON-able Python (arrays over 64 items dropped)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist() if getattr(value, "size", 1) <= 64 else None
    return value


def best_share(exercise, member: dict | None, run: dict) -> tuple[float | None, bool]:
    """The smallest share of the photo that flipped the class: the room's in a workshop (``own`` False), else this
    learner's best over their tries in this session (``own`` True)."""
    if member is not None:
        return shared_store().best_score(member["code"], exercise.id), False
    return run.get("best", {}).get(exercise.id), True


def keep_best(run: dict, exercise_id: str, share: float) -> None:
    """Remember a share that flipped the class, if it is this session's smallest."""
    best = run.setdefault("best", {})
    best[exercise_id] = min(share, best.get(exercise_id, share))
