"""Real-browser test of the Live page: Chromium's fake camera plays a Y4M video made here from the bundled espresso
photo (a few pixels of hand-held shake per frame) to streamlit-webrtc; the page names the photo's top-1 as Explain
does, the overlay coming back changes from frame to frame, and the server counts the frames it explained. Freeze
opens Explain with the frame. Without a camera, and with the camera's permission denied, the page says which in
one sentence and offers ``st.camera_input`` under it.
Screenshots go to artifacts/e2e/.
"""
import re

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench.live import camera_frames
from tests.e2e.browser import ARTIFACTS, chromium_page
from ui.live_problems import DENIED, NO_CAMERA, UNKNOWN

SERVER_LOG = "e2e-live-streamlit.log"  # the module's server: tests/e2e/conftest.py
FAKE_UI = "--use-fake-ui-for-media-stream"
MIN_FRAMES = 20  # explained frames the server must count
STATE_IDLE = """() => { const el = document.querySelector('[data-test-script-state]');
                        return !!el && el.getAttribute('data-test-script-state') === 'notRunning'; }"""


def write_y4m(path, frames, fps: int = 30) -> None:
    """An uncompressed YUV4MPEG2 video (4:2:0, what Chromium's fake camera reads) of RGB frames (JPEG's full-range
    BT.601 conversion; chroma averaged over each 2×2 block)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
            v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
            f.write(b"FRAME\n")
            f.write(np.clip(np.rint(y), 0, 255).astype(np.uint8).tobytes())
            for c in (u, v):
                c = c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
                f.write(np.clip(np.rint(c), 0, 255).astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def espresso_camera():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "live-espresso.y4m"
    write_y4m(path, camera_frames(n=30))
    return path


def idle(pg, timeout_s: float = 180) -> None:
    pg.wait_for_timeout(200)
    pg.wait_for_function(STATE_IDLE, timeout=timeout_s * 1000, polling=100)


def open_live(pg, server) -> None:
    pg.goto(server + "/live", timeout=120_000)
    pg.get_by_text("Layer (early → late)").first.wait_for(timeout=180_000)  # start-up work done, controls drawn
    idle(pg)


def start_stream(pg):
    """Press the component's START; returns its frame."""
    frame = pg.frame_locator("iframe[title*='webrtc']").first
    frame.get_by_role("button", name=re.compile("start", re.I)).click(timeout=60_000)
    return frame


PROCESSED_JS = """(n) => { const m = document.querySelector('[data-testid="stMain"]').innerText
                            .match(/Processed frames: (\\d+)/); return !!m && Number(m[1]) >= n; }"""
HEADLINE = re.compile(r"^(.+?) · (.+?) at `?(\w+)`? of (.+)$", re.M)


def wait_processed(pg, n: int = MIN_FRAMES, timeout_s: float = 60) -> None:
    """Wait until the page counts at least ``n`` explained frames."""
    pg.wait_for_function(PROCESSED_JS, arg=n, timeout=timeout_s * 1000, polling=250)


def stop_stream(pg) -> None:
    frame = pg.frame_locator("iframe[title*='webrtc']").first
    frame.get_by_role("button", name=re.compile("stop", re.I)).click(timeout=30_000)
    pg.get_by_text("Press START").first.wait_for(timeout=30_000)  # the page ran again, not playing
    idle(pg)


def processed(pg) -> int:
    """The page's count of explained frames (0 before the first)."""
    m = re.search(r"Processed frames: (\d+)", pg.locator("[data-testid='stMain']").inner_text())
    return int(m.group(1)) if m else 0


def stream(pg, n: int, report: dict | None = None, tries: int = 3) -> int:
    """START, then wait until the page counts ``n`` explained frames; returns how many restarts that took. A start
    after which not one more frame is explained within 30 s is stopped where it shows STOP (still connecting) and
    started again, as a person would; each restart is also added to ``report["restarts"]``. (On a busy server
    streamlit-webrtc's check for a page left stopped such a stream as it connected; server/runtime.keep_stream
    keeps it, and the restart stays for any other cause.)"""
    report = {} if report is None else report
    for restarts in range(tries):
        before = processed(pg)
        start_stream(pg)
        try:
            wait_processed(pg, before + 1, timeout_s=30)
            wait_processed(pg, n)
            return restarts
        except PlaywrightTimeout:
            if processed(pg) > before:
                raise  # frames came, then stopped coming: not a lost start
            report["restarts"] = report.get("restarts", 0) + 1
            frame = pg.frame_locator("iframe[title*='webrtc']").first
            if frame.get_by_role("button", name=re.compile("stop", re.I)).is_visible():
                stop_stream(pg)
            idle(pg)
    raise AssertionError(f"{tries} STARTs brought no {n} explained frames")


