"""The pages' gate (core/live/gate.py): live workers wait while a page runs, at most a bounded time, and go on at
once when it ends; a worker's frame waits at the gate before its pass and before its drawing."""
import threading
import time

import numpy as np

from core.live import LiveSettings, LiveWorker, PageGate
from tests.test_live import live_threads, toy_engine  # noqa: F401  (a fixture)


def test_without_a_page_running_the_wait_returns_at_once():
    gate = PageGate(max_wait_s=1.0)
    started = time.perf_counter()
    assert gate.wait() == 0.0 and gate.inside == 0
    assert time.perf_counter() - started < 0.01


def test_a_wait_lasts_until_the_page_ends():
    gate, waited = PageGate(max_wait_s=5.0), []
    with gate.page():
        t = threading.Thread(target=lambda: waited.append(gate.wait()))
        t.start()
        time.sleep(0.2)
        assert t.is_alive() and gate.inside == 1  # still waiting while the page runs
    t.join(2)
    assert not t.is_alive() and 0.15 <= waited[0] < 1.0, waited
    assert gate.inside == 0 and gate.waited_s == waited[0]


def test_a_wait_is_bounded_while_pages_keep_running_and_nested_pages_count():
    gate = PageGate(max_wait_s=0.1)
    with gate.page(), gate.page():
        assert gate.inside == 2
        started = time.perf_counter()
        waited = gate.wait()
        assert 0.09 <= waited < 0.5 and time.perf_counter() - started < 0.5
        assert 0.29 <= gate.wait(0.3) < 0.8  # a longer limit where asked
    assert gate.inside == 0


def test_a_page_that_raises_still_leaves_the_gate():
    gate = PageGate()
    try:
        with gate.page():
            raise RuntimeError("a page's error")
    except RuntimeError:
        pass
    assert gate.inside == 0


def test_a_live_frame_waits_for_a_running_page_and_is_explained_after_it(toy_engine):  # noqa: F811
    gate = PageGate(max_wait_s=5.0)
    toy_engine.live_pass(toy_engine.prepare(np.zeros((32, 32, 3), np.uint8)), "last")  # traced first
    w = LiveWorker(LiveSettings(lambda: toy_engine, layer="last"), name="test-live", gate=gate)
    with gate.page():
        for i in range(5):
            w.submit(np.full((32, 32, 3), 40 * i, np.uint8))
            time.sleep(0.05)
        time.sleep(0.2)
        assert w.stats().processed == 0  # nothing explained while the page runs
    deadline = time.perf_counter() + 5
    while w.stats().processed == 0 and time.perf_counter() < deadline:
        time.sleep(0.02)
    s = w.stats()
    assert s.processed >= 1 and s.error is None, s
    assert int(w.latest.rgb[0, 0, 0]) == 160  # the newest frame, the others replaced meanwhile
    time.sleep(0.2)
    assert w.stats().processed == 1  # the frame taken before the wait (0) was dropped for the newest, not explained
    assert s.dropped >= 3
    assert w.latest.latency_s >= 0.2  # its wait counts in its latency
    w.stop()
    assert live_threads() == 0


def test_a_snapshot_explained_inside_a_page_run_does_not_wait_for_itself(toy_engine):  # noqa: F811
    gate = PageGate(max_wait_s=5.0)
    w = LiveWorker(LiveSettings(lambda: toy_engine, layer="last"), name="test-live", gate=gate)
    with gate.page():  # the Live page's own run explains its snapshot in the page's thread
        started = time.perf_counter()
        got = w.explain(np.full((32, 32, 3), 90, np.uint8))
        assert got is not None and time.perf_counter() - started < 2.0
    w.forget()


def test_a_page_run_that_begins_during_a_pass_delays_the_drawing_without_holding_the_lane(toy_engine):  # noqa: F811
    gate, lane = PageGate(max_wait_s=5.0), threading.BoundedSemaphore(1)
    page_on, page_off = threading.Event(), threading.Event()

    def a_page():
        with gate.page():
            page_on.set()
            page_off.wait(5)

    class Probe:  # the engine, with a page run beginning while the frame's pass runs
        def __getattr__(self, name):
            return getattr(toy_engine, name)

        def live_pass(self, *a, **kw):
            threading.Thread(target=a_page).start()
            page_on.wait(5)
            return toy_engine.live_pass(*a, **kw)

    toy_engine.live_pass(toy_engine.prepare(np.zeros((32, 32, 3), np.uint8)), "last")  # traced first
    w = LiveWorker(LiveSettings(lambda: Probe(), layer="last"), name="test-live", lanes=lane, gate=gate)
    w.submit(np.full((32, 32, 3), 70, np.uint8))
    assert page_on.wait(5)
    time.sleep(0.2)
    assert w.stats().processed == 0  # passed, not drawn: waiting for the page
    assert lane.acquire(timeout=1)  # and not holding the lane meanwhile
    lane.release()
    page_off.set()
    deadline = time.perf_counter() + 5
    while w.stats().processed == 0 and time.perf_counter() < deadline:
        time.sleep(0.02)
    assert w.stats().processed == 1 and w.stats().error is None and w.latest.latency_s >= 0.2
    w.stop()
    assert live_threads() == 0
