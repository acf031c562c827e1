"""The soak's visitors: one browser session each, a seeded mix of ordinary actions (see tools/soak.py)."""
from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]

MODEL = "efficientnet_lite0"
SAMPLES = ("cat_and_dog", "cat", "dog", "coffee", "rocket", "cow")
LAYERS = ("top_activation", "block7a_project_bn", "block6d_add", "block6a_project_bn", "block5c_add",
          "block4c_add", "block3b_add", "block2b_add")
PAGES = {"explain": "", "occlude": "occlude", "compare": "compare", "measure": "measure", "learn": "learn"}
NAV = {"explain": "Explain", "occlude": "Occlude", "compare": "Compare", "measure": "Measure", "learn": "Learn"}
COLORMAPS = ("jet", "viridis", "inferno", "turbo", "magma", "plasma", "gray")
# action → weight of the mix
MIX = {"link": 12, "mask": 16, "upload": 8, "visit": 18, "layer": 14, "class": 10, "alpha": 8, "colormap": 8,
       "recycle": 6}
TIMEOUT_S = 240  # one step with three sessions on two cores; generous, not a timing assertion

EXCEPTIONS_JS = """() => [...document.querySelectorAll('[data-testid="stException"]')]
    .map(e => e.innerText.split('\\n')[0].slice(0, 200))"""
