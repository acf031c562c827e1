"""What ``app.py`` wires around Streamlit and the start-up work around TensorFlow's import, each one priced.

- :func:`middleware`: Streamlit's frontend files from memory (:mod:`.assets`) and the server's activity told to
  the pacer (:mod:`.pacing`), for which a cold server's import of TensorFlow gives way to its pages;
- :func:`lifespan`: the start-up work (TensorFlow, the default model, its first pass) begun with the server;
- :mod:`.runtime`: Streamlit's own behaviour adjusted where it loses an upload's reply, resets Keras's state
  after every run, or keeps every upload until the session ends, and streamlit-webrtc's where a run counted late
  stops a stream that is connecting;
- the import's own adjustments live in ``core/engine/warmup.py`` (the command line imports TensorFlow the same
  way, and the library does not import this package); they read the same switch;
- :mod:`.price`: the command that measures each one switched off (a dev tool, not imported by the app).

An adjustment stays only where it fixes a user-visible bug or saves what a person feels: at least 0.3 s on a
screen someone waits for, 25 % of the server CPU that 30 workshop participants arriving together cost, or
100 MB of peak memory. ``GRADCAM_STUDIO_OFF=name[,name...]`` (or ``1``) switches adjustments off. Each figure is
switched off → on, on the 2-core development machine shared with other work (load average 3.5-18), medians over
rounds in which every variant runs once (docs/server.md says more, and what was removed)::

    | adjustment (where) | fixes or saves: switched off → on | measured with | switch | test |
    |---|---|---|---|---|
    | Frontend files from memory (`server/assets.py`) | server CPU per new browser session 0.21 s → 0.09 s (5 rounds; paired 0.12 s): 57 % of what 30 participants arriving together cost | `python -m bench.price sessions --off assets` | `GRADCAM_STUDIO_OFF=assets` | `tests/test_assets.py`, `tests/e2e/test_assets_server.py` |
    | The import gives way to the pages (`server/pacing.py`) | a cold server's first paint 2.12 s → 1.71 s (14 rounds; paired 0.48 s, later off in 12); its first map unchanged (paired 0.03 s) | `python -m bench.price cold --off pacing` | `GRADCAM_STUDIO_OFF=pacing` | `tests/test_pacing.py`, `tests/test_server.py` |
    | Start-up work begun with the server (`server.lifespan`) | first map for a visitor 30 s after the start 8.15 s → 2.59 s (5 rounds; paired 6.3 s, 4.2–7.9) | `python -m bench.price late` | `GRADCAM_STUDIO_OFF=early_start` | `tests/e2e/test_start_with_server.py`, `tests/test_server.py` |
    | Keras's state kept (`server.runtime.keep_keras_state`) | a model loading in one session loses its Keras scope when another session's run ends (the test fails); server CPU per layer/alpha/colormap change 0.33 s → 0.05 s, per new session 0.38 s → 0.09 s (5 rounds) | `python -m bench.price sessions --off keras_state`; `GRADCAM_STUDIO_OFF=keras_state pytest tests/test_app.py -k keras_state` | `GRADCAM_STUDIO_OFF=keras_state` | `tests/test_app.py` |
    | Upload replies kept (`server.runtime.keep_replies`) | a dropped photo that never arrives: the reply lost in 21 of 24 tries → 0 of 24 | `python -m bench.price replies` | `GRADCAM_STUDIO_OFF=replies` | `tests/test_replies.py`, `tests/e2e/test_upload_replies.py` |
    | Uploads let go (`server.runtime.release_uploads`) | 100 phone photos (345 MB) added on the Train page: the server's peak 1191–1212 MB → 939 MB, at the end 1111–1190 MB → 758 MB (2 runs each) | `tools/train_upload_memory.py --photos 100 --batch 25`, with `GRADCAM_STUDIO_OFF=uploads` and without | `GRADCAM_STUDIO_OFF=uploads` | `tests/test_uploads_release.py` |
    | Live streams kept through a run counted late (`server.runtime.keep_stream`) | 150 START/STOP cycles beside 2 busy processes: streamlit-webrtc stopped a stream it took for a page left 8 times → 0 (6 kept); STARTs without a frame 0 and 0 in those runs, 1 in 135 in another run of the same cycles without it (its log: the reset at that START) | `tools/live_starts.py --cycles 150 --burn 2`, with `GRADCAM_STUDIO_OFF=stream_runs` and without | `GRADCAM_STUDIO_OFF=stream_runs` | `tests/test_stream_runs.py`, `tests/e2e/test_live_reliability.py` |
    | TensorFlow's start-up lines off stderr (`core/engine/warmup.py`) | 4 lines (absl's "WARNING: All log messages before absl::InitializeLog()…" and oneDNN's notice, twice) on every server start and CLI command → none | `python -m bench.price startup --off quiet_stderr` | `GRADCAM_STUDIO_OFF=quiet_stderr` | `tests/test_server.py` |
    | Collector paused for the import (`core/engine/warmup.py`) | the start-up work (TensorFlow, Lite0, first pass: a cold server's first map and every CLI command wait for it) 2.80 s → 2.26 s (18 rounds; paired 0.61 s) | `python -m bench.price startup --off gc_pause` | `GRADCAM_STUDIO_OFF=gc_pause` | `tests/test_compat.py` |
    | Keras without pandas and pyplot (`core/engine/warmup.py`) | the start-up work 2.69 s → 2.26 s (18 rounds; paired 0.40 s); its peak memory 737 MB → 648 MB (paired 90 MB, 85–105) | `python -m bench.price startup --off lean_keras` | `GRADCAM_STUDIO_OFF=lean_keras` | `tests/test_compat.py` |
    | No file watcher (`server.fileWatcherType = "none"`) | server CPU per new browser session 1.19 s → 0.09 s (5 rounds; paired 1.1 s), and 0.49 s → 0.05 s over 10 s with one tab open and idle | `python -m bench.price sessions --off STREAMLIT_SERVER_FILE_WATCHER_TYPE=auto` | `--server.fileWatcherType auto` | `tests/test_server.py` |
    | No collection after every run (`runner.postScriptGC = false`) | server CPU per change 0.31 s → 0.05 s, per new session 0.39 s → 0.09 s (5 rounds) | `python -m bench.price sessions --off STREAMLIT_RUNNER_POST_SCRIPT_GC=true` | `--runner.postScriptGC true` | `tests/test_server.py` |
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

# The Live page's WebRTC: aiortc's SRTP library crashes the process (a segmentation fault in its srtp_init) when it
# first loads after TensorFlow's libraries; loaded here, before the start-up work imports TensorFlow, it works (40 ms).
# Where TensorFlow came first (a test process), it is left alone and the Live page offers snapshots (ui/live.py).
if "tensorflow" not in sys.modules:
    with contextlib.suppress(ImportError):
        import pylibsrtp  # noqa: F401

OFF_VARIABLE = "GRADCAM_STUDIO_OFF"
# every adjustment's switch name (the table above); core/engine/warmup.py reads the start-up ones itself
ADJUSTMENTS = ("assets", "pacing", "early_start", "keras_state", "replies", "uploads", "stream_runs",
               "quiet_stderr", "gc_pause", "lean_keras")


def switched_off(name: str) -> bool:
    """Whether ``GRADCAM_STUDIO_OFF`` (``1``/``all``, or a comma-separated list of the names in
    :data:`ADJUSTMENTS`) switches the adjustment ``name`` off."""
    value = os.environ.get(OFF_VARIABLE, "").strip().lower()
    if not value or value == "0":
        return False
    return value in ("1", "all", "true", "yes") or name in {v.strip() for v in value.split(",")}


def middleware() -> list:
    """The server's ASGI middlewares, outermost first: the activity the pacer listens to, then Streamlit's
    frontend files from memory (each left out where switched off)."""
    from starlette.middleware import Middleware

    out = []
    if not switched_off("pacing"):
        from .pacing import SERVER, ServerActivity

        out.append(Middleware(ServerActivity, touch=SERVER.touch))
    if not switched_off("assets"):
        from .assets import FrontendAssets

        out.append(Middleware(FrontendAssets))
    return out


def _start_warm_up() -> None:
    from ui.resources import start_warm_up  # the app's modules (numpy, the models' registry): 0.3 s

    start_warm_up()  # returns at once: the work runs in its own thread


@contextlib.asynccontextmanager
async def lifespan(app):
    """The start-up work (TensorFlow, the default model, its first pass) begun as the server starts, not when
    the first visitor's page asks for it (switch: ``early_start``). The server answers on its port before the
    lifespan has run and the first requests wait for it, so it only starts a thread: with the app's modules
    imported in the lifespan itself, the first request to a fresh server waited for them too."""
    if not switched_off("early_start"):
        threading.Thread(target=_start_warm_up, name="gradcam-start", daemon=True).start()
    yield
