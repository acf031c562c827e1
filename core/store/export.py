"""The CSV of a room's export rows (:meth:`core.store.Store.export_rows`), safe to open in a spreadsheet.

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read by Excel,
LibreOffice or Google Sheets as a formula (a nickname such as ``=HYPERLINK(...)`` could run or leak data when the
instructor opens the file), so it is written with a leading ``'``, which spreadsheets show as text. Numbers are
written as they are.
"""
from __future__ import annotations

import csv
import io

EXPORT_FIELDS = ("room", "nickname", "kind", "item", "answer", "score", "correct", "seconds", "right", "asked",
                 "created", "attempt_id")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> object:
    """One CSV cell: None as empty, text that a spreadsheet would read as a formula behind a ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV text: one header line with the columns of :data:`EXPORT_FIELDS` first (then any others,
    sorted), one line per row, formula-like text cells neutralised (see the module). Lines end in CRLF (RFC 4180),
    so a field holding a line break or a carriage return is quoted."""
    fields = list(EXPORT_FIELDS) + sorted({k for r in rows for k in r} - set(EXPORT_FIELDS))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: cell(v) for k, v in r.items()})
    return out.getvalue()
