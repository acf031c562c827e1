"""``python -m core lesson check FILE...`` and ``python -m core lesson export --room CODE``.

``check`` loads each lesson file as the app does (:func:`core.lessons.load`): exit 0 where all are good, else one
line per problem on stderr (file, exercise, field) and exit 2. ``export`` writes a workshop room's attempts and quiz
sittings as CSV (to a file or stdout, through :func:`core.store.csv_text`, which neutralises spreadsheet formulas)
from the database (:class:`core.store.Store`); an unknown room or a SQLite file that does not exist is one line
and exit 2. :func:`add_parsers` registers the command; :data:`HANDLERS` maps its name to the function.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..safetext import printable

LESSON_HELP = """\
check FILE...   validate lesson files (TOML; docs/lessons.md): exit 0, or one line per problem and exit 2
export          a workshop room's attempts and quiz answers as CSV (--room CODE; --db URL, default
                $GRADCAM_STUDIO_DB or the SQLite file in the studio's cache folder; --csv FILE, default stdout)"""


def add_parsers(sub) -> None:
    """Add ``lesson`` (with ``check`` and ``export``) to ``sub`` (the main parser's ``add_subparsers()``)."""
    import argparse

    p = sub.add_parser("lesson", help="check lesson files; export a workshop room as CSV", description=LESSON_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="lesson_cmd", required=True)
    c = what.add_parser("check", help="validate lesson files (one line per problem, exit 2)")
    c.add_argument("files", nargs="+", metavar="FILE")
    e = what.add_parser("export", help="a room's attempts and quiz answers as CSV")
    e.add_argument("--room", required=True, metavar="CODE")
    e.add_argument("--db", default=None, metavar="URL", help="SQLAlchemy URL (default: $GRADCAM_STUDIO_DB or SQLite)")
    e.add_argument("--csv", default=None, metavar="FILE", help="write here instead of stdout")


def cmd_check(files) -> int:
    from ..lessons import LessonError, load

    problems = []
    for f in files:
        try:
            load(f)
        except LessonError as exc:
            problems.extend(exc.problems)
    for line in problems:
        print(printable(line), file=sys.stderr)
    if not problems:
        print(f"{len(files)} lesson file(s): no problems")
    return 2 if problems else 0


def rows_csv(rows: list[dict]) -> str:
    """The export's rows as CSV text (:func:`core.store.csv_text`)."""
    from ..store import csv_text

    return csv_text(rows)


def cmd_export(room: str, db: str | None, out: str | None) -> int:
    try:
        from ..store import Store
    except ImportError as exc:
        print(f"error: the workshop database is not available ({exc})", file=sys.stderr)
        return 2
    try:
        store = Store(db, create=False)  # a mistyped SQLite path is an error, not a new empty database
        try:
            rows = store.export_rows(room)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - an unknown room, an unreachable database: one line
        print(f"error: {printable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}", file=sys.stderr)
        return 2
    text = rows_csv(rows)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(f"{len(rows)} row(s) written to {printable(out)}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_lesson(args) -> int:
    if args.lesson_cmd == "check":
        return cmd_check(args.files)
    return cmd_export(args.room, args.db, args.csv)


HANDLERS = {"lesson": cmd_lesson}
