"""The README's screenshots: every page of the app as a student sees it after a typical interaction.

Taken from a real `streamlit run` in headless Chromium (1400×1000 viewport), one `<shot>.png` each. Each picture is
the whole page: for it the window is made as tall as the main area's and the sidebar's content (they scroll inside
the window).

    .venv/bin/python tools/screenshots.py [explain occlude compare measure learn train ...] [--out docs]

All pages show the default model and sample photo (cat_and_dog.jpg).

``explain``: the Explain page (/) with the photo, the heatmap, the raw map and the top-k chart.
``occlude``: the Occlude page after a rectangle is dragged over the dog on the canvas: the occluded photo, the
maps and the before/after chart and table.
``compare``: the Compare page's grid of the default methods × three layers.
``measure``: the Measure page after a box is dragged around the cat (IoU, pointing game) and the deletion and
insertion curves are computed.
``learn``: the Learn page, Grad-CAM step by step on the photo.
``train``: the Train page after head-only training of the default model on two classes, cat and dog, made of
crops of the repository's own photos (``assets/``: cat.jpg and the cat half of cat_and_dog.jpg, dog.jpg and its
dog half; random crops, flips and small colour changes, written to a temporary folder and uploaded through the
page's file uploader), with the training's charts, the metrics and the confusion matrix.
Needs the dev requirements (Playwright) and Debian's chromium.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIEWPORT = {"width": 1400, "height": 1000}

IDLE_JS = """() => { const el = document.querySelector('[data-test-script-state]');
                     return !!el && el.getAttribute('data-test-script-state') === 'notRunning'; }"""


def idle(page, timeout_s: float = 300) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000, polling=100)


def crops(sources, n: int, folder: Path, prefix: str, seed: int) -> list[Path]:
    """``n`` random crops (55–100 % of each side), flips and brightness/colour changes of ``sources``."""
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = sources[i % len(sources)]
        w, h = im.size
        s = rng.uniform(0.55, 1.0)
        cw, ch = int(w * s), int(h * s)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        c = im.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            c = c.transpose(Image.FLIP_LEFT_RIGHT)
        c = ImageEnhance.Brightness(c).enhance(rng.uniform(0.8, 1.2))
        c = ImageEnhance.Color(c).enhance(rng.uniform(0.7, 1.3))
        path = folder / f"{prefix}_{i:02d}.jpg"
        c.save(path, "JPEG", quality=92)
        out.append(path)
    return out


def cat_dog(folder: Path, per_class: int = 16) -> dict[str, list[Path]]:
    from PIL import Image

    a = ROOT / "assets"
    both = Image.open(a / "cat_and_dog.jpg").convert("RGB")
    w, h = both.size
    cats = [Image.open(a / "cat.jpg").convert("RGB"), both.crop((0, 0, int(w * 0.56), h))]
    dogs = [Image.open(a / "dog.jpg").convert("RGB"), both.crop((int(w * 0.58), 0, w, h))]
    return {"cat": crops(cats, per_class, folder, "cat", 1), "dog": crops(dogs, per_class, folder, "dog", 2)}


def open_page(page, url: str, path: str, text) -> None:
    """Go to the page at ``path`` and wait until it shows ``text`` (a string or a pattern) and its script is idle."""
    page.goto(url + path, timeout=180_000)
    page.get_by_text(text).first.wait_for(timeout=300_000)
    idle(page)


def drag(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag a rectangle on the drawing canvas, from (x0, y0) to (x1, y1) in fractions of its size."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=60_000)
    idle(page)
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the component reports its background's fit and the page runs once more
    idle(page)
    b = canvas.bounding_box()
    page.mouse.move(b["x"] + b["width"] * x0, b["y"] + b["height"] * y0)
    page.mouse.down()
    for f in (0.25, 0.5, 0.75, 1.0):
        page.mouse.move(b["x"] + b["width"] * (x0 + (x1 - x0) * f), b["y"] + b["height"] * (y0 + (y1 - y0) * f),
                        steps=5)
    page.mouse.up()


def snap(page, out: Path, name: str) -> Path:
    """The whole page, once idle and its charts drawn, as ``out/<name>.png``."""
    idle(page)
    page.wait_for_timeout(1500)  # Vega's canvases draw after the elements arrive
    page.mouse.move(1390, 600)  # no chart toolbar, canvas toolbar or sidebar button shown on hover
    page.wait_for_timeout(500)
    assert page.locator('[data-testid="stException"]').count() == 0, f"the {name} page shows an exception"
    # the main area and the sidebar scroll inside the window: a window as tall as their content shows them whole
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stSidebarContent"]')].map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
    page.wait_for_timeout(1000)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    return path


def explain(page, url: str, out: Path) -> Path:
    open_page(page, url, "/", re.compile(r"^Top-\d+ predictions$"))
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    return snap(page, out, "explain")


def occlude(page, url: str, out: Path) -> Path:
    open_page(page, url, "/occlude", "How the top-k moved")
    drag(page, 0.66, 0.02, 0.99, 0.98)  # the dog: right of the seam at 601/940
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMain"] p')].some(e =>
        / of the photo occluded/.test(e.textContent) && !/ 0\\.0% of the photo occluded/.test(e.textContent))""",
                           timeout=120_000)  # the headline of the painted photo
    return snap(page, out, "occlude")


