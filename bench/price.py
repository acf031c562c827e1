"""What each adjustment of :mod:`server` buys, measured by switching it off (``GRADCAM_STUDIO_OFF``), in turns.

A dev tool (Playwright and Debian's Chromium, through :mod:`bench.browser`; ``make install-dev browser``), not
imported by the app. Every figure is taken in rounds: in each round every variant runs once, the order
reversed every other round, so a machine's load drifting over the minutes falls on all variants alike. It
prints one JSON line per run (a first run, not counted, brings the files a cold start reads into the page
cache) and, at the end, per variant the median, the range and the median of the paired
differences from ``base`` (all adjustments on), with the load average seen.

    python -m bench.price cold     [--rounds 5] [--off pacing]                  # first paint / first map
    python -m bench.price late     [--rounds 5] [--after 30]                    # a visitor after the start
    python -m bench.price sessions [--rounds 5] [--off assets,keras_state]      # server CPU per new session
    python -m bench.price startup  [--rounds 7] [--off gc_pause,lean_keras,quiet_stderr]
    python -m bench.price replies  [--rounds 2] [--off replies]                 # upload replies lost
    python -m bench.price cachemiss [--rounds 2] [--tries 30]                   # "Cached ForwardMsg MISS"

- ``cold``: a fresh server, the first request as soon as its port answers (:func:`bench.server.cold_start`):
  seconds to the title and sidebar (first paint) and to the first map.
- ``late``: a fresh server, the first visitor ``--after`` seconds later (an instructor started it before the
  workshop): seconds to the first map; variants ``base`` and ``early_start`` off.
- ``sessions``: a warm server; the server's CPU for each of ``--sessions`` new browser sessions opening the
  default view (median), for each of 6 layer/alpha/colormap changes (median), and over 10 s with one tab open
  and idle. A variant ``k=v`` sets the environment variable ``k`` (a Streamlit option, e.g.
  ``STREAMLIT_RUNNER_POST_SCRIPT_GC=true``) instead of switching an adjustment off.
- ``startup``: a fresh Python process running the app's start-up work (:class:`core.engine.warmup.WarmUp`:
  TensorFlow, Lite0, its first pass on the cat-and-dog photo): its seconds, the process's peak RSS, and the
  lines on stderr.
- ``replies``: a fresh server, spoken to as a browser does (``tests/e2e/test_upload_replies.py``'s client):
  12 times an upload-address request together with a rerun; how many replies never came.
- ``cachemiss``: a fresh server and headless Chromium on the Explain page; ``--tries`` times a photo dropped on
  the sidebar's uploader and R pressed at once (three photos in turn, so each try explains a new one), then
  waited for until the sidebar names it and the page is idle, or a dialog shows, or 45 s pass. ``misses``: the
  tries that ended in Streamlit's "Cached ForwardMsg MISS" dialog; ``stopped``: those that ended otherwise
  unsettled (another dialog, or none within 45 s); after either the page is opened afresh. ``age_told``: the
  message-cache age the browser was told (``global.maxCachedMessageAge``). The default variant is the age of 10
  runs, ``STREAMLIT_GLOBAL_MAX_CACHED_MESSAGE_AGE=10``, against the project's (``base``: Streamlit's 2); no uncounted
  first run. The summary adds each variant's counts over all rounds. ``--photos`` (2-5) photos in turn,
  ``--page occlude`` on the Occlude page (its canvas asks for one more run); ``--claim-all`` checks the count:
  every rerun request the browser sends is made to claim every large element its session was ever sent, so the
  server refers to elements the browser has let go and misses must follow.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.browser import IDLE_JS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OFF = {"cold": "pacing", "late": "early_start", "sessions": "assets,keras_state",
               "startup": "gc_pause,lean_keras,quiet_stderr", "replies": "replies",
               "cachemiss": "STREAMLIT_GLOBAL_MAX_CACHED_MESSAGE_AGE=10"}


def _env(variant: str) -> dict:
    if variant == "base":
        return {"GRADCAM_STUDIO_OFF": ""}
    if "=" in variant:
        key, value = variant.split("=", 1)
        return {"GRADCAM_STUDIO_OFF": "", key: value}
    return {"GRADCAM_STUDIO_OFF": variant}


def cold(variant: str, playwright, after_s: float = 0.0) -> dict:
    from bench.browser import Server, launch
    from bench.server import cold_start

    with Server(env=_env(variant)) as server:
        browser = launch(playwright)
        if after_s:
            time.sleep(max(0.0, after_s - server.start_s))
        paint, first_map = cold_start(server, browser)
        browser.close()
    return {"first_paint_s": round(paint, 3), "first_map_s": round(first_map, 3)}


def sessions(variant: str, playwright, n: int = 5) -> dict:
    from bench.browser import Server, launch, open_view
    from bench.server import interact, rerenders, settle_cpu

    with Server(env=_env(variant)) as server:
        browser = launch(playwright)
        cpu = []
        for _ in range(n + 1):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            c0 = settle_cpu(server)
            open_view(ctx.new_page(), server.url)
            cpu.append(settle_cpu(server) - c0)
            ctx.close()
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        open_view(page, server.url)
        actions = rerenders(page)  # each call of an action changes the value again
        rcpu = [interact(server, page, action)[1] for _ in range(2) for action in actions]
        c0 = settle_cpu(server)
        time.sleep(10)
        idle = server.cpu_s() - c0
        peak = server.peak_mb()
        browser.close()
    return {"session_cpu_s": round(statistics.median(cpu[1:]), 4), "rerender_cpu_s": round(statistics.median(rcpu), 4),
            "idle_cpu_10s": round(idle, 3), "server_peak_mb": round(peak, 1)}


STARTUP = """
import resource, time
t = time.perf_counter()
from core.engine import EnginePool
from core.engine.warmup import WarmUp
from core.imaging import images
rgb = images.load_path('assets/cat_and_dog.jpg').rgb
t0 = time.perf_counter()
work = WarmUp(EnginePool(220).get, 'efficientnet_lite0', rgb).start()
assert work.wait(600) and work.error is None, work.error
total = time.perf_counter() - t0
import json, sys
print(json.dumps({"warm_up_s": round(total, 3), **{k + "_s": round(v, 3) for k, v in work.seconds.items()},
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "pandas_loaded": "pandas" in sys.modules}))
"""


def startup(variant: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STARTUP], cwd=ROOT, env=dict(os.environ, **_env(variant)),
                         capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr_lines"] = len([line for line in out.stderr.splitlines() if line.strip()])
    return result


def replies(variant: str) -> dict:
    import asyncio

    from bench.browser import Server
    from tests.e2e.test_upload_replies import replies_received

    with Server(env=_env(variant)) as server:
        got = asyncio.run(replies_received(server.url, until_lost=False, ages=[]))
    return {"tries": len(got), "replies_lost": got.count(False)}


CACHEMISS_PHOTOS = ("dog", "cat", "cow", "coffee", "rocket")
DIALOG_JS = "() => document.querySelector('[role=dialog]')?.innerText.replace(/\\s+/g, ' ').trim() ?? null"
# the try is over: a dialog shows, or the sidebar names the dropped photo and the page is idle
TRY_OVER_JS = ("(name) => (" + DIALOG_JS + ")() !== null || ((document.querySelector('[data-testid=stSidebar]')"
               "?.innerText ?? '').includes('Explaining your photo ' + name) && (" + IDLE_JS + ")())")
BLUR_JS = "() => document.activeElement && document.activeElement.blur()"


def claim_every_element(page) -> None:
    """Make every rerun request of ``page``'s sessions claim every large element the session was ever sent, so
    that the server refers to elements the browser has let go: a miss the count must see (``--claim-all``)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def route(ws) -> None:
        sent: set[str] = set()
        server = ws.connect_to_server()

        def from_page(raw) -> None:
            if isinstance(raw, bytes):
                msg = BackMsg()
                msg.ParseFromString(raw)
                if msg.WhichOneof("type") == "rerun_script":
                    msg.rerun_script.cached_message_hashes.extend(
                        sorted(sent - set(msg.rerun_script.cached_message_hashes)))
                    raw = msg.SerializeToString()
            server.send(raw)

        def from_server(raw) -> None:
            if isinstance(raw, bytes):
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                if msg.metadata.cacheable and msg.hash:
                    sent.add(msg.hash)
            ws.send(raw)

        ws.on_message(from_page)
        server.on_message(from_server)

    page.route_web_socket("**/_stcore/stream", route)


