"""The fixtures of the real-browser tests: one ``streamlit run`` server and one Chromium page per test module.

A module sets ``SERVER_LOG`` (the server's log under ``artifacts/``), and may set ``PAGE_HEIGHT`` (1000 px by
default) and ``BROWSER_ARGS`` (more Chromium switches, e.g. a fake camera)."""
import pytest

from tests.e2e.browser import chromium_page, streamlit_server


@pytest.fixture(scope="module")
def server(request):
    """The URL of a fresh server for this module, logging to ``artifacts/<SERVER_LOG>``."""
    with streamlit_server(request.module.SERVER_LOG) as url:
        yield url


@pytest.fixture(scope="module")
def page(request):
    """A page 1400 px wide and ``PAGE_HEIGHT`` high in a fresh headless Chromium, kept for the module's tests."""
    with chromium_page(getattr(request.module, "PAGE_HEIGHT", 1000), getattr(request.module, "BROWSER_ARGS", ())) as pg:
        yield pg
