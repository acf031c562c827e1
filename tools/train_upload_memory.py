"""The app's memory while photos are added on the Train page: `streamlit run` driven by headless Chromium.

Issue 12's memory check, measured the way `tools/app_switch_memory.py` measures switching: it writes
``--photos`` distinct 12-megapixel JPEGs (4000×3000, quality 90, a few MB each like a phone photo: a random
smooth field per photo over fine grain) to a temporary folder outside the repository, starts the app with
:class:`bench.browser.Server`, opens the Train page, makes two classes and drops the photos into the
Files uploader in batches of ``--batch`` (Playwright ``set_input_files``; each batch waits until the class's
count has gone up by the batch), half into each class. It prints one line per batch on stderr and, at the end,
one JSON line with the server's peak RSS (VmHWM) and RSS after the last batch, in MB. The photos are deleted.
Needs the dev requirements (Playwright) and Debian's chromium.

    .venv/bin/python tools/train_upload_memory.py [--photos 500] [--batch 50]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

W, H = 4000, 3000
CLASSES = ("alpha", "beta")
_GRAIN: list = []


def _grain() -> list:
    """Two fixed grain tiles (Gaussian, sigma 10) shared by every photo of a worker."""
    if not _GRAIN:
        rng = np.random.default_rng(12)
        _GRAIN.extend(np.clip(rng.normal(0, 10, (H, W, 3)), -40, 40).astype(np.int16) for _ in range(2))
    return _GRAIN


def write_photo(args: tuple[int, str]) -> int:
    """Photo ``i``: a random smooth colour field (its own seed) plus grain, saved as a quality-90 JPEG."""
    from PIL import Image

    i, path = args
    rng = np.random.default_rng(1000 + i)
    small = (rng.random((rng.integers(3, 9), rng.integers(4, 12), 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((W, H), Image.BICUBIC)).astype(np.int16)
    img += _grain()[i % 2]
    np.clip(img, 0, 255, out=img)
    Image.fromarray(img.astype(np.uint8)).save(path, "JPEG", quality=90)
    return Path(path).stat().st_size


def make_photos(folder: Path, n: int, workers: int = 2) -> tuple[list[Path], int]:
    paths = [folder / f"photo_{i:04d}.jpg" for i in range(n)]
    with ProcessPoolExecutor(workers) as pool:
        sizes = list(pool.map(write_photo, [(i, str(p)) for i, p in enumerate(paths)], chunksize=8))
    return paths, sum(sizes)


IDLE_JS = """() => { const el = document.querySelector('[data-test-script-state]');
                     return !!el && el.getAttribute('data-test-script-state') === 'notRunning'; }"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from bench.browser import Server, launch

    folder = Path(tempfile.mkdtemp(prefix="train-upload-memory-"))  # outside the repository
    try:
        t0 = time.perf_counter()
        paths, total = make_photos(folder, args.photos)
        print(json.dumps({"photos_written": len(paths), "mb": round(total / 2**20), "mb_each": round(total / len(paths) / 2**20, 2),
                          "seconds": round(time.perf_counter() - t0, 1)}), file=sys.stderr, flush=True)
        counts = {c: 0 for c in CLASSES}
        steps = []
        with Server(env={"TF_CPP_MIN_LOG_LEVEL": "2"}) as server, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})

            def idle(timeout_s: float = 600):
                page.wait_for_timeout(300)
                page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000, polling=100)

            def label(name: str, n: int) -> str:
                return f"{name} · {n} image{'' if n == 1 else 's'}"

            page.goto(server.url + "/train", timeout=180_000)
            page.get_by_text("Train on your own classes").wait_for(timeout=300_000)
            page.get_by_text("Layer (early → late)").first.wait_for(timeout=300_000)  # the sidebar: start-up done
            idle()
            steps.append({"step": "start", "rss_mb": round(server.rss_mb()), "peak_mb": round(server.peak_mb())})
            print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
            t1 = time.perf_counter()
            batches = [paths[i:i + args.batch] for i in range(0, len(paths), args.batch)]
            per_class = (len(batches) + 1) // 2
            for b, batch in enumerate(batches):
                name = CLASSES[0] if b < per_class else CLASSES[1]
                if counts[name] == 0 and b in (0, per_class):  # a new class becomes the upload target
                    page.get_by_label("New class name").fill(name)
                    page.get_by_label("New class name").press("Enter")
                    idle()
                    page.get_by_role("button", name="Add class").click()
                    page.get_by_text(label(name, 0)).wait_for(timeout=120_000)
                    idle()
                tb = time.perf_counter()
                uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Drop images for")
                uploader.locator('input[type="file"]').set_input_files(
                    [str(x) for x in batch], timeout=300_000)
                counts[name] += len(batch)
                page.get_by_text(label(name, counts[name])).wait_for(timeout=900_000)
                idle()
                errors = page.locator('[data-testid="stException"]').count()
                steps.append({"step": f"batch {b + 1}", "class": name, "count": counts[name],
                              "seconds": round(time.perf_counter() - tb, 1), "rss_mb": round(server.rss_mb()),
                              "peak_mb": round(server.peak_mb()), "exceptions": errors})
                print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
            seconds = time.perf_counter() - t1
            time.sleep(2.0)
            rss_after, peak = server.rss_mb(), server.peak_mb()
            browser.close()
        print(json.dumps({"photos": len(paths), "batch": args.batch, "photo_mb": round(total / len(paths) / 2**20, 2),
                          "start_rss_mb": steps[0]["rss_mb"], "peak_rss_mb": round(peak), "rss_after_mb": round(rss_after),
                          "seconds": round(seconds, 1), "counts": counts,
                          "exceptions": sum(s.get("exceptions", 0) for s in steps),
                          "target": {"peak_rss_mb": "<= 1536"}}), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
