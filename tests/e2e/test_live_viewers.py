"""Real-browser tests of the Live page with more than one viewer and with a model trained in the browser.

Two viewers, each in its own Chromium (a fake camera plays one file per browser process): one camera shows the
espresso photo, the other the German Shepherd, both streaming at once to one server; each page names its own
camera's top-1, computed here with the same engine on the same frames. Then a session trains a two-class model on
the Train page (a ZIP of class folders made here from two bundled photos, head only), goes to Live through the
navigation, picks the ★ model and its camera's dog is named with the model's own class, "my dog".
Screenshots go to artifacts/e2e/.
"""
import io
import re
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench.live import PHOTO, ROOT, camera_frames
from tests.e2e.browser import ARTIFACTS, CHROMIUM_ARGS, chromium_path, unavailable
from tests.e2e.test_live_browser import FAKE_UI, headline, idle, open_live, stream, write_y4m
from tests.live_model import PHOTOS, TITLE, variants

SERVER_LOG = "e2e-live-viewers-streamlit.log"  # the module's server: tests/e2e/conftest.py
DOG = ROOT / "assets" / "dog.jpg"


def camera_args(path) -> list[str]:
    return [FAKE_UI, "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={path}"]


@contextmanager
def pages(*arg_lists):
    """One page per entry, each in its own headless Chromium with those switches (one Playwright for all)."""
    from playwright.sync_api import sync_playwright

    assert unavailable() is None, f"the browser test {unavailable()}"
    with sync_playwright() as p:
        browsers = [p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS + list(a))
                    for a in arg_lists]
        try:
            yield [b.new_context(viewport={"width": 1400, "height": 1000}).new_page() for b in browsers]
        finally:
            for b in browsers:
                b.close()


@pytest.fixture(scope="module")
def cameras(lite_engine):
    """Name → (Y4M file, the top-1 Lite0 gives the frames in it, at its last layer)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, photo in (("espresso", PHOTO), ("dog", DOG)):
        frames = camera_frames(photo, n=30)
        tops = {lite_engine.live_pass(lite_engine.prepare(f), "top_activation").class_index for f in frames[::5]}
        assert len(tops) == 1, (name, tops)  # one class on every frame: the page can only name that one
        path = ARTIFACTS / f"live-{name}.y4m"
        write_y4m(path, frames)
        out[name] = (path, lite_engine.spec.label(tops.pop()))
    assert out["espresso"][1] != out["dog"][1]
    return out


def test_two_viewers_with_two_cameras_each_see_their_own_class(server, cameras):
    (coffee, want_a), (dog, want_b) = cameras["espresso"], cameras["dog"]
    with pages(camera_args(coffee), camera_args(dog)) as (a, b):
        for pg in (a, b):
            open_live(pg, server)
        assert [stream(pg, 10) for pg in (a, b)] in ([0, 0], [0, 1], [1, 0])  # one START of two may need a second
        # both streams on at once: each page's newest frame is its own camera's class, again a few frames later
        for _ in range(2):
            for pg, want, other in ((a, want_a, want_b), (b, want_b, want_a)):
                label, method, layer, model = headline(pg)
                assert (label, method, layer, model) == (want, "Grad-CAM", "top_activation", "efficientnet_lite0")
                assert other not in pg.locator("[data-testid='stMain']").inner_text()
            a.wait_for_timeout(1500)
        for pg, name in ((a, "espresso"), (b, "dog")):
            pg.screenshot(path=str(ARTIFACTS / f"live-viewer-{name}.png"), full_page=True)
            shown = pg.locator("[data-testid='stException']").all_inner_texts()
            assert not shown, shown


def class_folders_zip() -> bytes:
    """A ZIP with one folder per class of :data:`tests.live_model.PHOTOS`, eight crops and flips of its photo each."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, file in PHOTOS.items():
            rgb = np.asarray(Image.open(ROOT / "assets" / file).convert("RGB"))
            for i, pic in enumerate(variants(rgb)):
                out = io.BytesIO()
                Image.fromarray(pic).save(out, format="JPEG", quality=90)
                zf.writestr(f"{name}/{i}.jpg", out.getvalue())
    return buf.getvalue()


def train_in_browser(pg, server, archive) -> None:
    """On the Train page: the ZIP of class folders, the name :data:`TITLE`, a head-only training, judged."""
    pg.goto(server + "/train", timeout=120_000)
    pg.get_by_text("Layer (early → late)").first.wait_for(timeout=180_000)
    idle(pg)
    pg.get_by_text("ZIP of class folders", exact=True).click()
    idle(pg)
    # the ZIP's uploader (the page also has one for a saved model file, above it)
    zip_drop = pg.locator("[data-testid='stFileUploader']").filter(has_text="Drop one ZIP")
    zip_drop.locator("input[type=file]").set_input_files(str(archive))
    pg.get_by_text(f"2 classes · {2 * 8} images").first.wait_for(timeout=60_000)
    idle(pg)
    pg.get_by_label("Name for the model").fill(TITLE)
    pg.get_by_label("Name for the model").press("Enter")
    idle(pg)
    pg.get_by_role("button", name="Train", exact=True).click()
    pg.get_by_text("3 · Judge it").wait_for(timeout=120_000)
    idle(pg)


def choose_model(pg, pattern: str) -> None:
    """Pick the sidebar's model whose text matches ``pattern`` (a regular expression). A run of the whole page
    that begins meanwhile (the sidebar taking in a training that has just ended) closes the open list: then the
    list is opened again, at most four times."""
    for _ in range(4):
        idle(pg)
        pg.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
        try:
            pg.get_by_role("option", name=re.compile(pattern)).click(timeout=15_000)
        except PlaywrightTimeout:
            pg.keyboard.press("Escape")
            continue
        idle(pg)
        return
    raise AssertionError(f"no sidebar model matching {pattern!r} could be chosen")


def test_a_model_trained_on_the_train_page_runs_live_with_its_class_names(server, cameras, tmp_path):
    archive = tmp_path / "mug or dog.zip"
    archive.write_bytes(class_folders_zip())
    with pages(camera_args(cameras["dog"][0])) as (pg,):
        train_in_browser(pg, server, archive)
        pg.locator('[data-testid="stSidebarNav"] a', has_text="Live").click()  # the same session: its ★ model
        pg.get_by_text("Layer (early → late)").first.wait_for(timeout=60_000)
        idle(pg)
        choose_model(pg, re.escape(f"★ {TITLE}"))
        assert stream(pg, 10) <= 1
        label, method, layer, model = headline(pg)
        assert (label, method, layer) == ("my dog", "Grad-CAM", "top_activation"), model
        text = pg.locator("[data-testid='stMain']").inner_text()
        assert "my mug" in text  # the model's other class in the top list: its own two classes, no ImageNet's
        pg.screenshot(path=str(ARTIFACTS / "live-trained.png"), full_page=True)
        shown = pg.locator("[data-testid='stException']").all_inner_texts()
        assert not shown, shown