def headline(pg) -> tuple[str, str, str, str]:
    """The figures' first line: (explained class, method, layer, model)."""
    text = pg.locator("[data-testid='stMain']").inner_text()
    m = HEADLINE.search(text)
    assert m, text
    return tuple(g.strip("*") for g in m.groups())


PICTURE_JS = """(v) => { if (!v || v.readyState < 2 || !v.videoWidth) return null;
  const c = document.createElement('canvas'); c.width = 64; c.height = 48;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 48);
  return Array.from(g.getImageData(0, 0, 64, 48).data); }"""


def test_the_fake_camera_is_explained_live_and_freeze_opens_explain(server, espresso_camera):
    args = [FAKE_UI, "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={espresso_camera}"]
    with chromium_page(1000, args) as pg:
        open_live(pg, server)
        frame = start_stream(pg)
        main = pg.locator("[data-testid='stMain']")
        processed = main.get_by_text(re.compile(r"Processed frames: \d+"))
        try:
            processed.wait_for(timeout=60_000)
        except Exception:  # what the page showed instead, for the report
            pg.screenshot(path=str(ARTIFACTS / "live-stream-failed.png"), full_page=True)
            raise AssertionError("no explained frame within 60 s after START; the page said:\n" + main.inner_text()
                                 + "\nthe component said:\n" + frame.locator("body").inner_text())
        wait_processed(pg)
        text = main.inner_text()
        assert re.search(r"\*?espresso\*?", text), text  # the photo's top-1, as Explain names it
        assert "Grad-CAM at `top_activation`" in text or "Grad-CAM at top_activation" in text, text
        # the picture coming back changes from frame to frame (the overlay of each new frame)
        video = frame.locator("video").first
        first = np.array(video.evaluate(PICTURE_JS), float)
        pg.wait_for_timeout(700)
        second = np.array(video.evaluate(PICTURE_JS), float)
        assert first.size and second.size and np.abs(first - second).mean() > 0.5
        pg.screenshot(path=str(ARTIFACTS / "live-stream.png"), full_page=True)
        fps = float(re.search(r"Frames / s\s*([\d.]+)", main.inner_text()).group(1))
        assert fps >= 5, main.inner_text()
        assert pg.locator("[data-testid='stException']").count() == 0

        pg.get_by_role("button", name="Freeze: explain this frame on Explain").click()
        pg.get_by_text("Explaining your photo").first.wait_for(timeout=60_000)  # the sidebar: the frame is the photo
        pg.get_by_text(re.compile(r"Explaining \*?\*?espresso")).first.wait_for(timeout=60_000)
        assert "webcam frame.png" in pg.locator("[data-testid='stSidebar']").inner_text()
        pg.screenshot(path=str(ARTIFACTS / "live-frozen.png"), full_page=True)


def snapshot_camera_offered(pg, said: str) -> None:
    """The page says ``said`` (and not the generic sentence), shows ``st.camera_input`` under it without the toggle,
    streams nothing and raised nothing."""
    main = pg.locator("[data-testid='stMain']")
    main.get_by_text(said).wait_for(timeout=60_000)
    idle(pg)
    pg.locator("[data-testid='stCameraInput']").wait_for(timeout=30_000)
    text = main.inner_text()
    assert UNKNOWN not in text and "Processed frames" not in text, text
    assert pg.locator("[data-testid='stException']").count() == 0


def test_without_a_camera_the_page_says_so_and_offers_snapshots(server):
    with chromium_page(1000, [FAKE_UI]) as pg:  # no fake device: the browser has no camera
        open_live(pg, server)
        frame = start_stream(pg)
        frame.get_by_text(re.compile(r"NotFoundError|not found", re.I)).first.wait_for(timeout=30_000)
        snapshot_camera_offered(pg, NO_CAMERA)
        pg.screenshot(path=str(ARTIFACTS / "live-no-camera.png"), full_page=True)


def test_a_denied_camera_permission_is_said_and_snapshots_are_offered(server):
    # a camera exists (the fake device), but the camera's permission for this site is "denied", as a person sets it
    with chromium_page(1000, ["--use-fake-device-for-media-stream"]) as pg:
        cdp = pg.context.browser.new_browser_cdp_session()
        for name in ("camera", "microphone"):
            cdp.send("Browser.setPermission", {"permission": {"name": name}, "setting": "denied", "origin": server})
        open_live(pg, server)
        frame = start_stream(pg)
        # streamlit-webrtc's box: "NotAllowedError: Permission denied" (or "Access denied (…)" in its other path)
        frame.get_by_text(re.compile(r"Permission denied|Access denied", re.I)).first.wait_for(timeout=30_000)
        assert "Device not available" not in frame.locator("body").inner_text()  # denied, not missing
        snapshot_camera_offered(pg, DENIED)
        assert NO_CAMERA not in pg.locator("[data-testid='stMain']").inner_text()
        pg.screenshot(path=str(ARTIFACTS / "live-denied.png"), full_page=True)
