"""Lessons as data: the schema (frozen dataclasses) and the loader of lesson files (TOML, read with ``tomllib``).

A lesson file names its title, intro, default model, an ordered list of ``[[exercise]]`` tables and a
``[[quiz]]`` of concept questions (docs/lessons.md lists every field). :func:`load` checks every field and raises
:class:`LessonError` whose lines each name the file, the exercise (or question) and the field, one problem a line;
:func:`load_folder` keeps the good lessons of a folder and returns the problems of the others.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import boxes as boxes_mod
from .fields import KINDS, Problems
from .fields import number as _number, params as _params, strings as _strings, text as _text

BUILTIN_DIR = Path(__file__).resolve().parent.parent.parent / "lessons"
BUILTIN_FILE = "gradcam-in-45-minutes.toml"
EXERCISE_FIELDS = {"id", "title", "kind", "photo", "model", "layer", "class_index", "method", "instructions",
                   "hints", "explanation", "params", "optional"}
QUESTION_FIELDS = {"id", "text", "options", "answer", "explanation"}
LESSON_FIELDS = {"id", "title", "intro", "model", "exercise", "quiz"}


@dataclass(frozen=True)
class Exercise:
    """One exercise: its photo, model, layer, class and method, the learner's text, and one check (``kind``).

    ``layer`` None: the model's default (last) layer; ``class_index`` None: the photo's top-1 class.
    ``params`` holds the check's own settings, with their defaults filled in (docs/lessons.md)."""

    id: str
    title: str
    kind: str
    photo: str
    model: str
    layer: str | None
    class_index: int | None
    method: str
    instructions: str
    hints: tuple[str, ...]
    explanation: str
    params: dict = field(hash=False, compare=False)
    optional: bool = False
    folder: Path | None = field(default=None, repr=False, compare=False)  # the lesson's folder (its own photos)


@dataclass(frozen=True)
class Question:
    """A multiple-choice concept question of the before/after quiz; ``answer`` indexes ``options``."""

    id: str
    text: str
    options: tuple[str, ...]
    answer: int
    explanation: str


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    intro: str
    exercises: tuple[Exercise, ...]
    quiz: tuple[Question, ...]
    path: Path