def compare(page, url: str, out: Path) -> Path:
    open_page(page, url, "/compare", "The times are those of the map itself")
    return snap(page, out, "compare")


def measure(page, url: str, out: Path) -> Path:
    open_page(page, url, "/measure", "Draw or upload the object's box")
    drag(page, 0.03, 0.06, 0.60, 0.97)  # the cat: left of the seam
    page.get_by_text("IoU against the threshold").wait_for(timeout=120_000)
    idle(page)
    page.get_by_role("button", name=re.compile("Compute deletion and insertion curves")).click()
    page.get_by_text("deletion AUC (low = good)").first.wait_for(timeout=300_000)
    return snap(page, out, "measure")


def learn(page, url: str, out: Path) -> Path:
    open_page(page, url, "/learn", "7 · References")
    return snap(page, out, "learn")


def train(page, url: str, out: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="screenshots-"))
    try:
        classes = cat_dog(folder)
        open_page(page, url, "/train", "New class name")  # below the sidebar: the model is ready
        for name, files in classes.items():
            box = page.get_by_label("New class name")
            box.fill(name)
            box.press("Enter")
            idle(page)
            page.get_by_role("button", name="Add class").click()
            page.get_by_text(f"{name} · 0 images").wait_for(timeout=60_000)
            idle(page)
            uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Drop images for")
            uploader.locator('input[type="file"]').set_input_files([str(f) for f in files])
            page.get_by_text(f"{name} · {len(files)} images").wait_for(timeout=300_000)
            idle(page)
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_role("heading", name="3 · Judge it").wait_for(timeout=600_000)
        return snap(page, out, "train")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


SHOTS = {"explain": explain, "occlude": occlude, "compare": compare, "measure": measure, "learn": learn,
         "train": train}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shots", nargs="*", metavar="SHOT", help=f"some of {', '.join(SHOTS)} (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    unknown = [s for s in args.shots if s not in SHOTS]
    if unknown:
        parser.error(f"no screenshot called {unknown[0]!r}; there are {', '.join(SHOTS)}")
    from playwright.sync_api import sync_playwright

    from bench.browser import Server, launch

    args.out.mkdir(parents=True, exist_ok=True)
    with Server(env={"TF_CPP_MIN_LOG_LEVEL": "2"}) as server, sync_playwright() as p:
        browser = launch(p)
        for name in args.shots or list(SHOTS):
            page = browser.new_context(viewport=VIEWPORT).new_page()
            print(SHOTS[name](page, server.url, args.out), flush=True)
            page.context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
