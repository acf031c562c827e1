"""The cold server's import gives way to its pages, and the middleware that tells it when the server works
(server/pacing.py)."""
import asyncio
import builtins
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from server import pacing
from server.pacing import Pacer, ServerActivity


class FakeClock:
    """``time`` for :mod:`server.pacing` alone: ``sleep`` moves the clock on at once, so a wait's length is what the
    pacer decided, not what a busy machine made of it; ``sleeps`` counts the pacer's polls."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, 0

    def monotonic(self):
        return self.now

    def sleep(self, s):
        self.sleeps += 1
        self.now += s


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(pacing, "time", fake)
    return fake


def test_a_quiet_server_does_not_make_anyone_wait(clock):
    pacer = Pacer(quiet_s=0.05, turn_s=5.0)
    assert pacer.quiet() and pacer.wait_turn() == 0.0 and pacer.waited_s == 0.0
    assert clock.sleeps == 0  # not a single poll
    pacer.touch()
    clock.now += 0.05 + 1e-9  # quiet again quiet_s after the last request
    assert pacer.quiet() and pacer.wait_turn() == 0.0 and clock.sleeps == 0


def test_a_request_makes_the_import_wait_until_the_server_is_quiet_again(clock):
    pacer = Pacer(quiet_s=0.2, turn_s=2.0)
    pacer.touch()
    clock.now += 0.05  # the request came 0.05 s ago: 0.15 s of quiet still to go
    assert not pacer.quiet()
    waited = pacer.wait_turn()
    assert waited == pytest.approx(0.15, abs=Pacer.POLL_S) and pacer.quiet() and pacer.waited_s == waited
    assert clock.sleeps == pytest.approx(0.15 / Pacer.POLL_S, abs=1)  # polled until quiet, not up to turn_s


def test_a_page_run_makes_the_import_wait_until_it_ends_or_waits_itself():
    """Real threads and the real clock: the bounds are orderings (the wait ends after the run was let go) and
    margins far from the turn limit, not tenths of a second a busy machine can overrun."""
    pacer = Pacer(quiet_s=0.05, turn_s=20.0)
    entered, leave, idle, leave_idle = (threading.Event() for _ in range(4))
    released = []

    def page():
        with pacer.busy():
            entered.set()
            leave.wait(5)
            with pacer.idle():  # waiting for the start-up work itself
                idle.set()
                leave_idle.wait(5)

    runner = threading.Thread(target=page)
    runner.start()
    entered.wait(5)

    def let_go():
        released.append(time.monotonic())
        leave.set()

    threading.Timer(0.3, let_go).start()
    waited = pacer.wait_turn()  # the run is busy for 0.3 s, then idle: the import may go on
    ended = time.monotonic()
    assert released and ended >= released[0]  # it waited for the run to be let go, not for a set time
    assert ended - released[0] < pacer.turn_s / 4 and waited == pacer.waited_s  # and went on once it was idle
    assert idle.wait(5) and pacer.quiet() and pacer.wait_turn() == 0.0  # idle: no wait at all (nothing touched)
    leave_idle.set()
    runner.join(5)
    time.sleep(0.06)
    assert pacer.quiet() and pacer._busy == 0  # the run's marks are undone, exceptions or not


def test_waits_are_bounded_one_by_one_and_in_all(clock):
    pacer = Pacer(quiet_s=0.05, turn_s=0.1, total_s=0.25)
    with pacer.busy():  # a run that never ends
        waits = [pacer.wait_turn() for _ in range(5)]
    poll = Pacer.POLL_S + 1e-9  # a wait ends at the first poll at or past its limit
    assert all(0.1 <= w <= 0.1 + poll for w in waits[:2])  # turn_s each
    assert 0.25 <= pacer.waited_s <= 0.25 + poll and 0 < waits[2] <= 0.05  # then what is left of total_s
    assert waits[3:] == [0.0, 0.0]  # all it may wait is spent: no more waiting


class _Stop(BaseException):
    """Like Streamlit's StopException and RerunException: a BaseException, not an Exception."""


def test_busy_is_undone_when_the_run_is_stopped():
    pacer = Pacer(quiet_s=0.0)
    try:
        with pacer.busy():
            with pacer.idle():
                raise _Stop("st.stop() or a rerun")
    except _Stop:
        pass
    assert pacer.quiet() and pacer._busy == 0


def test_waiting_outside_a_page_run_does_not_hide_another_sessions_run():
    """idle() in a thread with no busy() (a fragment's rerun, say) changes nothing: another session's run
    still keeps the import waiting."""
    pacer = Pacer(quiet_s=0.0)
    with pacer.idle():
        assert pacer.quiet()
        running, leave = threading.Event(), threading.Event()

        def other_session():
            with pacer.busy():
                running.set()
                leave.wait(5)

        runner = threading.Thread(target=other_session)
        runner.start()
        running.wait(5)
        assert not pacer.quiet()
        leave.set()
        runner.join(5)
    assert pacer.quiet() and pacer._busy == 0


def _write_modules(tmp_path, names):
    for name in names:
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))


