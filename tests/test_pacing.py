"""The cold server's import gives way to its pages (core/pacing.py) and the middleware that tells it when
the server works (ui/activity.py)."""
import asyncio
import builtins
import subprocess
import sys
import textwrap
import threading
import time

from core.pacing import Pacer
from ui.activity import ServerActivity


def test_a_quiet_server_does_not_make_anyone_wait():
    pacer = Pacer(quiet_s=0.05)
    t = time.monotonic()
    assert pacer.quiet() and pacer.wait_turn() == 0.0 and pacer.waited_s == 0.0
    assert time.monotonic() - t < 0.05


def test_a_request_makes_the_import_wait_until_the_server_is_quiet_again():
    pacer = Pacer(quiet_s=0.2, turn_s=2.0)
    pacer.touch()
    assert not pacer.quiet()
    waited = pacer.wait_turn()
    assert 0.1 <= waited < 0.6 and pacer.quiet() and pacer.waited_s == waited


def test_a_page_run_makes_the_import_wait_until_it_ends_or_waits_itself():
    pacer = Pacer(quiet_s=0.05, turn_s=5.0)
    entered, leave, idle, leave_idle = (threading.Event() for _ in range(4))

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
    threading.Timer(0.3, leave.set).start()
    waited = pacer.wait_turn()  # the run is busy for 0.3 s, then idle: the import may go on
    assert 0.25 <= waited < 1.5 and idle.wait(1)
    assert pacer.wait_turn() < 0.2  # idle: at most the quiet time after the run's last mark
    leave_idle.set()
    runner.join(5)
    time.sleep(0.06)
    assert pacer.quiet() and pacer._busy == 0  # the run's marks are undone, exceptions or not


def test_waits_are_bounded_one_by_one_and_in_all():
    pacer = Pacer(quiet_s=0.05, turn_s=0.1, total_s=0.25)
    with pacer.busy():  # a run that never ends
        waits = [pacer.wait_turn() for _ in range(5)]
    assert all(w < 0.2 for w in waits[:2])
    assert 0.24 <= pacer.waited_s < 0.4
    assert waits[-1] == 0.0  # all it may wait is spent: no more waiting


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
        pacer = Pacer(quiet_s=0.05, turn_s=5.0)
        done = {}

        def importer():
            with pacer.paced_imports():
                t = time.monotonic()
                import paced_first  # noqa: F401
                done["paced"] = time.monotonic() - t

        with pacer.busy():
            worker = threading.Thread(target=importer)
            worker.start()
            time.sleep(0.2)
            assert worker.is_alive() and "paced" not in done  # waiting for the run to end
            t = time.monotonic()
            import other_thread_mod  # noqa: F401 - this thread's import goes straight on
            assert time.monotonic() - t < 0.15
            time.sleep(0.1)
        worker.join(5)
        assert done["paced"] >= 0.25 and "paced_first" in sys.modules
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
            t = time.monotonic()
            import json  # noqa: F401 - through the old wrapper, which now passes straight on
            assert time.monotonic() - t < 0.05
    finally:
        builtins.__import__ = original


def test_tensorflow_import_gives_way_and_the_pages_imports_go_on(tmp_path):
    """In a fresh process: TensorFlow's import under a pacer kept busy by a "page" waits for it (the page stays
    busy for 0.6 s after the import's first wait began), while the page imports a module of its own at once;
    the import then ends, and the builtin import is restored."""
    (tmp_path / "page_module.py").write_text("VALUE = 1\n")
    code = textwrap.dedent(f"""
        import builtins, sys, threading, time
        sys.path.insert(0, {str(tmp_path)!r})
        from core.pacing import Pacer
        from core.engine.warmup import import_tensorflow_quietly
        original = builtins.__import__
        pacer = Pacer(quiet_s=0.05, turn_s=2.0)
        first_wait = threading.Event()
        wait_turn = pacer.wait_turn

        def watched_wait_turn():
            first_wait.set()
            return wait_turn()

        pacer.wait_turn = watched_wait_turn
        started = threading.Event()
        page = {{}}

        def run_page():
            with pacer.busy():
                started.set()
                first_wait.wait(60)  # TensorFlow's C++ libraries load first, unpaced
                t = time.monotonic()
                import page_module
                page["import_s"] = time.monotonic() - t
                time.sleep(0.6)

        runner = threading.Thread(target=run_page)
        runner.start()
        started.wait()
        t = time.monotonic()
        import_tensorflow_quietly(pacer=pacer)
        took = time.monotonic() - t
        runner.join()
        assert "tensorflow" in sys.modules and "keras" in sys.modules
        assert builtins.__import__ is original
        print(pacer.waited_s, took, page["import_s"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=".")
    assert out.returncode == 0, out.stderr[-2000:]
    waited, took, page_import = map(float, out.stdout.split())
    assert 0.5 <= waited < 2.0 and took > waited  # it waited for the rest of the page's run, then imported
    assert page_import < 0.5  # the page's own import was not held up (a wait in an import hook: 0.6 s or more)


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