def cachemiss(variant: str, playwright, tries: int = 30, page_path: str = "", photos: int = 3,
              claim_all: bool = False) -> dict:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    from bench.browser import Server, launch, open_view

    ages = []

    def frame(payload) -> None:  # the first message of a session: new_session, with the browser's config
        if ages or not isinstance(payload, bytes):
            return
        msg = ForwardMsg()
        msg.ParseFromString(payload)
        if msg.WhichOneof("type") == "new_session":
            ages.append(msg.new_session.config.max_cached_message_age)

    misses = stopped = 0
    seconds, shown = [], []
    with Server(env={"TF_CPP_MIN_LOG_LEVEL": "2", **_env(variant)}) as server:
        browser = launch(playwright)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", frame))
        if claim_all:
            claim_every_element(page)
        url = server.url + "/" + page_path.strip("/")
        ready = "Occlusion studio" if "occlude" in page_path else "Explaining"
        open_view(page, url, ready)
        for n in range(tries):
            name = CACHEMISS_PHOTOS[n % photos] + ".jpg"
            page.evaluate(BLUR_JS)
            t0 = time.perf_counter()
            page.locator('[data-testid="stSidebar"] input[type=file]').first.set_input_files(
                str(ROOT / "assets" / name))
            page.keyboard.press("r")
            try:  # over, and still so 1 s later (a miss in a run's last messages, a rerun the canvas asks for)
                page.wait_for_function(TRY_OVER_JS, arg=name, timeout=45_000, polling=50)
                page.wait_for_timeout(1000)
                page.wait_for_function(TRY_OVER_JS, arg=name, timeout=45_000, polling=50)
            except PlaywrightTimeout:
                pass
            dialog = page.evaluate(DIALOG_JS)
            settled = dialog is None and page.evaluate(TRY_OVER_JS, name)
            if settled:
                seconds.append(time.perf_counter() - t0)
                continue
            if dialog and "Cached ForwardMsg MISS" in dialog:
                misses += 1
            else:
                stopped += 1
            shown.append((dialog or "no dialog, not settled")[:120])
            open_view(page, url, ready)
        browser.close()
    return {"tries": tries, "misses": misses, "stopped": stopped, "age_told": ages[0] if ages else -1,
            "try_s": round(statistics.median(seconds), 3) if seconds else -1, "shown": shown}


