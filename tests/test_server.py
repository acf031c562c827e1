"""The server package (server/): every adjustment in its one table has a switch that works, the table says
the same in the package docstring and in docs/server.md, and what the switches leave out is left out."""
import asyncio
import builtins
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import server
from server.pacing import Pacer

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> dict:
    """The adjustments table (Markdown: adjustment | fixes or saves | measured with | switch | test): its rows by
    their first cell, each a list of cells."""
    rows = {}
    for line in text.splitlines():
        line = line.strip()
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and not set(cells[0]) <= {"-"} and cells[0] != "adjustment (where)":
            rows[cells[0]] = cells
    return rows


@pytest.fixture
def no_switch(monkeypatch):
    monkeypatch.delenv(server.OFF_VARIABLE, raising=False)


def test_the_switch_rule(monkeypatch):
    everything = set(server.ADJUSTMENTS)
    for value, off in [("", set()), ("0", set()), ("assets", {"assets"}),
                       (" pacing , early_start ", {"pacing", "early_start"}), ("1", everything), ("all", everything)]:
        monkeypatch.setenv(server.OFF_VARIABLE, value)
        assert {n for n in server.ADJUSTMENTS if server.switched_off(n)} == off, value
        from core.engine import warmup  # the library's copy of the rule, for the start-up ones

        assert {n for n in server.ADJUSTMENTS if warmup.switched_off(n)} == off, value


def test_the_table_is_the_same_in_the_docstring_and_the_docs_and_covers_every_switch():
    ours, docs = table_rows(server.__doc__), table_rows((ROOT / "docs" / "server.md").read_text())
    assert ours == docs and len(ours) >= len(server.ADJUSTMENTS)
    switches = [name for cells in ours.values() for name in re.findall(r"GRADCAM_STUDIO_OFF=(\w+)", cells[3])]
    assert sorted(switches) == sorted(server.ADJUSTMENTS)  # each switch in one row, each row's switch real
    for adjustment, cells in ours.items():
        tests = re.findall(r"tests/[\w/]+\.py", cells[4])
        assert tests and all((ROOT / t).is_file() for t in tests), adjustment  # a test for each, and it exists
        assert "→" in cells[1] and cells[2], adjustment  # a figure switched off → on, and how it was measured


def test_the_middlewares_are_left_out_when_switched_off(monkeypatch, no_switch):
    names = lambda: [m.cls.__name__ for m in server.middleware()]  # noqa: E731
    assert names() == ["ServerActivity", "FrontendAssets"]  # the activity outermost: it sees every request
    monkeypatch.setenv(server.OFF_VARIABLE, "assets")
    assert names() == ["ServerActivity"]
    monkeypatch.setenv(server.OFF_VARIABLE, "pacing")
    assert names() == ["FrontendAssets"]


@pytest.mark.parametrize("off,starts", [("", True), ("early_start", False)])
def test_the_lifespan_starts_the_start_up_work_unless_switched_off(monkeypatch, off, starts):
    import threading

    started = threading.Event()
    monkeypatch.setattr(server, "_start_warm_up", started.set)
    monkeypatch.setenv(server.OFF_VARIABLE, off)

    async def serve():
        async with server.lifespan(None):
            pass

    asyncio.run(serve())
    assert started.wait(5 if starts else 0.2) is starts


def test_a_pacer_switched_off_never_waits_and_leaves_import_alone():
    pacer = Pacer(quiet_s=10.0, turn_s=10.0, on=False)
    original = builtins.__import__
    with pacer.busy():
        pacer.touch()
        assert not pacer.quiet() and pacer.wait_turn() == 0.0
        with pacer.paced_imports():
            assert builtins.__import__ is original


def test_the_start_up_switches_leave_the_collector_and_the_finders_alone(monkeypatch):
    import gc

    from core.engine.warmup import _collector_paused, _without_unused_modules

    monkeypatch.setenv(server.OFF_VARIABLE, "gc_pause,lean_keras")
    finders = list(sys.meta_path)
    with _collector_paused(freeze=True), _without_unused_modules({"a_module_nobody_imports"}):
        assert gc.isenabled() and sys.meta_path == finders
    assert gc.get_freeze_count() == 0


def import_stderr(off: str) -> str:
    code = "from core.engine.warmup import import_tensorflow_quietly\nimport_tensorflow_quietly()\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**__import__("os").environ, server.OFF_VARIABLE: off})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    return out.stderr


def test_tensorflows_native_start_up_lines_stay_off_stderr():
    """A fresh process: importing TensorFlow prints nothing (core sets TF_CPP_MIN_LOG_LEVEL=2, which does not
    stop absl's and oneDNN's lines); switched off, those lines appear (so this check can fail)."""
    assert import_stderr("").strip() == ""
    loud = import_stderr("quiet_stderr")
    assert "oneDNN" in loud or "absl" in loud


def test_the_served_configuration_keeps_its_settings():
    """What .streamlit/config.toml sets for a served app (docs/server.md): no file watcher, no collection after
    every run; the browser's message cache at Streamlit's own age (2 runs: a longer one fixed nothing measurable,
    ``python -m bench.price cachemiss``)."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
    assert config["runner"]["postScriptGC"] is False
    assert "maxCachedMessageAge" not in config.get("global", {})
