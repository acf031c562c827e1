"""START/STOP cycles of the Live page's stream on a busy server: how many STARTs bring no frame.

Starts the app (:class:`bench.browser.Server`) and one Chromium with the fake camera (the espresso of
``bench.live``), opens Live, streams once (not counted: the first stream makes the live engine) and, ``--cycles``
times: START, wait for one explained frame (``--wait`` seconds) and two more, STOP. ``--burn N`` runs N busy-looping
processes beside it for the whole run (the failure needs a server whose event loop lags: on the 2-core machine, 2).
A START that brings no frame is counted, stopped where it still shows STOP, and the next cycle goes on; one whose
frames stop coming after the first is counted apart. At the end one JSON line: cycles, the STARTs without a frame
(and their cycle numbers), the stalled ones, how often streamlit-webrtc reset a streamer's context it took for a
page left (its debug lines, sent to the server's log here; no page is left in these cycles), how often
``server.runtime.keep_stream`` kept one that it would have reset (the server log's lines), seconds.
``GRADCAM_STUDIO_OFF=stream_runs`` in the environment runs the server without that adjustment. Needs the dev
requirements (Playwright) and Debian's chromium.

    .venv/bin/python tools/live_starts.py [--cycles 150] [--burn 2] [--wait 20]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# streamlit-webrtc's line as it resets a streamer's context it thinks was left ("Context for key=live was not
# rendered for N script runs; resetting stale state."): its debug lines into the server's log
UPSTREAM_LOG = """import logging
handler = logging.StreamHandler()
handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
logging.getLogger("streamlit_webrtc.component").addHandler(handler)
logging.getLogger("streamlit_webrtc.component").setLevel(logging.DEBUG)
"""


def burn() -> None:
    while True:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=150)
    ap.add_argument("--burn", type=int, default=2, help="busy processes beside the server")
    ap.add_argument("--wait", type=float, default=20, help="seconds a START may take to bring its first frame")
    args = ap.parse_args()

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from bench.browser import Server
    from bench.live import PHOTO, camera_frames
    from tests.e2e.test_live_browser import (idle, open_live, processed, start_stream, stop_stream, wait_processed,
                                             write_y4m)
    from tests.e2e.test_live_viewers import camera_args, pages

    with tempfile.TemporaryDirectory() as tmp:
        camera, log = Path(tmp) / "camera.y4m", Path(tmp) / "server.log"
        write_y4m(camera, camera_frames(PHOTO, n=30))
        (Path(tmp) / "sitecustomize.py").write_text(UPSTREAM_LOG)  # the server's interpreter reads it at start
        burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.burn)]
        for b in burners:
            b.start()
        lost, stalled, t0 = [], [], time.perf_counter()
        try:
            env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": tmp}
            with Server(log_path=log, env=env) as srv, pages(camera_args(camera)) as (pg,):
                open_live(pg, srv.url)
                start_stream(pg)  # a first stream, not counted: the live engine and the WebRTC machinery made once
                wait_processed(pg, 3, timeout_s=180)
                stop_stream(pg)
                for cycle in range(args.cycles):
                    before = processed(pg)
                    start_stream(pg)
                    try:
                        wait_processed(pg, before + 1, timeout_s=args.wait)
                        wait_processed(pg, before + 3, timeout_s=60)
                    except PlaywrightTimeout:
                        (lost if processed(pg) <= before else stalled).append(cycle)
                    said = "no frame" if cycle in lost else "stalled" if cycle in stalled else "ok"
                    print(cycle, said, file=sys.stderr, flush=True)
                    frame = pg.frame_locator("iframe[title*='webrtc']").first
                    if frame.get_by_role("button", name=re.compile("stop", re.I)).is_visible():
                        stop_stream(pg)
                    idle(pg)
        finally:
            for b in burners:
                b.terminate()
        lines = log.read_text(errors="replace").splitlines()
        kept = sum("core.live.stream: live stream" in line for line in lines)
        resets = sum("was not rendered for" in line for line in lines)
    print(json.dumps({"cycles": args.cycles, "burn": args.burn, "starts_without_a_frame": len(lost),
                      "cycles_without_a_frame": lost, "cycles_stalled": stalled, "streams_kept": kept, "streams_reset": resets,
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
