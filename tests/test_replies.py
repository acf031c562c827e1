"""server/runtime.keep_replies: the replies to the browser's requests stay queued when a script run starts, nothing
else changes, and a probe that fails leaves Streamlit as it is with one warning line."""
import logging

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

from server import runtime

ORIGINAL = getattr(ForwardMsgQueue.clear, "__wrapped__", ForwardMsgQueue.clear)  # Streamlit's, unwrapped


class StreamlitsQueue(ForwardMsgQueue):
    clear = ORIGINAL


# Streamlit 1.67 drops replies; a release that keeps them itself gets no wrapper (and these tests say so)
STREAMLIT_KEEPS_REPLIES = runtime._clear_behaves(StreamlitsQueue, ForwardMsg, keeps_replies=True)


@pytest.fixture
def fresh(monkeypatch):
    """keep_replies() as in a new process; Streamlit's queue as it was afterwards."""
    monkeypatch.setattr(ForwardMsgQueue, "clear", ORIGINAL)
    monkeypatch.setattr(runtime, "_replies", {})
    monkeypatch.delenv("GRADCAM_STUDIO_PUBLIC_ONLY", raising=False)
    monkeypatch.delenv("GRADCAM_STUDIO_OFF", raising=False)
    yield


def queue_after_a_run_starts():
    """A queue holding what a session has not yet sent when its next run starts (an element of the old run,
    the old run's end, the reply to an upload-address request), after the clear that start makes."""
    q = ForwardMsgQueue()
    old = ForwardMsg()
    old.metadata.delta_path[:] = [0, 1]
    old.delta.new_element.markdown.body = "old run"
    end = ForwardMsg()
    end.script_finished = ForwardMsg.FINISHED_SUCCESSFULLY
    reply = ForwardMsg()
    reply.file_urls_response.response_id = "photo-1"
    reply.file_urls_response.file_urls.add(file_id="f1", upload_url="/_stcore/upload_file/s/f1")
    for m in (old, end, reply):
        q.enqueue(m)
    q.clear(retain_lifecycle_msgs=True)
    return q, old, end, reply


def test_a_reply_survives_the_clear_and_nothing_else_changes(fresh):
    q, *_ = queue_after_a_run_starts()
    if not STREAMLIT_KEEPS_REPLIES:
        assert [m.WhichOneof("type") for m in q._queue] == ["script_finished"]  # Streamlit's bug: the reply is gone
    assert runtime.keep_replies() is True
    assert runtime._replies["result"] == ("kept by streamlit" if STREAMLIT_KEEPS_REPLIES else "kept")
    q, old, end, reply = queue_after_a_run_starts()
    assert q._queue == [end, reply]  # the old element goes, the run's end and the reply stay
    new = ForwardMsg()
    new.metadata.delta_path[:] = [0, 0]
    new.delta.new_element.markdown.body = "new run"
    q.enqueue(new)
    assert q.flush() == [end, reply, new] and q.is_empty()
    # a plain clear (what a flush does) still empties everything
    q.enqueue(reply)
    q.clear()
    assert q.is_empty()


def test_a_fragment_run_keeps_a_reply_once(fresh):
    """A fragment's run keeps what is not its own (the reply included) itself: it is not added twice."""
    assert runtime.keep_replies() is True
    q = ForwardMsgQueue()
    reply = ForwardMsg()
    reply.file_urls_response.response_id = "photo-1"
    q.enqueue(reply)
    q.clear(retain_lifecycle_msgs=True, fragment_ids_this_run=["fragment-1"])
    assert q.flush() == [reply]


def test_installed_once(fresh):
    assert runtime.keep_replies() is True
    wrapped = ForwardMsgQueue.clear
    assert (wrapped is ORIGINAL) == STREAMLIT_KEEPS_REPLIES and runtime.keep_replies() is True
    runtime._replies.clear()  # even asked again from scratch: the queue is not wrapped twice
    assert runtime.keep_replies() is True and ForwardMsgQueue.clear is wrapped


@pytest.mark.parametrize("value", ["tf_preload,streamlit_replies", "1"])
def test_turned_off_by_the_environment(fresh, monkeypatch, value):
    monkeypatch.setenv("GRADCAM_STUDIO_PUBLIC_ONLY", value)
    assert runtime.keep_replies() is False and runtime._replies["result"] == "off"
    assert ForwardMsgQueue.clear is ORIGINAL


def test_turned_off_by_the_server_switch(fresh, monkeypatch):
    monkeypatch.setenv("GRADCAM_STUDIO_OFF", "assets,replies")
    assert runtime.keep_replies() is False and runtime._replies["result"] == "off"
    assert ForwardMsgQueue.clear is ORIGINAL


def test_not_installed_where_streamlit_keeps_replies_itself(fresh, monkeypatch):
    def keeps(self, retain_lifecycle_msgs=False, fragment_ids_this_run=None):
        kept = [m for m in self._queue if m.WhichOneof("type") in ("script_finished",) + runtime.REPLIES]
        ORIGINAL(self, retain_lifecycle_msgs, fragment_ids_this_run)
        if retain_lifecycle_msgs:
            self._queue = kept

    monkeypatch.setattr(ForwardMsgQueue, "clear", keeps)
    assert runtime.keep_replies() is True and runtime._replies["result"] == "kept by streamlit"
    assert ForwardMsgQueue.clear is keeps


def test_a_failed_probe_leaves_streamlit_as_it_is_with_one_warning(fresh, monkeypatch, caplog):
    def changed(self, retain_lifecycle_msgs=False, fragment_ids_this_run=None):  # a future clear keeping deltas
        pass

    monkeypatch.setattr(ForwardMsgQueue, "clear", changed)
    with caplog.at_level(logging.WARNING, logger="server.runtime"):
        assert runtime.keep_replies() is False and runtime._replies["result"] == "unavailable"
        assert runtime.keep_replies() is False
    assert ForwardMsgQueue.clear is changed
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "streamlit_replies" in lines[0]
