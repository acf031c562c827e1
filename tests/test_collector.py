"""The server's cycle collector after start-up (core.engine.pool.settle_collector): each finished script run
leaves a garbage cycle holding what it made; with the start-up's hundreds of thousands of objects frozen, Python's
own full collections come often enough to free them, and a model sent away from the pool is still freed."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import gc, json, sys, weakref
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    settle = sys.argv[2] == "settle"
    import keras, tensorflow  # what a server holds: about 400,000 objects
    from core.engine import pool

    if settle:
        pool.settle_collector()
        pool.settle_collector()  # twice: still one callback

    class Run:  # a finished script run: an object in a cycle, holding its picture
        def __init__(self):
            self.me = self
            self.picture = np.ones(2 ** 18)  # 2 MB

    alive, survivors, running = [], [], []
    for i in range(150):
        running.append(Run())  # a run lives a while (collections promote it to the oldest generation) ...
        alive.append(weakref.ref(running[-1]))
        if len(running) > 3:
            running.pop(0)  # ... then ends, a garbage cycle
        junk = [[j] for j in range(3000)]  # what the run makes and drops
        del junk
        survivors.append([[j] for j in range(300)])  # what sessions keep meanwhile
    running.clear()
    left = sum(r() is not None for r in alive)

    out = {"runs_left": left, "callbacks": gc.callbacks.count(pool._trim_after_full_collection)}
    if settle:
        model = Run()  # a model's objects, frozen, then sent away from the pool
        gone = weakref.ref(model)
        pool.settle_collector()
        del model
        gc.collect()
        out["frozen_model_after_collect"] = gone() is not None
        pool.release_memory()
        out["frozen_model_after_release"] = gone() is not None
        out["frozen_after_release"] = gc.get_freeze_count()
    print(json.dumps(out))
""")


def _child(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), mode], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_frozen_start_up_lets_python_collect_finished_runs_and_release_memory_frees_a_frozen_model():
    settled, plain = _child("settle"), _child("plain")
    # 150 finished runs of 2 MB each: with the start-up frozen, Python's own collections free nearly all of them;
    # without, most wait for a full collection that the start-up's objects put off
    assert settled["runs_left"] <= 30, settled
    assert plain["runs_left"] >= 60 and plain["runs_left"] > 2 * settled["runs_left"], (plain, settled)
    assert settled["callbacks"] == 1 and plain["callbacks"] == 0
    # a frozen cycle is never collected by gc.collect alone; release_memory unfreezes and collects it (and does not
    # freeze again: that would keep the runs in progress for good)
    assert settled["frozen_model_after_collect"] is True
    assert settled["frozen_model_after_release"] is False and settled["frozen_after_release"] == 0


WATCH = textwrap.dedent("""
    import gc, json, sys, time
    sys.path.insert(0, sys.argv[1])
    from core.engine import pool

    busy = [True]
    out = {}

    def quiet_then_frozen():  # no page runs from now: the watcher freezes within 10 s
        busy[0] = False
        deadline = time.time() + 10
        while gc.get_freeze_count() == 0 and time.time() < deadline:
            time.sleep(0.05)
        return gc.get_freeze_count()

    pool.settle_when_quiet(lambda: not busy[0], every_s=0.05)
    time.sleep(0.5)
    out["frozen_while_busy"] = gc.get_freeze_count()
    out["frozen_when_quiet"] = quiet_then_frozen()
    busy[0] = True
    pool.release_memory()  # a model sent away: unfrozen, not frozen again inside the run
    time.sleep(0.5)
    out["frozen_after_release_while_busy"] = gc.get_freeze_count()
    out["frozen_again_when_quiet"] = quiet_then_frozen()
    print(json.dumps(out))
""")


def test_the_server_settles_only_when_no_page_runs_and_again_after_a_model_is_sent_away():
    out = subprocess.run([sys.executable, "-c", WATCH, str(ROOT)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["frozen_while_busy"] == 0 and figures["frozen_after_release_while_busy"] == 0, figures
    assert figures["frozen_when_quiet"] > 1000 and figures["frozen_again_when_quiet"] > 1000, figures


TIDY = textwrap.dedent("""
    import gc, json, sys, time, weakref
    sys.path.insert(0, sys.argv[1])
    from core.engine import pool

    pool.TIDY_EVERY_S = 0.2
    busy = [True]
    pool.settle_when_quiet(lambda: not busy[0], every_s=0.05)
    busy[0] = False
    while gc.get_freeze_count() == 0:
        time.sleep(0.05)

    class Session:  # what a session that ended leaves: a cycle, and nothing allocates afterwards
        pass

    s = Session()
    s.me = s
    gone = weakref.ref(s)
    del s
    busy[0] = True
    time.sleep(1.0)
    left_while_busy = gone() is not None
    busy[0] = False
    time.sleep(1.0)
    print(json.dumps({"left_while_busy": left_while_busy, "left_when_quiet": gone() is not None}))
""")


def test_what_an_ended_session_left_goes_back_when_no_page_runs():
    out = subprocess.run([sys.executable, "-c", TIDY, str(ROOT)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"left_while_busy": True, "left_when_quiet": False}
