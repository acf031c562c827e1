"""The live view's parts without a browser: the newest-frame slot, the worker that always explains the newest frame
and never queues, its thread's start, stop and idle end, settings and models changed while frames flow, and the
engine's one-layer pass against the full pass."""
import dataclasses
import threading
import time

import numpy as np
import pytest

from core.cam import methods
from core.live import LiveSettings, LiveWorker, NewestSlot, banner, live_methods, why_not_live
from core.live.worker import blend
from core.imaging import render
from tests.toys import gap_dense_model, toy_spec


def live_threads() -> int:
    return sum(t.name.startswith("test-live") for t in threading.enumerate())


# --- the slot ---------------------------------------------------------------------------------------------------
def test_the_slot_keeps_only_the_newest_and_counts_what_it_dropped():
    slot = NewestSlot()
    assert slot.take(timeout=0.01) is None and len(slot) == 0
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert len(slot) == 1
    assert slot.take(timeout=0.01) == 3
    assert slot.take(timeout=0.01) is None  # taking empties it
    assert (slot.received, slot.dropped) == (3, 2)


def test_a_waiting_take_gets_the_next_item_and_close_wakes_it_with_none():
    slot, got = NewestSlot(), []
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    t.start()
    time.sleep(0.05)
    slot.put("frame")
    t.join(2)
    assert got == ["frame"]
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    t.start()
    time.sleep(0.05)
    started = time.perf_counter()
    slot.close()
    t.join(2)
    assert got == ["frame", None] and time.perf_counter() - started < 1
    slot.put("after close")  # held, but a closed slot answers None until opened again
    assert slot.take(timeout=0.01) is None
    slot.open()
    slot.put("again")
    assert slot.take(timeout=0.01) == "again"


# --- the worker, with a processing step of known length ------------------------------------------------------------
class SlowWorker(LiveWorker):
    """A worker whose processing takes ``step`` seconds and records which frames it explained."""

    def __init__(self, step=0.05, **kw):
        super().__init__(LiveSettings(lambda: None), name="test-live", **kw)
        self.step, self.seen = step, []

    def process(self, rgb, arrived, gate=None):
        time.sleep(self.step)
        self.seen.append(int(rgb[0, 0, 0]))
        self._processed += 1
        self._done.append(time.monotonic())
        self._latencies.append(time.perf_counter() - arrived)
        return int(rgb[0, 0, 0])


def frame(i):
    return np.full((4, 4, 3), i, np.uint8)


def test_the_worker_drops_frames_it_cannot_keep_up_with_and_never_queues():
    w = SlowWorker(step=0.05)
    for i in range(60):  # a 200 fps camera against a 20 fps worker
        w.submit(frame(i))
        time.sleep(0.005)
    time.sleep(0.2)
    s = w.stats()
    assert s.received == 60
    assert 4 <= s.processed <= 20, s  # about one frame in ten, not all sixty
    assert s.dropped == s.received - s.processed  # every frame was either explained or replaced: none waits
    assert w.seen[-1] == 59  # the last explained frame is the newest one
    assert w.seen == sorted(w.seen)  # always forward in time
    # a frame waited at most one processing time before its own started: latency ≤ two steps (and some slack)
    assert s.latency_ms_p95 < 2 * 50 + 40, s
    w.stop()
    assert live_threads() == 0


def until(condition, timeout_s: float = 10.0) -> bool:
    """Whether ``condition()`` holds within ``timeout_s`` (looked at every 10 ms): a thread's step on a busy
    machine, without a fixed sleep."""
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_twenty_starts_and_stops_leave_no_thread_and_idle_frees_the_thread():
    before = threading.active_count()
    w = SlowWorker(step=0.01, idle_s=0.3)
    for i in range(20):
        for j in range(3):
            w.submit(frame(j))
        assert w.running
        w.stop()
        assert not w.running and live_threads() == 0
    assert w.stats().processed >= 20  # each cycle explained its frames (the first of three at least)
    w.submit(frame(7))
    assert until(lambda: w.latest == 7) and w.running
    assert until(lambda: not w.running and live_threads() == 0)  # no frame for idle_s: it ended (a closed tab)
    w.submit(frame(8))  # and the next frame starts it again
    assert until(lambda: w.latest == 8)
    w.forget()
    assert w.latest is None and threading.active_count() == before


