"""One session's live worker: a thread that explains the newest camera frame, one at a time, and keeps the newest
overlay for the camera's callback to send back.

The camera's callback (another thread, at the camera's rate) calls :meth:`LiveWorker.submit`: the frame goes into a
:class:`~core.live.slot.NewestSlot` (replacing one not yet explained) and the newest finished overlay comes back at
once, so the callback never waits for the network. The worker thread takes the newest frame, runs the engine's
one-layer pass (:meth:`core.engine.Engine.live_pass`: the prediction plus the chosen layer's activations and
gradients), draws the chosen method's map over the frame and records the frame rate and the latency from a frame's
arrival to its overlay. Settings (model, layer, method, alpha, colormap, class) change between two frames without
stopping anything. The thread starts with the first frame, ends after ``idle_s`` seconds without one (a closed tab
frees it), at :meth:`LiveWorker.stop` or when the process ends (after the frame under way: it is not a daemon, see
:func:`core.engine.warmup.process_ending`), and a later frame starts a new one.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..cam import methods
from ..engine.warmup import process_ending
from ..imaging import render
from .gate import PAGES, PageGate
from .slot import NewestSlot

IDLE_S = 3.0  # a worker without frames for this long ends its thread (a closed tab, a stopped stream)
WINDOW_S = 2.0  # the frame rate is counted over the last WINDOW_S seconds
LATENCIES = 200  # the latency percentiles are over the last LATENCIES frames

# Every viewer's frames are explained on this many cores at most together (all but one): the last core stays free
# for the other sessions' pages, so streams never slow an Explain page down; a viewer whose frame waits for a lane
# meanwhile keeps receiving frames, and the newest of them is the one explained.
LANES = max(1, len(os.sched_getaffinity(0)) - 1)
SHARED_LANES = threading.BoundedSemaphore(LANES)

LOG = logging.getLogger("core.live")  # one line as each worker thread starts and ends (the Live page shows it)
_count_lock = threading.Lock()
_running = 0  # worker threads alive in this process


def running_workers() -> int:
    """How many live worker threads this process runs now (every session's together)."""
    return _running


def _count(step: int, name: str, why: str) -> None:
    global _running
    with _count_lock:
        _running += step
        now = _running
    LOG.info("live worker %s %s (%s); %d running", name, "started" if step > 0 else "ended", why, now)


def live_methods() -> list[str]:
    """The methods a live view offers: those of the registry marked ``live`` (cheap enough for every frame)."""
    return [name for name, m in methods.REGISTRY.items() if m.live]


def why_not_live(name: str) -> str:
    """One sentence on why a method is not offered live."""
    m = methods.get(name)
    if m.extra_passes:
        return (f"{m.title} runs passes of its own for every map (seconds, not milliseconds); "
                "freeze a frame and open it on Explain.")
    return f"{m.title} is not cheap enough to redraw on every frame."


@dataclass(frozen=True)
class LiveSettings:
    """What the worker draws; replaced whole by :meth:`LiveWorker.configure` (the next frame uses the new one).

    Attributes:
        source: returns the engine to use (called once per frame, e.g. the pool's ``get`` for a model: a switch of
            model is a new ``source``).
        layer: the explained layer; None or one the model lacks: its default (last) layer.
        method: a registry name; one not ``live`` is drawn as Grad-CAM, with a note saying why.
        alpha, colormap: the overlay's look.
        class_index: the class to explain; None follows the top-1 of every frame.
        top_k: how many classes :attr:`LiveFrame.top` lists.
    """

    source: Callable = field(repr=False)
    layer: str | None = None
    method: str = methods.DEFAULT
    alpha: float = 0.45
    colormap: str = "jet"
    class_index: int | None = None
    top_k: int = 3


@dataclass(frozen=True)
class LiveFrame:
    """One explained frame.

    Attributes:
        rgb: the camera frame it was made from, (H, W, 3) uint8.
        overlay: the map over the frame, same size.
        top: the top classes as (index, label, probability), best first.
        class_index, label: the explained class.
        model, layer, method: what explained it (``method``: the title of the one drawn).
        note: one sentence where the chosen method could not be drawn here (another one was), else None.
        latency_s: from the frame's arrival to this overlay being ready.
        number: how many frames the worker had explained, this one included.
    """

    rgb: np.ndarray
    overlay: np.ndarray
    top: tuple
    class_index: int
    label: str
    model: str
    layer: str
    method: str
    note: str | None
    latency_s: float
    number: int


@dataclass(frozen=True)
class LiveStats:
    """The worker's counters: frames received, explained and dropped (replaced in the slot before being taken),
    explained frames per second over the last :data:`WINDOW_S`, latency percentiles in milliseconds, and the last
    error (one line) where a frame could not be explained."""

    received: int
    processed: int
    dropped: int
    fps: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    running: bool
    error: str | None


class LiveWorker:
    """One session's live explaining: the newest-frame slot, the thread that empties it, and the newest result.

    Args:
        settings: the first :class:`LiveSettings` (None: frames are dropped until :meth:`configure`).
        idle_s: the thread ends after this long without a frame.
        name: the thread's name.
        lanes: the semaphore every worker's frame holds while it is explained (:data:`SHARED_LANES`: the process's
            :data:`LANES`); None: none.
        gate: the pages' gate (:data:`core.live.gate.PAGES`) the thread waits at before each stage of a frame while
            another session's page runs; None: none.
    """

    def __init__(self, settings: LiveSettings | None = None, idle_s: float = IDLE_S, name: str = "gradcam-live",
                 lanes: threading.Semaphore | None = SHARED_LANES, gate: PageGate | None = PAGES):
        self._settings = settings
        self._lanes = lanes
        self._gate = gate
        self.idle_s = float(idle_s)
        self.name = name
        self._slot = NewestSlot()
        self._lock = threading.Lock()  # the thread's start and end, against submit
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._latest: LiveFrame | None = None
        self._done = deque(maxlen=256)  # finish times (monotonic) of recent frames
        self._latencies = deque(maxlen=LATENCIES)
        self._processed = 0
        self._error: str | None = None

    # --- the page's side -------------------------------------------------------------------------------------
    def configure(self, settings: LiveSettings | None = None, **changes) -> LiveSettings:
        """Use new settings from the next frame on: a whole :class:`LiveSettings`, or changes to the current ones."""
        if settings is None:
            if self._settings is None:
                raise ValueError("the first settings of a live worker need a source (the model's engine)")
            settings = replace(self._settings, **changes)
        self._settings = settings
        return settings

    @property
    def settings(self) -> LiveSettings | None:
        return self._settings

    @property
    def latest(self) -> LiveFrame | None:
        """The newest explained frame (None before the first)."""
        return self._latest

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def stats(self) -> LiveStats:
        now = time.monotonic()
        recent = [t for t in list(self._done) if now - t <= WINDOW_S]
        fps = 0.0
        if len(recent) >= 2:
            fps = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)
        lat = np.array(list(self._latencies)) * 1000.0
        p50, p95 = (float(np.percentile(lat, 50)), float(np.percentile(lat, 95))) if lat.size else (None, None)
        return LiveStats(self._slot.received, self._processed, self._slot.dropped, fps, p50, p95, self.running,
                         self._error)

    def latencies(self) -> np.ndarray:
        """The latencies (seconds) of the last :data:`LATENCIES` explained frames, oldest first."""
        return np.array(list(self._latencies), np.float64)

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (it finishes the frame it is on) and let go of the frame waiting in the slot."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
            if stop is not None:
                stop.set()
            self._slot.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def forget(self) -> None:
        """Stop, and drop the newest result and the counters (a closed view)."""
        self.stop()
        self._latest = None
        self._done.clear()
        self._latencies.clear()

    def explain(self, rgb: np.ndarray) -> LiveFrame | None:
        """Explain one photo now, in the caller's thread (a snapshot instead of a stream), and keep it as the newest.
        Through the engine's cached pass (every layer, kept by the photo's pixels): the page draws the snapshot again
        on every run, and a redraw with another layer, method, alpha or colormap runs no pass."""
        got = self.process(rgb, time.perf_counter(), cached=True)
        if got is not None:
            self._latest = got
        return got

    # --- the camera's side -----------------------------------------------------------------------------------
    def submit(self, rgb: np.ndarray, arrived: float | None = None) -> LiveFrame | None:
        """Hand a camera frame ((H, W, 3) uint8) to the worker and return the newest explained frame at once.

        Starts the thread where none runs. ``arrived``: the frame's arrival time (``time.perf_counter()``), now by
        default; the latency counts from it."""
        item = (rgb, time.perf_counter() if arrived is None else arrived)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                if process_ending():  # the process waits for its threads to end: no new one
                    return self._latest
                self._slot.open()
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._stop,), name=self.name, daemon=False)
                self._slot.put(item)
                self._thread.start()
            else:
                self._slot.put(item)
        return self._latest

    # --- the thread ------------------------------------------------------------------------------------------
    def _run(self, stop: threading.Event) -> None:
        _count(1, self.name, "a frame came")
        why = "stopped"
        try:
            self._loop(stop)
            why = "stopped" if stop.is_set() else f"no frame for {self.idle_s:g} s"
        finally:
            _count(-1, self.name, why)

    def _loop(self, stop: threading.Event) -> None:
        # not a daemon (process_ending): when the process ends, the frame under way is finished and the loop ends
        while not stop.is_set():
            item = self._slot.take(self.idle_s)
            ending = process_ending()
            if ending or item is None:
                with self._lock:  # idle: a frame put meanwhile keeps this thread (submit saw it alive)
                    if ending or stop.is_set() or len(self._slot) == 0:
                        if self._thread is threading.current_thread():
                            self._thread = self._stop = None
                        return
                continue
            if self._gate is not None and self._gate.wait() > 0:
                item = self._slot.newer(item)  # frames that came while the pages ran: the newest is explained
            try:
                self._latest = self.process(*item, gate=self._gate)
                self._error = None
            except Exception as exc:  # one bad frame (a model gone, a bad setting) must not end the stream
                self._error = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def process(self, rgb: np.ndarray, arrived: float, gate: PageGate | None = None,
                cached: bool = False) -> LiveFrame | None:
        """Explain one frame with the current settings (what the thread does with each frame it takes).

        ``gate``: the pages' gate to wait at before the pass and, where a page run began meanwhile, before the
        drawing (the worker's thread passes its own; a snapshot explained in a page's run passes none); the latency
        includes the waits. ``cached``: the engine's full pass, kept by the photo's pixels (:meth:`explain`),
        instead of the one-layer pass, without a lane; a frame counts as processed only where a pass ran."""
        if gate is not None:
            gate.wait()
        s = self._settings
        if s is None:
            return None
        engine = s.source()
        spec = engine.spec
        layer = s.layer if s.layer in engine.layers else spec.default_layer
        cls = s.class_index if s.class_index is not None and 0 <= s.class_index < spec.num_classes else None
        name = s.method if s.method in methods.REGISTRY and methods.REGISTRY[s.method].live else methods.DEFAULT

        def draw():
            cam, used, why = methods.from_pass(name, res, layer, engine)
            heat = render.heatmap(cam, rgb.shape[1], rgb.shape[0], s.colormap, signed=used.signed)
            return blend(rgb, heat, s.alpha), used, why

        # a camera frame holds a lane; a snapshot is a page's own pass, which (like every page's) takes none
        lane = self._lanes if self._lanes is not None and not cached else nullcontext()
        fresh = not (cached and engine.cached(rgb, cls))
        with lane:  # the pass and the drawing in one hold of the lane, unless a page run began meanwhile
            res = engine.run(rgb, cls) if cached else engine.live_pass(engine.prepare(rgb), layer, cls)
            drawn = draw() if gate is None or gate.inside == 0 else None
        if drawn is None:
            gate.wait()  # without the lane: the other viewers' frames go on meanwhile
            with lane:
                drawn = draw()
        over, used, why = drawn
        if name != s.method:
            why = why_not_live(s.method) if s.method in methods.EVERY else f"unknown method {s.method!r}"
        top = tuple((i, spec.label(i), p) for i, p in res.top_k(s.top_k))
        latency = time.perf_counter() - arrived
        if fresh:
            self._processed += 1
            self._done.append(time.monotonic())
            self._latencies.append(latency)
        return LiveFrame(rgb, over, top, res.class_index, spec.label(res.class_index), spec.name, layer, used.title,
                         why, latency, self._processed)


def blend(rgb: np.ndarray, heat: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha)·rgb + alpha·heat`` in 8-bit fixed point: :func:`core.imaging.render.overlay`'s blend within one
    level of 255, in a fifth of its time at a camera's 640×480 (integers instead of floats)."""
    a = int(round(float(np.clip(alpha, 0.0, 1.0)) * 256))
    out = np.asarray(rgb, np.uint16) * (256 - a)
    out += np.asarray(heat, np.uint16) * a
    out += 128
    return (out >> 8).astype(np.uint8)


def banner(frame: LiveFrame) -> np.ndarray:
    """The overlay with the explained class and its probability written in its top-left corner (what the camera's
    viewer sees on the video itself)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(frame.overlay)
    draw = ImageDraw.Draw(img)
    prob = next((p for i, _, p in frame.top if i == frame.class_index), None)
    text = frame.label + (f" {prob:.0%}" if prob is not None else "")
    size = max(12, img.height // 24)
    font = ImageFont.load_default(size=size)
    x0, y0, x1, y1 = draw.textbbox((8, 6), text, font=font)
    draw.rectangle((x0 - 4, y0 - 3, x1 + 4, y1 + 3), fill=(0, 0, 0))
    draw.text((8, 6), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)