def summarise(runs: list[dict]) -> dict:
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("round", "load1")]
    out = {}
    for v in variants:
        mine = [r for r in runs if r["variant"] == v]
        row = {}
        for k in keys:
            xs = [r[k] for r in mine if k in r]
            row[k] = {"median": round(statistics.median(xs), 4), "min": min(xs), "max": max(xs), "n": len(xs)}
            if v != "base":
                pairs = [r[k] - b[k] for r in mine for b in runs
                         if b["variant"] == "base" and b["round"] == r["round"] and k in b]
                if pairs:
                    row[k]["paired_diff_median"] = round(statistics.median(pairs), 4)
                    row[k]["paired_diff_range"] = [round(min(pairs), 4), round(max(pairs), 4)]
        row["load1"] = [min(r["load1"] for r in mine), max(r["load1"] for r in mine)]
        out[v] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=sorted(DEFAULT_OFF))
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--off", default=None, help="variants besides base, comma-separated (adjustment names or k=v)")
    ap.add_argument("--after", type=float, default=30.0)
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--tries", type=int, default=30, help="cachemiss: tries per run")
    ap.add_argument("--photos", type=int, default=3, choices=range(2, len(CACHEMISS_PHOTOS) + 1),
                    help="cachemiss: how many photos are dropped in turn")
    ap.add_argument("--claim-all", action="store_true",
                    help="cachemiss: the browser's requests claim every element it was sent (a miss must be seen)")
    ap.add_argument("--page", default="", help="cachemiss: the page's path (Explain by default; e.g. occlude)")
    ap.add_argument("--out", type=Path, default=None, help="also append the JSON lines here")
    args = ap.parse_args(argv)
    variants = ["base"] + [v for v in (args.off or DEFAULT_OFF[args.what]).split(",") if v]
    rounds = args.rounds or {"startup": 7, "replies": 2, "cachemiss": 2}.get(args.what, 5)
    runs = []

    def record(result: dict, variant: str, n: int) -> None:
        row = {"what": args.what, "variant": variant, "round": n, "load1": round(os.getloadavg()[0], 2), **result}
        runs.append(row)
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")

    # one run first, not counted: the files a cold start reads come into the page cache for every variant alike
    if args.what in ("startup", "replies"):
        measure = startup if args.what == "startup" else replies
        if args.what == "startup":
            startup("base")
        for n in range(rounds):
            for v in variants if n % 2 == 0 else variants[::-1]:
                record(measure(v), v, n)
    else:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            if args.what != "cachemiss":
                cold("base", p)
            for n in range(rounds):
                for v in variants if n % 2 == 0 else variants[::-1]:
                    if args.what == "cachemiss":
                        result = cachemiss(v, p, args.tries, args.page, args.photos, args.claim_all)
                    elif args.what == "sessions":
                        result = sessions(v, p, args.sessions)
                    else:
                        result = cold(v, p, args.after if args.what == "late" else 0.0)
                    record(result, v, n)
    summary = {"what": args.what, "summary": summarise(runs)}
    if args.what == "cachemiss":
        summary["totals"] = {v: {k: sum(r[k] for r in runs if r["variant"] == v)
                                 for k in ("tries", "misses", "stopped")} for v in variants}
    summary = json.dumps(summary)
    print(summary)
    if args.out:
        with open(args.out, "a") as f:
            f.write(summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