def test_paced_imports_wait_in_their_own_thread_only_and_do_not_hold_other_threads_imports(tmp_path):
    """The paced thread waits before its import statement; meanwhile another thread imports a fresh module
    at once (a wait inside an import hook would hold Python's global import lock and stop it)."""
    _write_modules(tmp_path, ["paced_first", "other_thread_mod"])
    original = builtins.__import__
    try:
        # a wait inside an import hook would hold this thread's import until the paced wait gave up (turn_s):
        # the bound below is a fifth of that, not tenths of a second a busy machine can overrun
        pacer = Pacer(quiet_s=0.05, turn_s=15.0)
        done = {}

        def importer():
            with pacer.paced_imports():
                import paced_first  # noqa: F401
                done["paced"] = time.monotonic()

        with pacer.busy():
            worker = threading.Thread(target=importer)
            worker.start()
            time.sleep(0.2)
            assert worker.is_alive() and "paced" not in done  # waiting for the run to end
            t = time.monotonic()
            import other_thread_mod  # noqa: F401 - this thread's import goes straight on
            assert time.monotonic() - t < pacer.turn_s / 5
            assert worker.is_alive() and "paced" not in done  # still waiting meanwhile
            released = time.monotonic()
        worker.join(10)
        assert done["paced"] >= released and "paced_first" in sys.modules  # imported once the run was over
        assert builtins.__import__ is original  # the builtin is back
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("paced_first", "other_thread_mod"):
            sys.modules.pop(name, None)


def test_paced_imports_leave_a_later_replacement_of_import_in_place():
    pacer = Pacer()
    original = builtins.__import__
    try:
        with pacer.paced_imports():
            wrapped = builtins.__import__
            assert wrapped is not original

            def someone_elses(*args, **kwargs):
                return wrapped(*args, **kwargs)

            builtins.__import__ = someone_elses
        assert builtins.__import__ is someone_elses  # not clobbered
        pacer.touch()
        with pacer.busy():
            assert not pacer.quiet()  # a paced import would wait now
            import json  # noqa: F401 - through the old wrapper, which now passes straight on
            assert pacer.waited_s == 0.0  # it did not wait its turn
    finally:
        builtins.__import__ = original


def test_tensorflow_import_gives_way_and_the_pages_imports_go_on(tmp_path):
    """In a fresh process: TensorFlow's import under a pacer kept busy by a "page" waits for it (the page stays
    busy for 0.6 s after the import's first wait began), while the page imports a module of its own at once;
    the import then ends, and the builtin import is restored. The bounds are orderings and margins far from
    turn_s (5 s), which a wait that missed the page's end, or a wait inside an import hook, would reach."""
    (tmp_path / "page_module.py").write_text("VALUE = 1\n")
    code = textwrap.dedent(f"""
        import builtins, sys, threading, time
        sys.path.insert(0, {str(tmp_path)!r})
        from server.pacing import Pacer
        from core.engine.warmup import import_tensorflow_quietly
        original = builtins.__import__
        pacer = Pacer(quiet_s=0.05, turn_s=5.0, total_s=10.0)
        first_wait = threading.Event()
        wait_turn = pacer.wait_turn
        marks = {{}}

        def watched_wait_turn():
            first = not first_wait.is_set()
            first_wait.set()
            waited = wait_turn()
            if first:
                marks["first_wait_end"] = time.monotonic()
            return waited

        pacer.wait_turn = watched_wait_turn
        started = threading.Event()
        page = {{}}

        def run_page():
            with pacer.busy():
                started.set()
                first_wait.wait(60)  # until the import's first paced statement
                t = marks["page_start"] = time.monotonic()
                import page_module
                page["import_s"] = time.monotonic() - t
                time.sleep(0.6)
                marks["page_end"] = time.monotonic()

        runner = threading.Thread(target=run_page)
        runner.start()
        started.wait()
        t = time.monotonic()
        import_tensorflow_quietly(pacer=pacer)
        took = time.monotonic() - t
        runner.join()
        assert "tensorflow" in sys.modules and "keras" in sys.modules
        assert builtins.__import__ is original
        print(pacer.waited_s, took, page["import_s"], marks["page_end"] - marks["page_start"],
              marks["first_wait_end"] - marks["page_end"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=".")
    assert out.returncode == 0, out.stderr[-2000:]
    waited, took, page_import, page_busy, after_page = map(float, out.stdout.split())
    assert page_busy >= 0.6 and 0 < waited < took  # the page was busy when the import first waited, 0.6 s more
    assert 0 <= after_page < 2.5  # that wait ended once the run was over, well before turn_s (5 s) ran out
    assert page_import < 2.5  # the page's own import was not held up (a wait in an import hook: turn_s, 5 s)


def _drive(middleware, scope, incoming):
    """Run ``middleware`` on ``scope`` with ``incoming`` messages; what the next app saw and sent back."""
    seen, out = [], []

    async def downstream(scope, receive, send):
        for _ in incoming:
            seen.append(await receive())
        await send({"type": "reply"})

    middleware.app = downstream
    queue = list(incoming)

    async def receive():
        return queue.pop(0)

    async def send(message):
        out.append(message)

    asyncio.run(middleware(scope, receive, send))
    return seen, out


def test_every_request_and_websocket_message_counts_as_activity_and_passes_unchanged():
    touches = []
    middleware = ServerActivity(None, touch=lambda: touches.append(1))
    seen, out = _drive(middleware, {"type": "http", "method": "GET", "path": "/static/x.js"}, [])
    assert len(touches) == 1 and out == [{"type": "reply"}]
    touches.clear()
    messages = [{"type": "websocket.connect"}, {"type": "websocket.receive", "bytes": b"rerun"}]
    seen, out = _drive(middleware, {"type": "websocket", "path": "/_stcore/stream"}, messages)
    assert seen == messages and out == [{"type": "reply"}]
    assert len(touches) == 1 + 2 + 1  # the connection, two messages in, one out
    touches.clear()
    _drive(middleware, {"type": "lifespan"}, [])
    assert touches == []
