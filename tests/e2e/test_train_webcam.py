"""Real-browser test of the Train page's webcam: Chromium's fake camera (a generated test pattern) takes photos
into a class through ``st.camera_input``, and the class's count goes up by one per photo; then a second class,
a head-only training, and the "Judge it" figures must fit their boxes (issue 22: "40 train · 10 …" was cut off).
Screenshots go to artifacts/e2e/.
"""

from tests.e2e.browser import ARTIFACTS

FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]

SERVER_LOG = "e2e-train-streamlit.log"  # the module's server and page: tests/e2e/conftest.py
PAGE_HEIGHT = 1100
BROWSER_ARGS = FAKE_CAMERA


IDLE_JS = """() => { const el = document.querySelector('[data-test-script-state]');
                     return !!el && el.getAttribute('data-test-script-state') === 'notRunning'; }"""


def idle(page, timeout_s: float = 180) -> None:
    """Wait until the page's script is not running (a click while it runs may land on a widget being redrawn)."""
    page.wait_for_timeout(200)
    page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000, polling=100)


def add_class(page, name: str) -> None:
    page.get_by_label("New class name").fill(name)
    page.get_by_label("New class name").press("Enter")
    idle(page)
    page.get_by_role("button", name="Add class").click()
    page.get_by_text(f"{name} · 0 images").wait_for(timeout=60_000)
    idle(page)


def take_photos(page, name: str, count: int, after: float) -> float:
    """``count`` webcam photos into the chosen class; returns the camera time the last one was taken after."""
    for n in range(1, count + 1):
        take = page.get_by_role("button", name="Take Photo")
        take.wait_for(timeout=60_000)
        # the fake camera's frames are flowing; each photo at another moment of its animation (a fresh widget
        # restarts the stream, and the same frame twice would be the same photo, which a class keeps once)
        after += 1.5
        page.wait_for_function(
            """(t) => [...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0
                  && v.currentTime > t)""", arg=after, timeout=60_000)
        take.click()
        idle(page)
        page.get_by_text(f"{name} · {n} image{'' if n == 1 else 's'}").wait_for(timeout=60_000)
        page.get_by_text(f"Added a webcam photo to {name}.").first.wait_for(timeout=60_000)
    return after


OVERFLOW_JS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricLabel"]')]
    .map(e => [e.innerText, e.scrollWidth - e.clientWidth])"""


def test_webcam_photos_go_into_the_chosen_class_and_a_training_is_judged_in_figures_that_fit(server, page):
    page.goto(server + "/train", timeout=120_000)
    page.get_by_text("Train on your own classes").wait_for(timeout=180_000)
    page.get_by_text("Layer (early → late)").first.wait_for(timeout=180_000)  # the sidebar: start-up work done
    idle(page)
    add_class(page, "my mug")
    page.get_by_text("Webcam", exact=True).click()
    idle(page)
    t = take_photos(page, "my mug", 2, 0.5)
    page.screenshot(path=str(ARTIFACTS / "train-webcam.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0

    add_class(page, "my shirt")  # the new class becomes the target
    take_photos(page, "my shirt", 2, t)
    page.get_by_text("2 classes · 4 images").first.wait_for(timeout=60_000)  # not "1 classes"
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("3 · Judge it").wait_for(timeout=180_000)
    idle(page)
    page.get_by_text("Cross-validated accuracy").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "train-judged.png"), full_page=True)
    figures = page.evaluate(OVERFLOW_JS)
    assert len(figures) >= 8, figures  # four metrics, a label and a value each
    assert all(over <= 0 for _, over in figures), figures  # no figure is cut off in its box
    assert page.locator("[data-testid='stException']").count() == 0
