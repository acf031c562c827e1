"""The Lesson and Class pages' shared parts: the lessons on offer, the one workshop store per process, the
lesson photos, and a learner's progress (kept in ``st.session_state``, one record per room and lesson: solo
work and a workshop room's never mix; a room's is rebuilt from the store when a participant comes back).

A learner's progress is a plain dict (JSON-able) so that it downloads as it is:
``{"lesson", "title", "room", "step", "quiz": {"before": {...}, "after": {...}}, "done": {exercise_id: {...}},
"started": {exercise_id: seconds}, "skipped": [phase...], "ended": bool}``; ``step`` 0 is the quiz before, 1…n the
exercises, n + 1 the quiz after. Callbacks name a run by its key (:func:`run_key`).

The quiz's order: the quiz before is sat (or skipped, which records no gain) before the first exercise and can no
longer be sat once an exercise is done; the quiz after opens once every exercise that is not optional is done, or
once the learner chose to end the lesson.
"""
from __future__ import annotations

import csv
import functools
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
RUNS = "lesson_runs"  # session key: run key ("solo:<lesson id>" or "<room code>:<lesson id>") → progress
PENDING = "lesson_pending"  # session key: (run key, exercise id or "quiz:<phase>") → a submit not yet handled
MISSING = "lesson_missing"  # session key: (run key, item) of a submit that lacked an answer, until it is said
SOLO = "solo"


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


def says_store_problems(fn):
    """``fn`` with a workshop-database problem (:class:`core.store.StoreError`) shown as its one sentence instead of
    raised: for a fragment, which runs again on its own outside the page's run (``streamlit_app.py`` catches the
    page's)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        from core.store import StoreError

        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            st.error(str(exc))
            return None

    return wrapped


def store_or_say():
    """The shared store, or None after one sentence where the database cannot be opened."""
    from core.store import StoreError

    try:
        return shared_store()
    except StoreError as exc:
        st.error(str(exc))
        return None


# ---------------------------------------------------------------------------------------------- progress

def run_key(lesson_id: str, room: str | None = None) -> str:
    """The key of a learner's progress: per room (``"solo"`` outside one) and lesson."""
    return f"{room or SOLO}:{lesson_id}"


def new_run(lesson: lessons.Lesson, room: str | None = None) -> dict:
    return {"lesson": lesson.id, "title": lesson.title, "room": room, "step": 0, "quiz": {}, "done": {},
            "started": {}, "skipped": [], "ended": False}


def progress(lesson: lessons.Lesson, room: str | None = None) -> dict:
    """This session's progress in ``lesson`` in ``room`` (None: solo), created empty."""
    runs = st.session_state.setdefault(RUNS, {})
    return runs.setdefault(run_key(lesson.id, room), new_run(lesson, room))


def the_run(rk: str) -> dict | None:
    return st.session_state.get(RUNS, {}).get(rk)


def steps(lesson: lessons.Lesson) -> int:
    """The number of steps: the quiz before, the exercises, the quiz after."""
    return len(lesson.exercises) + 2


def before_open(run: dict) -> bool:
    """Whether the quiz before can still be sat: not sat yet, and no exercise done."""
    return "before" not in run["quiz"] and not run["done"]


def may_leave_start(run: dict) -> bool:
    """Whether Next may leave step 0: the quiz before was sat or skipped (or can no longer be sat)."""
    return "before" in run["quiz"] or "before" in run.get("skipped", ()) or bool(run["done"])


def left_to_do(lesson: lessons.Lesson, run: dict) -> list:
    """The exercises that are not optional and not done yet."""
    return [e for e in lesson.exercises if not e.optional and e.id not in run["done"]]


def after_open(lesson: lessons.Lesson, run: dict) -> bool:
    """Whether the quiz after may be sat: every exercise that is not optional done, or the lesson ended."""
    return "after" in run["quiz"] or run.get("ended", False) or not left_to_do(lesson, run)


def go(rk: str, step: int) -> None:
    """Move to ``step`` (a button's callback); leaving step 0 needs the quiz before sat or skipped."""
    run = the_run(rk)
    if run is None:
        return
    if run["step"] == 0 and step > 0 and not may_leave_start(run):
        return
    run["step"] = max(0, int(step))


def skip_before(rk: str) -> None:
    """Skip the quiz before (a button's callback): no gain is recorded; on to the first exercise."""
    run = the_run(rk)
    if run is not None and before_open(run):
        if "before" not in run["skipped"]:
            run["skipped"].append("before")
        run["step"] = 1


def end_lesson(rk: str) -> None:
    """End the lesson now (a button's callback): the quiz after opens although exercises are left."""
    run = the_run(rk)
    if run is not None:
        run["ended"] = True


def started(run: dict, exercise_id: str) -> float:
    """When the learner first saw the exercise (a clock of this process)."""
    return run["started"].setdefault(exercise_id, time.monotonic())


def gain(run: dict) -> float | None:
    """The quiz's after − before share of right answers (None unless both were sat)."""
    q = run["quiz"]
    if "before" not in q or "after" not in q:
        return None
    share = {p: q[p]["right"] / max(1, q[p]["asked"]) for p in ("before", "after")}
    return share["after"] - share["before"]


def to_json(run: dict) -> str:
    """The progress as a small JSON document (what the download gives)."""
    out = {k: run.get(k) for k in ("lesson", "title", "room", "quiz", "done")}
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


def from_store(lesson: lessons.Lesson, room: str, attempts: list[dict], sittings: list[dict]) -> dict:
    """A participant's progress rebuilt from the store (their own attempts and quiz sittings, oldest first): each
    exercise's latest attempt is its result (its feedback is computed again when shown), each phase's latest
    sitting its quiz; the step is the first exercise left to do (the quiz after once none is left)."""
    run = new_run(lesson, room)
    kinds = {e.id: e.kind for e in lesson.exercises}
    for a in attempts:
        if a["exercise_id"] in kinds:
            run["done"][a["exercise_id"]] = {
                "kind": kinds[a["exercise_id"]], "answer": a["answer"], "score": a["score"], "correct": a["correct"],
                "seconds": float(a["seconds"] or 0.0), "attempt_id": a["attempt_id"], "restored": True}
    for q in sittings:
        run["quiz"][q["phase"]] = {"answers": q["answers"], "right": q["right"], "asked": q["asked"]}
    left = [i for i, e in enumerate(lesson.exercises) if not e.optional and e.id not in run["done"]]
    if left:
        run["step"] = left[0] + 1 if run["done"] or "before" in run["quiz"] else 0
    else:
        run["step"] = len(lesson.exercises) + 1
    if run["done"] and "before" not in run["quiz"]:
        run["skipped"].append("before")
    return run


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