class LessonError(ValueError):
    """A lesson file that cannot be used. ``str(err)`` is its first problem, one line
    ``"<file>: exercise '<id>': field '<field>': <what is wrong>"``; ``problems`` holds every such line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(self.problems[0] if self.problems else "the lesson has a problem")


def _exercise(i: int, ex, lesson_model: str, folder: Path, probs: Problems, seen: set) -> Exercise | None:
    from .. import models
    from ..cam import methods

    eid = ex.get("id") if isinstance(ex, dict) else None
    where = f"exercise '{eid}'" if isinstance(eid, str) and eid.strip() else f"exercise #{i + 1}"
    if not isinstance(ex, dict):
        probs.add(where, "exercise", "must be a table ([[exercise]])")
        return None
    before = len(probs.lines)
    eid = _text(ex, "id", probs, where)
    if eid in seen:
        probs.add(where, "id", "is used by another exercise of this lesson")
    seen.add(eid)
    for key in sorted(set(ex) - EXERCISE_FIELDS):
        probs.add(where, key, "unknown field")
    kind = _text(ex, "kind", probs, where)
    if kind and kind not in KINDS:
        probs.add(where, "kind", f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    model = _text(ex, "model", probs, where, required=False, default=lesson_model)
    spec = None
    try:
        spec = models.get_spec(model)
    except ValueError:
        probs.add(where, "model", f"unknown model {model!r}; choose one of {', '.join(models.REGISTRY)}")
    layer = ex.get("layer")
    if layer is not None and (spec is None or layer not in spec.layers):
        probs.add(where, "layer", f"unknown layer {layer!r}" + (f" for {spec.name}" if spec else ""))
    cls = ex.get("class_index")
    if cls is not None and spec is not None:
        cls = _number(cls, probs, where, "class_index", 0, spec.num_classes - 1, integer=True)
    method = _text(ex, "method", probs, where, required=False, default="gradcam")
    if method not in methods.EVERY:
        probs.add(where, "method", f"unknown method {method!r}; choose one of {', '.join(methods.EVERY)}")
    elif kind == "earliest_layer" and methods.EVERY[method].on_pass is None:
        probs.add(where, "method", "earliest_layer needs a method computed from the cached pass (e.g. gradcam)")
    photo = _text(ex, "photo", probs, where)
    labels: list[str] = []
    if photo:
        try:
            boxes_mod.photo_file(photo, folder)
            labels = [b.label for b in boxes_mod.boxes_for(photo, folder)]
        except ValueError as exc:
            probs.add(where, "photo", str(exc))
    hints = _strings(ex.get("hints", []), probs, where, "hints") if ex.get("hints", []) != [] else ()
    optional = ex.get("optional", False)
    if not isinstance(optional, bool):
        probs.add(where, "optional", "must be true or false")
    raw = ex.get("params", {})
    if not isinstance(raw, dict):
        probs.add(where, "params", "must be a table ([exercise.params])")
        raw = {}
    params = _params(kind, raw, ex, spec, labels, probs, where) if kind in KINDS else dict(raw)
    title = _text(ex, "title", probs, where, required=False, default=eid)
    instructions = _text(ex, "instructions", probs, where)
    explanation = _text(ex, "explanation", probs, where, required=False)
    if len(probs.lines) > before:
        return None
    return Exercise(eid, title, kind, photo, model, layer, cls, method, instructions, hints, explanation, params,
                    optional, folder)


def _question(i: int, q, probs: Problems, seen: set) -> Question | None:
    qid = q.get("id") if isinstance(q, dict) else None
    where = f"question '{qid}'" if isinstance(qid, str) and qid.strip() else f"question #{i + 1}"
    if not isinstance(q, dict):
        probs.add(where, "quiz", "must be a table ([[quiz]])")
        return None
    before = len(probs.lines)
    qid = _text(q, "id", probs, where)
    if qid in seen:
        probs.add(where, "id", "is used by another question of this lesson")
    seen.add(qid)
    for key in sorted(set(q) - QUESTION_FIELDS):
        probs.add(where, key, "unknown field")
    options = _strings(q.get("options"), probs, where, "options", least=2)
    answer = q.get("answer")
    if answer is None:
        probs.add(where, "answer", "missing")
    elif options:
        answer = _number(answer, probs, where, "answer", 0, len(options) - 1, integer=True)
    text = _text(q, "text", probs, where)
    explanation = _text(q, "explanation", probs, where, required=False)
    if len(probs.lines) > before:
        return None
    return Question(qid, text, options, answer, explanation)


def load(path) -> Lesson:
    """The lesson in ``path``, every field checked.

    Raises:
        LessonError: one line per problem (``problems``), each naming the file, the exercise and the field.
    """
    from .. import models

    path = Path(path)
    probs = Problems(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LessonError([f"{path}: cannot be read ({exc.strerror or exc})"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LessonError([f"{path}: not a valid TOML file: {str(exc).splitlines()[0]}"]) from None
    where = "lesson"
    for key in sorted(set(data) - LESSON_FIELDS):
        probs.add(where, key, "unknown field")
    lid = _text(data, "id", probs, where, required=False, default=path.stem)
    title = _text(data, "title", probs, where)
    intro = _text(data, "intro", probs, where, required=False)
    model = _text(data, "model", probs, where, required=False, default=models.DEFAULT_MODEL)
    raw_ex, raw_q = data.get("exercise", []), data.get("quiz", [])
    if not isinstance(raw_ex, list) or not raw_ex:
        probs.add(where, "exercise", "a lesson needs at least one [[exercise]]")
        raw_ex = []
    if not isinstance(raw_q, list):
        probs.add(where, "quiz", "must be a list of [[quiz]] tables")
        raw_q = []
    seen: set = set()
    exercises = [_exercise(i, ex, model, path.parent, probs, seen) for i, ex in enumerate(raw_ex)]
    seen_q: set = set()
    quiz = [_question(i, q, probs, seen_q) for i, q in enumerate(raw_q)]
    if probs.lines:
        raise LessonError(probs.lines)
    return Lesson(lid, title, intro, tuple(exercises), tuple(quiz), path)


def load_folder(folder) -> tuple[list[Lesson], list[str]]:
    """Every ``*.toml`` lesson of ``folder`` (by name): the good ones, and one line per problem of the others
    (``boxes.toml`` is a lesson's boxes, not a lesson)."""
    good, problems = [], []
    for path in sorted(Path(folder).glob("*.toml")):
        if path.name == boxes_mod.BOXES_FILE:
            continue
        try:
            good.append(load(path))
        except LessonError as exc:
            problems.extend(exc.problems)
    return good, problems


def builtin() -> Lesson:
    """The built-in lesson, "Grad-CAM in 45 minutes"."""
    return load(BUILTIN_DIR / BUILTIN_FILE)


def photo_path(lesson: Lesson, exercise: Exercise) -> Path:
    """The exercise's photo file: a bundled sample, or a file beside the lesson."""
    return boxes_mod.photo_file(exercise.photo, lesson.path.parent)


def photo_box(lesson: Lesson | None, exercise: Exercise, label: str | None = None) -> tuple | None:
    """The object's box of the exercise as fractions (x0, y0, x1, y1) of the photo's width and height: the
    exercise's ``params.box``, else the box labelled ``label`` or ``params.object``, else the photo's first box;
    None where the photo has no box."""
    if label is None and exercise.params.get("box") is not None:
        return tuple(float(v) for v in exercise.params["box"])
    folder = lesson.path.parent if lesson is not None else exercise.folder
    found = boxes_mod.boxes_for(exercise.photo, folder)
    want = label or exercise.params.get("object")
    for b in found:
        if want is None or b.label == want:
            return b.fractions
    return None
