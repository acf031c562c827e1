"""The README's screenshots, taken from a real `streamlit run` in headless Chromium (1400×1000 viewport).

    .venv/bin/python tools/screenshots.py [train ...] [--out docs]

``train``: the Train page after head-only training of the default model on two classes, cat and dog, made of
crops of the repository's own photos (``assets/``: cat.jpg and the cat half of cat_and_dog.jpg, dog.jpg and its
dog half; random crops, flips and small colour changes, written to a temporary folder and uploaded through the
page's file uploader), scrolled to the live chart, the metrics and the confusion matrix.
Needs the dev requirements (Playwright) and Debian's chromium.
"""
from __future__ import annotations

import argparse
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


def train(page, url: str, out: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="screenshots-"))
    try:
        classes = cat_dog(folder)
        page.goto(url + "/train", timeout=180_000)
        page.get_by_text("Train on your own classes").wait_for(timeout=300_000)
        page.get_by_text("Sample photo").first.wait_for(timeout=300_000)
        idle(page)
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
        idle(page)
        page.locator('[data-testid="stVegaLiteChart"]').nth(1).wait_for(timeout=60_000)  # the confusion matrix
        page.wait_for_timeout(1500)  # Vega's canvases draw after the elements arrive
        # the Train button at the top, then the progress bar, the chart, the metrics and the confusion matrix
        page.get_by_role("button", name="Train", exact=True).evaluate("e => e.scrollIntoView({block: 'start'})")
        page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                 (m && m.scrollHeight > m.clientHeight ? m : document.scrollingElement).scrollBy(0, -80); }""")
        page.mouse.move(1390, 600)  # no chart toolbar or sidebar button shown on hover
        page.wait_for_timeout(800)
        assert page.locator('[data-testid="stException"]').count() == 0, "the page shows an exception"
        path = out / "train.png"
        page.screenshot(path=str(path))
        return path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


SHOTS = {"train": train}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shots", nargs="*", metavar="SHOT", help=f"some of {', '.join(SHOTS)} (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    unknown = [s for s in args.shots if s not in SHOTS]
    if unknown:
        parser.error(f"no screenshot called {unknown[0]!r}; there are {', '.join(SHOTS)}")
    from playwright.sync_api import sync_playwright

    from core.cli.serverbench import Server, launch

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
