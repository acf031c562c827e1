"""AppTest helpers shared by the Lesson and Class page tests: open a page with a query, fail on an exception,
and read every piece of text on it."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

TEXT_KINDS = ("markdown", "text", "caption", "success", "warning", "info", "error", "code", "header", "subheader",
              "title")


def ok(at: AppTest) -> AppTest:
    """``at`` after checking that its last run raised nothing."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(path: str, query: dict | None = None) -> AppTest:
    """The page at ``path`` run once with the query parameters ``query``."""
    at = AppTest.from_file(path, default_timeout=300)
    at.query_params.update(query or {})
    return ok(at.run())


def texts(at: AppTest) -> str:
    """Every piece of text on the page (markdown, text, captions, alerts, code, headers), one per line."""
    return "\n".join(str(e.value) for kind in TEXT_KINDS for e in getattr(at, kind))