# not running, the status widget gone, and every picture of the main area loaded (each page here shows some)
QUIET_JS = """() => {
  const el = document.querySelector('[data-test-script-state]');
  const imgs = [...document.querySelectorAll('[data-testid="stMain"] img')];
  return !!el && el.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""




class Stall(Exception):
    """An action whose page did not settle in time."""


class Session(threading.Thread):
    """One visitor: its own Playwright and Chromium, one browser context at a time, a seeded mix of actions."""

    def __init__(self, n: int, url: str, seed: int, stop: threading.Event, ready: threading.Barrier,
                 photos: Path, mix: dict | None = None):
        super().__init__(name=f"soak-{n}", daemon=True)
        self.mix = mix or MIX
        self.n, self.url, self.stop, self.ready = n, url, stop, ready
        self.rng = random.Random(seed * 1000 + n)
        self.photos = photos
        self.actions: Counter = Counter()
        self.stalls: Counter = Counter()
        self.exceptions: list[str] = []
        self.failure: str | None = None
        self.where = "explain"
        self.lock = threading.Lock()

    # --- waiting -------------------------------------------------------------------------------------------
    def settle(self, armed: bool = True) -> None:
        """Wait until the script has run since :func:`arm` (when ``armed``) and the page is quiet again."""
        from bench.browser import FINGERPRINT_JS

        page = self.page
        try:
            if armed:  # the run started (or the main area changed) since the action
                page.wait_for_function("() => window.__ran === true || (" + FINGERPRINT_JS + ")() !== window.__before",
                                       timeout=30_000, polling=100)
        except Exception:  # noqa: BLE001 - no rerun seen (the action changed nothing): wait for quiet anyway
            pass
        page.wait_for_timeout(300)
        try:
            page.wait_for_function(QUIET_JS, timeout=TIMEOUT_S * 1000, polling=200)
        except Exception as exc:  # noqa: BLE001
            raise Stall(str(exc).splitlines()[0]) from None

    def arm(self) -> None:
        from bench.browser import WATCH_JS

        self.page.evaluate(WATCH_JS)

    def check(self) -> None:
        for text in self.page.evaluate(EXCEPTIONS_JS):
            with self.lock:
                self.exceptions.append(f"{self.where}: {text}")

    # --- actions -------------------------------------------------------------------------------------------
    def new_context(self) -> None:
        self.ctx = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(TIMEOUT_S * 1000)

    def link(self, where: str | None = None) -> None:
        rng = self.rng
        self.where = where or rng.choice(list(PAGES))
        q = {"model": MODEL, "sample": rng.choice(SAMPLES), "layer": rng.choice(LAYERS),
             "class": rng.randrange(1000), "alpha": f"{rng.choice((0.3, 0.4, 0.5, 0.6)):.2f}"}
        self.page.goto(f"{self.url}/{PAGES[self.where]}?{urlencode(q)}", timeout=TIMEOUT_S * 1000)
        self.settle(armed=False)

    def visit(self, where: str | None = None) -> None:
        where = where or self.rng.choice([p for p in PAGES if p != self.where])
        self.arm()
        self.page.locator('[data-testid="stSidebarNav"] a').filter(has_text=NAV[where]).first.click()
        self.where = where
        self.settle()

    def mask(self) -> None:
        if self.where != "occlude":
            self.visit("occlude")
        page, rng = self.page, self.rng
        canvas = page.locator("canvas.upper-canvas").first
        canvas.wait_for()
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        fx0, fy0 = rng.uniform(0.02, 0.6), rng.uniform(0.02, 0.6)
        fx1, fy1 = rng.uniform(fx0 + 0.1, 0.98), rng.uniform(fy0 + 0.1, 0.98)
        x0, y0 = box["x"] + box["width"] * fx0, box["y"] + box["height"] * fy0
        x1, y1 = box["x"] + box["width"] * fx1, box["y"] + box["height"] * fy1
        self.arm()
        page.mouse.move(x0, y0)
        page.mouse.down()
        for f in (0.25, 0.5, 0.75, 1.0):
            page.mouse.move(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, steps=4)
        page.mouse.up()
        self.settle()

    def upload(self) -> None:
        from PIL import Image

        rng = self.rng
        src = ROOT / "assets" / f"{rng.choice(SAMPLES)}.jpg"
        if rng.random() < 0.3:
            path = src
        else:  # a crop of it, so the pixels differ from every earlier photo
            img = Image.open(src).convert("RGB")
            w, h = img.size
            cw, ch = int(w * rng.uniform(0.5, 0.95)), int(h * rng.uniform(0.5, 0.95))
            x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
            ext = rng.choice(("jpg", "png"))
            path = self.photos / f"s{self.n}-{sum(self.actions.values())}.{ext}"
            img.crop((x, y, x + cw, y + ch)).save(path, quality=90) if ext == "jpg" else \
                img.crop((x, y, x + cw, y + ch)).save(path)
        self.arm()
        self.page.locator('[data-testid="stSidebar"] input[type=file]').first.set_input_files(str(path))
        self.settle()

    def _step(self, label: str) -> None:
        slider = self.page.get_by_role("slider", name=label)
        now, top = (int(float(slider.get_attribute(a) or 0)) for a in ("aria-valuenow", "aria-valuemax"))
        low = int(float(slider.get_attribute("aria-valuemin") or 0))
        key = "ArrowLeft" if now >= top or (now > low and self.rng.random() < 0.5) else "ArrowRight"
        self.page.evaluate("() => document.activeElement && document.activeElement.blur()")
        self.arm()
        slider.focus()
        self.page.keyboard.press(key)
        self.settle()

    def layer(self) -> None:
        self._step("Layer (early → late)")

    def alpha(self) -> None:
        self._step("Heatmap opacity (alpha)")

    def colormap(self) -> None:
        page = self.page
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        box = page.get_by_label("Colormap").first
        current = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
            has_text="Colormap").first.inner_text()
        name = self.rng.choice([c for c in COLORMAPS if c not in current.split()])
        self.arm()
        box.click()
        page.keyboard.type(name)
        page.get_by_role("option", name=name, exact=True).click()
        self.settle()

    def klass(self) -> None:
        labels = self.page.locator('[data-testid="stSidebar"] [role="radiogroup"] label')
        options = [i for i in range(labels.count())
                   if not labels.nth(i).locator("input").first.is_checked()]
        if not options:
            return
        self.arm()
        labels.nth(self.rng.choice(options)).click()
        self.settle()

    def recycle(self) -> None:
        self.ctx.close()
        self.new_context()
        self.link()

    # --- the session ---------------------------------------------------------------------------------------
    def run(self) -> None:
        from playwright.sync_api import sync_playwright

        from bench.browser import launch

        do = {"link": self.link, "mask": self.mask, "upload": self.upload, "visit": self.visit,
              "layer": self.layer, "class": self.klass, "alpha": self.alpha, "colormap": self.colormap,
              "recycle": self.recycle}
        kinds, weights = list(self.mix), list(self.mix.values())
        try:
            with sync_playwright() as p:
                self.browser = launch(p)
                self.new_context()
                try:
                    self.link()
                except Stall as exc:
                    self.stalls["first"] += 1
                    print(json.dumps({"session": self.n, "stall": "first", "why": str(exc)[:200]}),
                          file=sys.stderr, flush=True)
                self.ready.wait()
                while not self.stop.is_set():
                    kind = self.rng.choices(kinds, weights)[0]
                    try:
                        do[kind]()
                        self.check()
                    except Exception as exc:  # noqa: BLE001 - a page that did not settle: a fresh context
                        self.stalls[kind] += 1
                        print(json.dumps({"session": self.n, "stall": kind, "where": self.where,
                                          "why": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}),
                              file=sys.stderr, flush=True)
                        try:
                            self.ctx.close()
                        except Exception:  # noqa: BLE001
                            pass
                        self.new_context()
                        try:
                            self.link()
                        except Exception:  # noqa: BLE001
                            pass
                    with self.lock:
                        self.actions[kind] += 1
                    self.stop.wait(self.rng.uniform(1.0, 3.0))  # a visitor reads the page
                self.browser.close()
        except Exception as exc:  # noqa: BLE001 - the session ends; the soak goes on
            self.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            try:
                self.ready.abort()
            except Exception:  # noqa: BLE001
                pass
