"""Real-browser test of the Train page's webcam: Chromium's fake camera (a generated test pattern) takes photos
into a class through ``st.camera_input``, and the class's count goes up by one per photo.
Screenshots go to artifacts/e2e/.
"""

import pytest

from tests.e2e.browser import ARTIFACTS, chromium_page, streamlit_server

FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def server():
    with streamlit_server("e2e-train-streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def page():
    with chromium_page(1100, FAKE_CAMERA) as pg:
        yield pg


IDLE_JS = """() => { const el = document.querySelector('[data-test-script-state]');
                     return !!el && el.getAttribute('data-test-script-state') === 'notRunning'; }"""


def idle(page, timeout_s: float = 180) -> None:
    """Wait until the page's script is not running (a click while it runs may land on a widget being redrawn)."""
    page.wait_for_timeout(200)
    page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000, polling=100)


def test_webcam_photos_go_into_the_chosen_class(server, page):
    page.goto(server + "/train", timeout=120_000)
    page.get_by_text("Train on your own classes").wait_for(timeout=180_000)
    page.get_by_text("Sample photo").first.wait_for(timeout=180_000)  # the sidebar: the start-up work is done
    idle(page)
    page.get_by_label("New class name").fill("my mug")
    page.get_by_label("New class name").press("Enter")
    idle(page)
    page.get_by_role("button", name="Add class").click()
    page.get_by_text("my mug · 0 images").wait_for(timeout=60_000)
    idle(page)
    page.get_by_text("Webcam", exact=True).click()
    idle(page)
    for n in (1, 2):
        take = page.get_by_role("button", name="Take Photo")
        take.wait_for(timeout=60_000)
        # the fake camera's frames are flowing; each photo at another moment of its animation (a fresh widget
        # restarts the stream, and the same frame twice would be the same photo, which a class keeps once)
        page.wait_for_function(
            """(t) => [...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0
                  && v.currentTime > t)""", arg=0.5 + 1.5 * n, timeout=60_000)
        take.click()
        idle(page)
        page.get_by_text(f"my mug · {n} image{'' if n == 1 else 's'}").wait_for(timeout=60_000)
        page.get_by_text("Added a webcam photo to my mug.").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "train-webcam.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
