"""Lessons: lesson files (TOML) read and validated, and the check kinds, each a function of the learner's answer
and the engine's pass (no Streamlit here).

- :mod:`.schema` — :class:`Lesson`, :class:`Exercise`, :class:`Question`, :func:`load`, :func:`load_folder`,
  :func:`builtin`, :func:`photo_path`, :func:`photo_box`.
- :mod:`.fields` — the readers of a lesson file's fields and of each exercise kind's ``params``.
- :mod:`.boxes` — the object boxes of the photos (``assets/boxes.toml``, or ``boxes.toml`` beside a lesson).
- :mod:`.checks` — :func:`expected` (the studio's side, cached), :func:`check`, :func:`quiz_score`,
  :func:`where_looked`.
- :mod:`.lru` — the bounded, thread-safe cache of the computed answers (:data:`CACHE`); concurrent callers for one
  missing answer share one computation.

docs/lessons.md is the reference of the file format and of every check.
"""
from .checks import CACHE, Expected, Outcome, check, expected, quiz_score, where_looked
from .fields import CHOICE_COMPUTE, KINDS, VALUE_COMPUTE
from .schema import (BUILTIN_DIR, Exercise, Lesson, LessonError, Question, builtin, load, load_folder, photo_box,
                     photo_path)

__all__ = ["BUILTIN_DIR", "CACHE", "CHOICE_COMPUTE", "KINDS", "VALUE_COMPUTE", "Exercise", "Expected", "Lesson",
           "LessonError", "Outcome", "Question", "builtin", "check", "expected", "load", "load_folder", "photo_box",
           "photo_path", "quiz_score", "where_looked"]
