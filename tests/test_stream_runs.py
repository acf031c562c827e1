"""server/runtime.keep_stream: streamlit-webrtc's own context code, driven through the run counts a busy server
gives it, resets a connecting stream when two runs read the same count (Streamlit counts a run as its end is
shipped, after the next run may have started); with keep_stream before each draw on the Live page it does not,
while a page left and come back to still resets it; and where switched off or without the internal, upstream's
behaviour stays. The pages' side: runs without the streamer clear the mark (AppTest)."""
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit_webrtc import component

from server import runtime

KEY = "live"
ROOT = Path(__file__).resolve().parent.parent


class Worker:
    def __init__(self):
        self.stopped = False

    def stop(self):
        self.stopped = True


@pytest.fixture
def session(monkeypatch):
    """A bare session state and a run count the test sets (streamlit-webrtc reads it through these two calls)."""
    runs = SimpleNamespace(count=0)
    monkeypatch.setattr(component, "get_this_session_info", lambda: runs)
    monkeypatch.setattr(component, "get_script_run_count", lambda info: info.count)
    monkeypatch.setattr(runtime, "_run_count", lambda: runs.count)
    monkeypatch.delenv("GRADCAM_STUDIO_OFF", raising=False)
    monkeypatch.delenv("GRADCAM_STUDIO_PUBLIC_ONLY", raising=False)
    for k in list(st.session_state):
        del st.session_state[k]
    yield runs
    for k in list(st.session_state):
        del st.session_state[k]


def draw(runs, count: int, keep: bool):
    """One run of the Live page as far as its streamer: keep_stream (where ``keep``), streamlit-webrtc's context
    as ``webrtc_streamer`` gets it, and the page's mark."""
    runs.count = count
    got = runtime.keep_stream(KEY) if keep else None
    context = component._get_or_create_context(KEY)
    st.session_state[runtime.STREAM_DRAWN] = True
    return context, got


def connecting(runs, keep: bool):
    """START on a busy server, as logged on one (server/runtime.py): the offer's run at count 83 makes the worker;
    the next two runs read 84 because the first one's end was shipped after the second had started; the run after
    them reads 86. Returns the worker, the context and what keep_stream said on that last run."""
    context, _ = draw(runs, 83, keep)
    worker = Worker()
    context._set_worker(worker)
    draw(runs, 84, keep)
    draw(runs, 84, keep)
    context, got = draw(runs, 86, keep)
    return worker, context, got


def test_upstream_resets_a_connecting_stream_when_two_runs_read_the_same_count(session):
    worker, context, _ = connecting(session, keep=False)
    assert worker.stopped and context._get_worker() is None  # the START ends without a frame


def test_keep_stream_keeps_it_and_says_so(session, caplog, monkeypatch):
    said = logging.getLogger("core.live.stream")
    monkeypatch.setattr(said, "handlers", [caplog.handler])  # the live workers' logger may not propagate
    monkeypatch.setattr(said, "level", logging.INFO)
    monkeypatch.setattr(said, "propagate", False)
    worker, context, got = connecting(session, keep=True)
    assert got == "kept" and not worker.stopped and context._get_worker() is worker
    assert context._last_rendered_run_count == 86  # streamlit-webrtc set it again as it drew
    assert [r.getMessage() for r in caplog.records if r.name == "core.live.stream"] == [
        "live stream live kept: the run count moved by 2 since it was drawn on this page"]


def test_a_page_left_and_come_back_to_still_resets_it(session):
    context, _ = draw(session, 10, keep=True)
    worker = Worker()
    context._set_worker(worker)
    runtime.forget_stream()  # another page's run
    context, got = draw(session, 12, keep=True)
    assert got == "not drawn last" and worker.stopped


@pytest.mark.parametrize("variable,value", [("GRADCAM_STUDIO_OFF", "stream_runs"),
                                            ("GRADCAM_STUDIO_PUBLIC_ONLY", "webrtc_run_count")])
def test_switched_off_upstream_behaviour_stays(session, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    worker, _, got = connecting(session, keep=True)
    assert got == "off" and worker.stopped


def test_without_the_internal_one_warning_and_nothing_touched(session, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_stream_warned", [])
    st.session_state[KEY] = SimpleNamespace()  # a future streamlit-webrtc's context without the count
    st.session_state[runtime.STREAM_DRAWN] = True
    with caplog.at_level(logging.WARNING, logger="server.runtime"):
        assert runtime.keep_stream(KEY) == "unavailable" and runtime.keep_stream(KEY) == "unavailable"
    said = [r.getMessage() for r in caplog.records if r.name == "server.runtime"]
    assert len(said) == 1 and "webrtc_run_count" in said[0]
    assert vars(st.session_state[KEY]) == {}


def test_runs_without_the_streamer_clear_the_mark():
    """Another page, and Live showing snapshots instead of the stream (the Live page's own draw sets the mark in
    a real server only: streamlit-webrtc needs one; tests/e2e/test_live_reliability.py starts it 23 times)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.session_state[runtime.STREAM_DRAWN] = True
    at.run()
    assert not at.exception and runtime.STREAM_DRAWN not in at.session_state
    at.session_state[runtime.STREAM_DRAWN] = True
    at.session_state["live_snapshots"] = True
    at.switch_page("app_pages/live.py").run()
    assert not at.exception and runtime.STREAM_DRAWN not in at.session_state
    assert at.toggle(key="live_snapshots").value
