"""Soak: N browser sessions × M minutes of mixed use of one ``streamlit run app.py``, and the server's memory.

Issue 23's check, measured the way ``tools/app_switch_memory.py`` measures switching: one server
(:class:`bench.browser.Server`) and ``--sessions`` threads, each with its own Playwright and headless
Chromium (Playwright's sync API is not thread-safe). Each session opens a deep link, then for ``--minutes`` does a
seeded random mix of ordinary actions, waiting for the page to settle after each (and 1-3 s of "reading"):

- ``link``: open a deep link ``/<page>?model=efficientnet_lite0&sample=…&layer=…&class=…&alpha=…`` (a new server
  session, as every page load is);
- ``mask``: draw a rectangle on the Occlude canvas (going to Occlude first through the page list if elsewhere);
- ``upload``: drop a photo in the sidebar: a bundled ``assets/*.jpg`` or a random crop of one written to a temporary
  folder (JPEG or PNG), so the pixels differ;
- ``visit``: go to Explain, Occlude, Compare, Measure or Learn through the page list (same server session);
- ``layer`` / ``alpha``: one step of the sidebar's slider; ``class``: another class in the sidebar's radio;
  ``colormap``: another colormap;
- ``recycle``: close the browser context and open a new one on a deep link.

Every minute it prints one JSON line ``{minute, rss_mb, peak_mb, actions, exceptions}`` (RSS and VmHWM of the
server process; actions and pages that showed ``[data-testid=stException]`` so far); at the end it closes every
browser, leaves the server idle for ``--idle`` minutes printing its RSS each minute, and prints a summary JSON:
``warm_rss_mb`` (once every session's first page is up), ``peak_mb``, ``slope_mb_per_min`` (least squares over the
minute samples of the last 6 minutes of use; ``slope_all_mb_per_min`` over all of them: RSS falls back now and then,
and one fall inside the last 6 minutes can hide a steady climb), ``idle_end_rss_mb``, ``idle_end_minus_warm_mb``,
actions per kind, exceptions (count and distinct first lines), actions that did not settle (``stalls``), tracebacks
in the server log (``artifacts/soak-streamlit.log``) and the issue's targets. Needs the dev requirements
(Playwright) and Debian's chromium (``make browser``). It does not run in CI (about M + idle + 2 minutes).

    .venv/bin/python tools/soak.py [--sessions 3] [--minutes 10] [--idle 3] [--seed 23] [--json-out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
TARGETS = {"peak_mb": 1400, "slope_mb_per_min": 5, "idle_end_minus_warm_mb": 300, "exceptions": 0}
SLOPE_MINUTES = 6
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


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, MB)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--idle", type=float, default=3, help="minutes idle after the last browser closed")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--json-out", type=Path, help="also write the summary (and the minute lines) here")
    parser.add_argument("--probe", choices=("heap", "trace"), help="write where the server's memory is every "
                        "--probe-every seconds to artifacts/soak-probe.jsonl (tools/memprobe; trace: with tracemalloc)")
    parser.add_argument("--probe-every", type=float, default=30)
    parser.add_argument("--only", help="comma-separated action kinds to keep from the mix (to find which one keeps "
                        "memory); default: all of them")
    args = parser.parse_args()
    from bench.browser import Server, unavailable

    why = unavailable()
    if why:
        print(json.dumps({"soak": f"not run: {why}"}))
        return 1
    log = ROOT / "artifacts" / "soak-streamlit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    photos = Path(tempfile.mkdtemp(prefix="soak-photos-"))
    lines: list[dict] = []

    def emit(d: dict) -> None:
        lines.append(d)
        print(json.dumps(d), flush=True)

    try:
        env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
        if args.probe:
            probe = ROOT / "artifacts" / "soak-probe.jsonl"
            probe.unlink(missing_ok=True)
            path = os.pathsep.join(filter(None, [str(ROOT / "tools" / "memprobe"), os.environ.get("PYTHONPATH")]))
            env.update(PYTHONPATH=path, MEMPROBE_OUT=str(probe),
                       MEMPROBE_EVERY_S=str(args.probe_every), MEMPROBE_TRACE="1" if args.probe == "trace" else "0")
        with Server(log_path=log, env=env) as server:
            stop = threading.Event()
            ready = threading.Barrier(args.sessions + 1)
            mix = {k: w for k, w in MIX.items() if not args.only or k in args.only.split(",")}
            sessions = [Session(i, server.url, args.seed, stop, ready, photos, mix) for i in range(args.sessions)]
            t_start = time.perf_counter()
            for s in sessions:
                s.start()
            try:
                ready.wait(timeout=600)
            except threading.BrokenBarrierError:
                pass
            warm = server.rss_mb()
            emit({"minute": 0, "rss_mb": round(warm), "peak_mb": round(server.peak_mb()), "actions": 0,
                  "exceptions": 0, "warm_up_s": round(time.perf_counter() - t_start, 1)})
            t0 = time.perf_counter()
            use: list[tuple[float, float]] = [(0.0, warm)]
            for minute in range(1, int(args.minutes) + 1):
                time.sleep(max(0.0, t0 + 60 * minute - time.perf_counter()))
                rss = server.rss_mb()
                use.append((float(minute), rss))
                emit({"minute": minute, "rss_mb": round(rss), "peak_mb": round(server.peak_mb()),
                      "actions": sum(sum(s.actions.values()) for s in sessions),
                      "exceptions": sum(len(s.exceptions) for s in sessions),
                      "sessions_alive": sum(s.is_alive() and s.failure is None for s in sessions)})
            stop.set()
            for s in sessions:
                s.join(timeout=TIMEOUT_S + 60)
            closed = time.perf_counter()
            emit({"phase": "browsers closed", "after_s": round(closed - t0), "rss_mb": round(server.rss_mb()),
                  "peak_mb": round(server.peak_mb())})
            idle_rss = server.rss_mb()
            for minute in range(1, int(args.idle) + 1):
                time.sleep(max(0.0, closed + 60 * minute - time.perf_counter()))
                idle_rss = server.rss_mb()
                emit({"idle_minute": minute, "rss_mb": round(idle_rss), "peak_mb": round(server.peak_mb())})
            peak = server.peak_mb()
            if os.environ.get("MEMPROBE_MEMRAY"):  # end memray's tracking before the server stops (tools/memprobe)
                Path(os.environ["MEMPROBE_MEMRAY"] + ".stop").touch()
                time.sleep(60)
        tracebacks = log.read_text(errors="replace").count("Traceback") if log.exists() else None
        actions: Counter = Counter()
        stalls: Counter = Counter()
        exceptions: list[str] = []
        for s in sessions:
            actions.update(s.actions)
            stalls.update(s.stalls)
            exceptions += s.exceptions
        last = [(m, r) for m, r in use if m >= args.minutes - SLOPE_MINUTES]
        summary = {
            "sessions": args.sessions, "minutes": args.minutes, "idle_minutes": args.idle, "seed": args.seed,
            "warm_rss_mb": round(warm), "peak_mb": round(peak),
            "slope_mb_per_min": round(slope(last), 1), "slope_minutes": [int(m) for m, _ in last],
            "slope_all_mb_per_min": round(slope(use), 1),
            "idle_end_rss_mb": round(idle_rss), "idle_end_minus_warm_mb": round(idle_rss - warm),
            "actions": sum(actions.values()), "actions_per_kind": dict(sorted(actions.items())),
            "stalls": dict(stalls), "exceptions": len(exceptions),
            "exception_lines": sorted(Counter(exceptions).items(), key=lambda kv: -kv[1])[:10],
            "server_log_tracebacks": tracebacks,
            "session_failures": [s.failure for s in sessions if s.failure],
            "targets": {"peak_mb": f"<= {TARGETS['peak_mb']}",
                        "slope_mb_per_min": f"<= {TARGETS['slope_mb_per_min']}",
                        "idle_end_minus_warm_mb": f"<= {TARGETS['idle_end_minus_warm_mb']}",
                        "exceptions": "0"},
        }
        figures = ("peak_mb", "slope_mb_per_min", "idle_end_minus_warm_mb")
        summary["met"] = {k: summary[k] <= TARGETS[k] for k in figures}
        summary["met"]["exceptions"] = summary["exceptions"] == 0 and not tracebacks
        print(json.dumps(summary), flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps({"lines": lines, "summary": summary}, indent=1) + "\n")
    finally:
        shutil.rmtree(photos, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
