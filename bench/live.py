"""The live view's figures without a browser: frames made from a bundled photo are fed at a camera's rate through
the Live page's own worker (:class:`core.live.LiveWorker`: the newest-frame slot, the one-layer pass, the overlay),
one viewer and then several at once on one shared engine.

``live_fps``: frames explained per second for one viewer (EfficientNet-Lite0, Grad-CAM, its last layer, a 640×480
camera at 30 frames a second); ``live_latency_ms_p50``/``_p95``: from a frame's arrival to its overlay being ready;
``live_fps_3_viewers``: the three viewers' frames per second together, and ``live_3_viewers_share`` that total over
one viewer's; ``live_explain_rerender_ms_0_viewers`` / ``_3_viewers`` and ``live_explain_rerender_ratio``: an
Explain page's re-render for a changed layer (``explain()`` on its cached photo at another layer, the
overlay at the photo's size, inside the pages' gate as the app's script runs are: :mod:`core.live.gate`), median,
alone and while three viewers stream on the same engine, and the second over the first;
``live_fps_3_viewers_beside_explain``: the three viewers' frames per second together meanwhile (they give way to
the re-renders, which run back to back here).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "coffee.jpg"
WIDTH, HEIGHT = 640, 480


def camera_frames(path: Path = PHOTO, n: int = 30, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """``n`` camera-sized frames of a photo (scaled to cover ``width``×``height`` and cropped), each shifted by a
    few pixels from the one before, as a hand-held camera's frames are: no two frames are the same picture."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    margin = 16
    s = max((width + 2 * margin) / img.width, (height + 2 * margin) / img.height)
    big = np.asarray(img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR))
    oy, ox = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    out = []
    for i in range(n):
        turn = 2 * np.pi * i / n
        dy, dx = int(round(margin * 0.5 * np.sin(turn))), int(round(margin * 0.5 * np.cos(turn)))
        out.append(np.ascontiguousarray(big[oy + dy:oy + dy + height, ox + dx:ox + dx + width]))
    return out


def feed(worker, frames: list[np.ndarray], seconds: float, fps: float, stop: threading.Event | None = None) -> int:
    """Hand ``frames`` (in a loop) to ``worker`` at ``fps`` for ``seconds``, as a camera's callback does; returns how
    many were handed."""
    period, start, n = 1.0 / fps, time.perf_counter(), 0
    while time.perf_counter() - start < seconds and not (stop and stop.is_set()):
        worker.submit(frames[n % len(frames)])
        n += 1
        wait = start + n * period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    return n


def _viewers(engine, frames, viewers: int, seconds: float, fps: float, layer: str | None, method: str) -> list:
    from core.live import LiveSettings, LiveWorker

    workers = [LiveWorker(LiveSettings(lambda: engine, layer=layer, method=method), name=f"bench-live-{i}")
               for i in range(viewers)]
    feeders = [threading.Thread(target=feed, args=(w, frames, seconds, fps)) for w in workers]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    for w in workers:
        w.stop()
    return [(w.stats(), w.latencies()) for w in workers]


def explain_rerender_s(engine, rgb: np.ndarray, layers: list[str], seconds: float) -> np.ndarray:
    """The times (seconds) of Explain's re-render for a changed layer, one after another for ``seconds``: the
    explain use case on a photo whose pass is cached (each layer in turn), then the overlay at the photo's size."""
    from core.cam.explain import explain
    from core.imaging import render
    from core.live.gate import PAGES

    times, start, k = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        with PAGES.page():
            got = explain(engine, rgb, layer=layers[k % len(layers)])
            render.overlay(rgb, got.cam, 0.45, "jet")
        times.append(time.perf_counter() - t)
        k += 1
    return np.array(times)


def rerender_beside_viewers(engine, frames, viewers: int, seconds: float, fps: float, layer: str,
                            method: str, lanes="shared", gate="shared") -> dict:
    """Explain's re-render times alone and while ``viewers`` viewers stream on the same engine (milliseconds,
    median) and their ratio. ``lanes``, ``gate``: the workers' (None: without; the process's by default)."""
    from core.imaging import images
    from core.live import LiveSettings, LiveWorker

    rgb = images.load_path(ROOT / "assets" / "cat_and_dog.jpg").rgb
    layers = [n for n in engine.layers if n != layer][-4:] + [layer]
    engine.run(rgb)  # the photo's pass, cached: what a re-render for another layer reuses
    explain_rerender_s(engine, rgb, layers, 1.0)  # warm
    alone = explain_rerender_s(engine, rgb, layers, seconds)
    kw = {} if lanes == "shared" else {"lanes": lanes}
    if gate != "shared":
        kw["gate"] = gate
    workers = [LiveWorker(LiveSettings(lambda: engine, layer=layer, method=method), name=f"bench-live-{i}", **kw)
               for i in range(viewers)]
    stop = threading.Event()
    feeders = [threading.Thread(target=feed, args=(w, frames, seconds + 30, fps, stop)) for w in workers]
    for t in feeders:
        t.start()
    try:
        time.sleep(1.0)  # the streams flowing
        beside = explain_rerender_s(engine, rgb, layers, seconds)
    finally:
        stop.set()
        for t in feeders:
            t.join()
        for w in workers:
            w.stop()
    a, b = float(np.median(alone)) * 1000, float(np.median(beside)) * 1000
    fps_total = sum(w.stats().processed for w in workers) / (seconds + 1.0)
    return {f"live_fps_{viewers}_viewers_beside_explain": round(fps_total, 2), "live_explain_rerender_ms_0_viewers": round(a, 2), f"live_explain_rerender_ms_{viewers}_viewers": round(b, 2),
            "live_explain_rerender_ratio": round(b / a, 3)}


def run_live_bench(engine=None, seconds: float = 6.0, camera_fps: float = 30.0, layer: str | None = None,
                   method: str = "gradcam", viewers: int = 3) -> dict:
    """The live figures (see the module's docstring). ``engine``: Lite0's by default (loaded here)."""
    if engine is None:
        from core import models
        from core.engine import Engine

        spec = models.get_spec(models.DEFAULT_MODEL)
        engine = Engine(spec, *models.load_inference(spec.name))
    frames = camera_frames()
    layer = layer or engine.spec.default_layer
    for _ in range(3):  # trace the one-layer pass and warm its kernels
        engine.live_pass(engine.prepare(frames[0]), layer)
    out = {}
    for n in (1, viewers):
        got = _viewers(engine, frames, n, seconds, camera_fps, layer, method)
        total = sum(s.processed for s, _ in got) / seconds
        lat = np.concatenate([q for _, q in got]) * 1000.0
        if n == 1:
            out.update(live_fps=round(total, 2), live_latency_ms_p50=round(float(np.percentile(lat, 50)), 1),
                       live_latency_ms_p95=round(float(np.percentile(lat, 95)), 1),
                       live_dropped=int(got[0][0].dropped))
        else:
            out[f"live_fps_{n}_viewers"] = round(total, 2)
            out[f"live_{n}_viewers_share"] = round(total / max(out["live_fps"], 1e-9), 3)
            out[f"live_latency_ms_p50_{n}_viewers"] = round(float(np.percentile(lat, 50)), 1)
    out.update(rerender_beside_viewers(engine, frames, viewers, seconds, camera_fps, layer, method))
    out.update(live_camera_fps=camera_fps, live_layer=layer, live_method=method, live_model=engine.spec.name)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run_live_bench()))
