"""The real-browser tests' harness: where their screenshots and server logs go, a ``streamlit run`` server, a
headless Chromium page (Playwright, Debian's ``chromium``), the waits for a page that has run and settled, and
where a page's drawing canvas is. The tests import these from here; the server, the browser's switches and the
waits are the app's outside driver, :mod:`bench.browser`. The fixtures built on them are in ``conftest.py``."""
from contextlib import contextmanager
from pathlib import Path

from bench.browser import (CHROMIUM_ARGS, IDLE_JS, SETTLED_JS, WATCH_JS, Server, arm, chromium_path, unavailable,
                           wait_idle, wait_settled)

__all__ = ["ARTIFACTS", "CHROMIUM_ARGS", "IDLE_JS", "SETTLED_JS", "WATCH_JS", "Server", "arm", "canvas_box",
           "chromium_page", "chromium_path", "streamlit_server", "unavailable", "wait_idle", "wait_settled"]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"


@contextmanager
def streamlit_server(log_name: str):
    """A fresh ``streamlit run`` server logging to ``artifacts/<log_name>``; yields its URL."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Server(log_path=ARTIFACTS.parent / log_name, env={"TF_CPP_MIN_LOG_LEVEL": "2"}) as srv:
        yield srv.url


@contextmanager
def chromium_page(height: int = 1000, extra_args=()):
    """A page 1400 px wide in a fresh headless Chromium (``extra_args``: more command-line switches)."""
    from playwright.sync_api import sync_playwright

    assert unavailable() is None, f"the browser test {unavailable()}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                    args=CHROMIUM_ARGS + list(extra_args))
        try:
            yield browser.new_context(viewport={"width": 1400, "height": height}).new_page()
        finally:
            browser.close()


def canvas_box(pg) -> dict:
    """The drawing canvas's place on screen once it stays put (the component mounts, reports its background's fit
    and the page runs once more: the first canvas element can be replaced meanwhile)."""
    from playwright.sync_api import Error

    for _ in range(5):
        canvas = pg.locator("canvas.upper-canvas").first
        canvas.wait_for(timeout=60_000)
        wait_idle(pg)
        try:
            canvas.scroll_into_view_if_needed(timeout=5_000)
            pg.wait_for_timeout(300)
            box = canvas.bounding_box(timeout=5_000)
        except Error:
            continue
        if box and box["width"] > 0:
            return box
    raise AssertionError("the drawing canvas never settled")
