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

It reads the server's RSS every ``SAMPLE_S`` seconds. Every minute it prints one JSON line ``{minute, rss_mb,
rss_mean_mb, peak_mb, actions, exceptions}`` (RSS at the minute's end, the mean of that minute's samples, and VmHWM
of the server process; actions and pages that showed ``[data-testid=stException]`` so far); at the end it closes
every browser, leaves the server idle for ``--idle`` minutes printing its RSS each minute, and prints a summary
JSON: ``warm_rss_mb`` (once every session's first page is up), ``peak_mb``, ``slope_mb_per_min`` (least squares
over the minute means of the last 6 minutes of use: a single reading swings by ±60 MB with the pass in flight and
the heap trims, which alone gives a 6-point slope a standard error of about 8 MB/min; ``slope_instant_mb_per_min``
is the same over the minute-end readings, ``slope_all_mb_per_min`` over every minute mean: RSS falls back now and
then, and one fall inside the last 6 minutes can hide a steady climb), ``idle_end_rss_mb``, ``idle_end_minus_warm_mb``,
actions per kind, exceptions (count and distinct first lines), actions that did not settle (``stalls``), tracebacks
in the server log (``artifacts/soak-streamlit.log``) and the issue's targets. Needs the dev requirements
(Playwright) and Debian's chromium (``make browser``). It does not run in CI (about M + idle + 2 minutes).

    .venv/bin/python tools/soak.py [--sessions 3] [--minutes 10] [--idle 3] [--seed 23] [--json-out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soak_visitor import MIX, TIMEOUT_S, Session  # noqa: E402 - tools/ is the script's own folder

TARGETS = {"peak_mb": 1400, "slope_mb_per_min": 5, "idle_end_minus_warm_mb": 300, "exceptions": 0}
SLOPE_MINUTES = 6
SAMPLE_S = 5


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
            use: list[tuple[float, float]] = [(0.0, warm)]  # minute-end readings
            means: list[tuple[float, float]] = []  # (minute, mean of its samples)
            for minute in range(1, int(args.minutes) + 1):
                readings = []
                while (left := t0 + 60 * minute - time.perf_counter()) > 0:
                    time.sleep(min(SAMPLE_S, left))
                    readings.append(server.rss_mb())
                rss = readings[-1] if readings else server.rss_mb()
                use.append((float(minute), rss))
                means.append((float(minute), sum(readings) / len(readings) if readings else rss))
                emit({"minute": minute, "rss_mb": round(rss), "rss_mean_mb": round(means[-1][1]),
                      "peak_mb": round(server.peak_mb()),
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
        last = [(m, r) for m, r in means if m > args.minutes - SLOPE_MINUTES]
        last_instant = [(m, r) for m, r in use if m >= args.minutes - SLOPE_MINUTES]
        summary = {
            "sessions": args.sessions, "minutes": args.minutes, "idle_minutes": args.idle, "seed": args.seed,
            "warm_rss_mb": round(warm), "peak_mb": round(peak),
            "slope_mb_per_min": round(slope(last), 1), "slope_minutes": [int(m) for m, _ in last],
            "slope_instant_mb_per_min": round(slope(last_instant), 1), "slope_all_mb_per_min": round(slope(means), 1),
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