def test_a_process_that_ends_while_a_camera_streams_ends_the_worker_first_and_exits_cleanly():
    """The worker's thread is not a daemon (Python ends a daemon thread at its exit wherever it is, and one inside
    TensorFlow aborts the process with status 134): when the main thread ends while frames keep coming (the
    camera's thread is a daemon), the worker finishes its frame, ends, and starts no new thread for later frames;
    the exit handlers run after it ended."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent("""
        import atexit, dataclasses, sys, threading, time
        import numpy as np
        from core.engine import Engine
        from core.live import LiveSettings, LiveWorker
        from tests.toys import gap_dense_model, toy_spec

        spec = dataclasses.replace(toy_spec(["conv1", "last"], 32, name="toy_exit"), classes=tuple("abcde"))
        engine = Engine(spec, gap_dense_model(32, 5))
        worker = LiveWorker(LiveSettings(lambda: engine), name="exit-live")
        frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)

        def camera():  # like the camera's callback thread: a daemon that keeps sending frames
            while True:
                worker.submit(frame)
                time.sleep(0.005)

        threading.Thread(target=camera, daemon=True).start()
        while worker.stats().processed < 3:
            time.sleep(0.01)
        print("streaming", flush=True)
        atexit.register(lambda: print(worker.running, sum(t.name == "exit-live" for t in threading.enumerate()),
                                      flush=True))
        sys.exit(0)  # the main thread ends while the worker explains frames
    """)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["streaming", "False 0"]  # a daemon worker would still be running here
    assert time.monotonic() - start < 60


def test_methods_offered_live_are_the_registrys_live_ones_and_the_others_say_why():
    names = live_methods()
    assert names[0] == "gradcam" and "eigencam" in names and "cam" in names
    assert all(methods.REGISTRY[n].live for n in names)
    slow = [n for n in methods.REGISTRY if n not in names]
    assert "scorecam" in slow
    for n in slow:
        why = why_not_live(n)
        assert methods.REGISTRY[n].title in why and why.count(".") == 1 and "\n" not in why


def test_the_fixed_point_blend_is_the_render_overlay_within_one_level():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cam = rng.random((6, 8))
    for alpha in (0.0, 0.3, 0.45, 1.0):
        got = blend(rgb, render.heatmap(cam, 64, 48, "jet"), alpha).astype(int)
        want = render.overlay(rgb, cam, alpha, "jet").astype(int)
        assert np.abs(got - want).max() <= 1


# --- with real engines --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_engine():
    from core.engine import Engine

    spec = toy_spec(["conv1", "last"], 32, name="toy_live")
    spec = dataclasses.replace(spec, classes=("mug", "shirt", "hand", "face", "wall"), family="trained")
    return Engine(spec, gap_dense_model(32, 5))


@pytest.mark.parametrize("layer", ["top_activation", "block5a_project_bn"])
def test_the_one_layer_pass_gives_the_full_pass_s_maps_at_its_layer(lite_engine, photos, layer):
    rgb = photos["coffee.jpg"].rgb
    x = lite_engine.prepare(rgb)
    full, one = lite_engine.run_input(x), lite_engine.live_pass(x, layer)
    assert one.class_index == full.class_index and list(one.acts) == [layer]
    np.testing.assert_allclose(one.probs, full.probs, atol=1e-6)
    for name in ("gradcam", "gradcampp", "layercam", "eigencam"):
        a = methods.compute(name, one, layer, lite_engine)
        b = methods.compute(name, full, layer, lite_engine)
        # float32 gradients summed in another order through the blocks between: within 1e-4 of the map's maximum
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * float(np.abs(b).max()))
    fixed = lite_engine.live_pass(x, layer, 281)  # a fixed class: its gradients, not the top-1's
    assert fixed.class_index == 281
    want = lite_engine.run_input(x, 281).grads[layer]
    np.testing.assert_allclose(fixed.grads[layer], want, atol=1e-4 * float(np.abs(want).max()))
    with pytest.raises(ValueError, match="unknown layer"):
        lite_engine.live_pass(x, "nope")
    with pytest.raises(ValueError, match="one preprocessed photo"):
        lite_engine.live_pass(np.concatenate([x, x]), layer)
    # the same trace in batches (SmoothGrad-CAM's copies): each row as that photo alone, for the top-1 and a class,
    # to 1 % of its L2 norm (a batch may take other oneDNN kernels: test_gradient_methods.assert_same_map)
    batch = np.concatenate([x, lite_engine.prepare(photos["cat_and_dog.jpg"].rgb), x[:, ::-1]])
    for cls in (None, 281):
        acts, grads = lite_engine.layer_pass(batch, cls, layer)
        assert acts.shape[0] == grads.shape[0] == 3
        for row, photo in enumerate(batch):
            alone = lite_engine.live_pass(photo[None], layer, cls)
            for got, want in ((acts[row], alone.acts[layer]), (grads[row], alone.grads[layer])):
                assert np.linalg.norm(got - want) <= 0.01 * np.linalg.norm(want), (cls, row)


def test_the_engine_keeps_a_bounded_number_of_one_layer_passes(toy_engine):
    from core.engine import one_layer

    x = toy_engine.prepare(np.zeros((32, 32, 3), np.uint8))
    for layer in toy_engine.layers * 3:
        toy_engine.live_pass(x, layer)
    assert 0 < len(toy_engine._one_layer) <= one_layer.ONE_LAYER_PASSES


def test_the_worker_explains_the_espresso_live_and_follows_a_model_switch(lite_engine, toy_engine, photos):
    from bench.live import camera_frames, feed

    frames = camera_frames(n=8)
    current = {"engine": lite_engine}
    w = LiveWorker(LiveSettings(lambda: current["engine"]), name="test-live")
    threads = threading.active_count()
    feed(w, frames, 1.0, 30)
    first = w.latest
    assert first is not None and first.label == "espresso" and first.model == "efficientnet_lite0"
    assert first.overlay.shape == frames[0].shape and first.layer == "top_activation"
    assert not np.array_equal(first.overlay, first.rgb)  # the map is drawn over the frame
    assert [t[1] for t in first.top][0] == "espresso" and len(first.top) == 3
    assert banner(first).shape == first.overlay.shape
    for n in range(5):  # model, layer, method and class changed between frames, the stream never stopped
        current["engine"] = toy_engine if n % 2 == 0 else lite_engine
        layer = "conv1" if n % 2 == 0 else "block6d_add"
        w.configure(layer=layer, method="scorecam" if n == 2 else "cam",
                    class_index=1 if n % 2 == 0 else None, alpha=0.6, colormap="viridis")
        # a layer's first frame traces its one-layer pass (about a second): the frames meanwhile show the last overlay
        for _ in range(20):
            feed(w, frames, 0.4, 30)
            got = w.latest
            if got.model == current["engine"].spec.name and got.layer == layer:
                break
        assert got.model == current["engine"].spec.name, (n, got.model, w.stats())
        assert got.method == "Grad-CAM"  # CAM applies at the last layer only, Score-CAM is not live: each says why
        assert ("Score-CAM runs passes of its own" if n == 2 else "CAM applies only at the layer") in got.note
        if n % 2 == 0:  # the trained model's own class names, and its fixed class
            assert got.label == "shirt" and got.class_index == 1 and got.layer == "conv1"
            assert {t[1] for t in got.top} <= {"mug", "shirt", "hand", "face", "wall"}
        else:
            assert got.label == "espresso" and got.layer == "block6d_add"
    assert w.stats().error is None
    w.stop()
    assert threading.active_count() <= threads and live_threads() == 0


def test_the_worker_count_and_its_log_lines_follow_each_thread(caplog):
    from core.live import running_workers

    caplog.set_level("INFO", logger="core.live")
    before = running_workers()
    a, b = SlowWorker(step=0.01, idle_s=0.3), SlowWorker(step=0.01, idle_s=0.3)
    a.submit(frame(1))
    b.submit(frame(2))
    assert running_workers() == before + 2
    a.stop()
    assert running_workers() == before + 1
    # b's idle end: no frame for longer than idle_s (a closed tab)
    assert until(lambda: running_workers() == before and live_threads() == 0)
    lines = [r.getMessage() for r in caplog.records if r.name == "core.live"]
    assert sum("started" in m for m in lines) == 2 and sum("ended" in m for m in lines) == 2
    assert any("ended (stopped)" in m for m in lines) and any("ended (no frame for 0.3 s)" in m for m in lines)


def test_a_model_trained_here_runs_live_with_its_own_class_names(lite_engine, photos):
    """Two classes made from two bundled photos (flips and crops), trained head-only as the Train page does; the
    pool's engine for it, and the same model saved to a ``.keras`` file and opened again (the Train page's "Open a
    model saved here before"), name the camera's mug and dog with the model's class names, switched live."""
    from bench.live import PHOTO, ROOT, camera_frames, feed
    from core.engine.pool import EnginePool
    from core.models.trained import load_file
    from tests.live_model import PHOTOS, train_mug_or_dog

    model = train_mug_or_dog(lite_engine, photos)
    reopened = load_file(model.to_bytes(), "mug or dog.keras")
    assert reopened.classes == model.classes == tuple(PHOTOS)
    pool = EnginePool()
    camera = {"my mug": camera_frames(PHOTO, n=8), "my dog": camera_frames(ROOT / "assets" / "dog.jpg", n=8)}
    current = {"model": model}
    w = LiveWorker(LiveSettings(lambda: pool.get(current["model"])), name="test-live")
    for source in (model, reopened):
        current["model"] = source
        for want in ("my mug", "my dog", "my mug"):
            for _ in range(20):  # the model's first frame builds its engine and traces its pass (seconds)
                feed(w, camera[want], 0.4, 30)
                got = w.latest
                if got is not None and got.model == source.name and any(got.rgb is f for f in camera[want]):
                    break
            assert got.model == source.name and got.label == want, (want, got.label, got.top)
            assert [t[1] for t in got.top] == [want, next(c for c in PHOTOS if c != want)]  # two classes: top-2
            assert got.top[0][2] > 0.5 and got.layer == "top_activation"
    assert w.stats().error is None
    w.stop()
    assert live_threads() == 0


def test_the_viewers_frames_share_the_lanes_and_never_use_more_at_once(toy_engine):
    """Three workers on one lane: their passes never overlap, and each still explains frames (the newest)."""
    class Probe:
        def __init__(self, engine):
            self.engine, self.now, self.most, self.lock = engine, 0, 0, threading.Lock()

        def __getattr__(self, name):
            return getattr(self.engine, name)

        def live_pass(self, *a, **kw):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(0.01)
            try:
                return self.engine.live_pass(*a, **kw)
            finally:
                with self.lock:
                    self.now -= 1

    from bench.live import feed

    probe, lane = Probe(toy_engine), threading.BoundedSemaphore(1)
    frames = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(5)]
    toy_engine.live_pass(toy_engine.prepare(frames[0]), "last")  # traced before the clock starts
    workers = [LiveWorker(LiveSettings(lambda: probe, layer="last"), name="test-live", lanes=lane) for _ in range(3)]
    feeders = [threading.Thread(target=feed, args=(w, frames, 1.0, 60)) for w in workers]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    for w in workers:
        w.stop()
    assert probe.most == 1
    assert all(w.stats().processed >= 5 and w.stats().error is None for w in workers), [w.stats() for w in workers]
    assert live_threads() == 0
