"""Streamlit's own behaviour that the studio adjusts, once per server process, each checked.

After every script run of every session, Streamlit calls ``keras.backend.clear_session()``
(``streamlit.runtime.scriptrunner.script_runner._clean_problem_modules``, meant for apps that build a
model per run). Here the models are built once and shared, so that call only costs: Keras's
``clear_session`` replaces its global state *for every thread*, runs a full garbage collection and
empties TensorFlow's kernel cache: server CPU on every run of every session, and a model being loaded
by one session loses its Keras state (the scope that defers its variables) when another session's run
ends. :func:`keep_keras_state` turns that one call off and keeps the rest
(closing matplotlib figures). Where a future Streamlit has no such function, it logs one warning line
and changes nothing: the app then works as before, with that cost.

When a script run starts, Streamlit clears the session's queue of messages not yet sent to the browser,
keeping only its "lifecycle" messages (``ForwardMsgQueue.clear(retain_lifecycle_msgs=True)``, Streamlit
1.67). That also drops a *reply* to a request of the browser's still waiting for the next flush (a few ms,
more on a busy server): ``file_urls_response``, the upload addresses the browser asks for when a photo is
dropped on an uploader (and ``backend_operation_response``, ``heartbeat_ack``). The browser then waits for
it forever: the photo never arrives, the page never changes, nothing says why. A rerun starting in that
window is ordinary: the drawing canvas asks for one as it appears, a user clicks while a file goes up
(``tests/e2e/test_upload_replies.py`` sends both together from a bare websocket client).
:func:`keep_replies` keeps such replies queued and changes nothing else; its probe checks on a small queue
that the internals are what it expects and that it does exactly that (where Streamlit keeps replies itself,
nothing is changed). Where the probe fails: one warning line, and Streamlit's behaviour stays.
``GRADCAM_STUDIO_OFF=replies``, or ``GRADCAM_STUDIO_PUBLIC_ONLY=streamlit_replies`` (or ``1``) as for
:mod:`core.compat`, leaves it off.

:func:`keep_stream` keeps the Live page's stream through a run that Streamlit counted late (see its comment below):
``GRADCAM_STUDIO_OFF=stream_runs`` or ``GRADCAM_STUDIO_PUBLIC_ONLY=webrtc_run_count`` leaves it off.
"""
from __future__ import annotations

import functools
import logging
import sys
import threading

from . import switched_off

log = logging.getLogger("server.runtime")

# the ForwardMsg types that answer a BackMsg (heartbeat_ack: to a host page's heartbeat, which reconnects without it)
REPLIES = ("file_urls_response", "backend_operation_response", "heartbeat_ack")
_REPLIES_NAME = "streamlit_replies"
_KEEPS_REPLIES = "keeps_replies"  # the mark on the wrapped ForwardMsgQueue.clear
_replies: dict[str, str] = {}  # "result": "kept" | "kept by streamlit" | "off" | "unavailable"
_replies_lock = threading.Lock()


def keep_keras_state() -> bool:
    """Stop Streamlit from clearing Keras's global state after each script run (see the module docstring).

    Returns:
        True where the call is now off; False where this is switched off (``GRADCAM_STUDIO_OFF=keras_state``),
        or (one warning line) where this Streamlit has no such call.
    """
    if switched_off("keras_state"):
        return False
    try:
        from streamlit.runtime.scriptrunner import script_runner

        current = script_runner._clean_problem_modules
    except (ImportError, AttributeError) as exc:
        log.warning("Streamlit's post-run Keras clean-up not found (%s); leaving it as it is", exc)
        return False
    if getattr(current, "keeps_keras_state", False):
        return True

    def clean_problem_modules() -> None:
        """What Streamlit does after a run, less ``keras.backend.clear_session()``."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close("all")
            except Exception:  # noqa: BLE001 - as Streamlit: never fail a run for this
                pass

    clean_problem_modules.keeps_keras_state = True
    script_runner._clean_problem_modules = clean_problem_modules
    return True


def release_uploads(*uploads) -> bool:
    """Let go of uploaded files whose content has been taken in (the Train page keeps thumbnails only).

    Streamlit keeps every uploaded file's bytes in its upload manager until the browser deletes the file by
    hand or the session ends — a fresh uploader key does not free them — so every photo added on the Train
    page stayed in memory, in full (``tools/train_upload_memory.py`` measures it). Here the files are removed
    from the manager, as Streamlit's own ``st.chat_input`` does with its files once read, closed, and the freed
    heap handed back to the system.

    Args:
        uploads: what ``st.file_uploader`` / ``st.camera_input`` returned (a file, a list of files, or None),
            and what the widget's state holds (another copy of the same files, read the same way).

    Returns:
        True where the manager let go of them; False where this is switched off (``GRADCAM_STUDIO_OFF=uploads``:
        nothing is touched) or (one warning line) where this Streamlit has no such manager: the bytes then stay
        until the session ends, as Streamlit keeps them.
    """
    from core import compat

    if switched_off("uploads"):
        return False
    files = list({id(f): f for u in uploads for f in (u if isinstance(u, (list, tuple)) else [u])
                  if f is not None}.values())
    released = True
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        for f_id in {f.file_id for f in files}:
            ctx.uploaded_file_mgr.remove_file(ctx.session_id, f_id)
    except (ImportError, AttributeError) as exc:
        log.warning("Streamlit's upload manager not found (%s); uploads stay in memory until the session ends", exc)
        released = False
    for f in files:
        f.close()
    compat.trim_heap()
    return released


def keep_replies() -> bool:
    """Keep the replies to the browser's requests queued when a script run starts (see the module docstring);
    probed and installed once per process.

    Returns:
        True where replies are now kept (``_replies["result"]``: "kept", or "kept by streamlit" where Streamlit
        does it itself); False where this is turned off ("off") or Streamlit's queue is not what the wrapper
        expects ("unavailable", one warning line): an upload may then hang in that window, as upstream.
    """
    if "result" not in _replies:
        with _replies_lock:
            if "result" not in _replies:
                _replies["result"] = _install_keep_replies()
    return _replies["result"].startswith("kept")


def _install_keep_replies() -> str:
    from core import compat

    if compat.forced_by_environment(_REPLIES_NAME) or switched_off("replies"):
        return "off"
    try:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

        original = ForwardMsgQueue.clear
        if getattr(original, _KEEPS_REPLIES, False):
            return "kept"
        if _clear_behaves(ForwardMsgQueue, ForwardMsg, keeps_replies=True):
            return "kept by streamlit"
        if not _clear_behaves(ForwardMsgQueue, ForwardMsg, keeps_replies=False):
            raise RuntimeError("ForwardMsgQueue.clear does not behave as expected")
        ForwardMsgQueue.clear = _keeping_replies(original, frozenset(REPLIES))
        if not _clear_behaves(ForwardMsgQueue, ForwardMsg, keeps_replies=True):
            ForwardMsgQueue.clear = original
            raise RuntimeError("the wrapped ForwardMsgQueue.clear does not keep replies")
        return "kept"
    except Exception as exc:  # noqa: BLE001 - any failure: Streamlit's own behaviour stays
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.warning("Streamlit internal %s unavailable (%s); an upload may hang when a rerun starts as it begins",
                    _REPLIES_NAME, why)
        return "unavailable"


def _keeping_replies(clear, replies: frozenset):
    """``ForwardMsgQueue.clear``, keeping the queued replies through a lifecycle-keeping clear (at the end,
    where the clear leaves nothing indexed)."""
    @functools.wraps(clear)
    def clear_keeping_replies(self, retain_lifecycle_msgs: bool = False, *args, **kwargs):
        waiting = [m for m in self._queue if m.WhichOneof("type") in replies] if retain_lifecycle_msgs else []
        clear(self, retain_lifecycle_msgs, *args, **kwargs)
        if waiting:
            kept = {id(m) for m in self._queue}
            self._queue.extend(m for m in waiting if id(m) not in kept)

    setattr(clear_keeping_replies, _KEEPS_REPLIES, True)
    return clear_keeping_replies


def _clear_behaves(queue_cls, forward_msg, keeps_replies: bool) -> bool:
    """Whether, on a queue holding a delta, a run's end and one reply of each kind, a lifecycle-keeping clear
    leaves the run's end and (``keeps_replies``) the replies, in that order; and a flush then empties it."""
    q = queue_cls()
    delta = forward_msg()
    delta.metadata.delta_path[:] = [0, 0]
    delta.delta.new_element.markdown.body = "x"
    finished = forward_msg()
    finished.script_finished = forward_msg.FINISHED_SUCCESSFULLY
    replies = []
    for kind in REPLIES:
        replies.append(forward_msg())
        if forward_msg.DESCRIPTOR.fields_by_name[kind].message_type is None:
            setattr(replies[-1], kind, True)  # heartbeat_ack is a bool
        else:
            getattr(replies[-1], kind).SetInParent()
    for m in [delta, finished, *replies]:
        q.enqueue(m)
    q.clear(retain_lifecycle_msgs=True)
    want = [finished] + (replies if keeps_replies else [])
    if [id(m) for m in q._queue] != [id(m) for m in want]:
        return False
    q.enqueue(delta)
    return len(q.flush()) == len(want) + 1 and q.is_empty()


# streamlit-webrtc's context of a streamer (st.session_state[key]) resets itself, stopping its worker, when the
# session's count of finished runs has moved by more than one since it was last drawn: its sign of a page left and
# come back to. Streamlit counts a run as its end is shipped to the browser (on the event loop's thread), which can
# come after the next run has started: two runs in a row then read the same count and the third sees it two ahead,
# so a START under load can end without a frame. STREAM_DRAWN (set by the Live page as it draws its streamer, cleared
# by every other page's run and where Live shows no streamer) tells a page left from that.
STREAM_DRAWN = "live_streamer_drawn"
_STREAM_NAME = "webrtc_run_count"
_stream_warned: list[bool] = []


def keep_stream(key: str) -> str:
    """Call right before ``webrtc_streamer(key=key)``: where the session's last run drew it on this page, skip
    streamlit-webrtc's check for a page left (its ``_last_rendered_run_count``, set again as it draws).

    Returns:
        "kept" (the check skipped; an INFO line where it would have reset the stream), "not drawn last" (a first
        draw or a page left: the check stays), "off" (``GRADCAM_STUDIO_OFF=stream_runs`` or
        ``GRADCAM_STUDIO_PUBLIC_ONLY=webrtc_run_count``) or "unavailable" (this streamlit-webrtc keeps no such
        count: one warning line per process, its behaviour stays).
    """
    import streamlit as st

    from core import compat

    context = st.session_state.get(key)
    if context is None or not st.session_state.get(STREAM_DRAWN):
        return "not drawn last"
    if compat.forced_by_environment(_STREAM_NAME) or switched_off("stream_runs"):
        return "off"
    last = getattr(context, "_last_rendered_run_count", "missing")
    if not (last is None or isinstance(last, int)):
        if not _stream_warned:
            _stream_warned.append(True)
            log.warning("streamlit-webrtc internal %s unavailable; a START may end without a frame on a busy server",
                        _STREAM_NAME)
        return "unavailable"
    now = _run_count()
    if last is not None and now is not None and now > last + 1:
        # with the live workers' lines in the server's log (ui.live.log_workers)
        logging.getLogger("core.live.stream").info(
            "live stream %s kept: the run count moved by %d since it was drawn on this page", key, now - last)
    context._last_rendered_run_count = None
    return "kept"


def _run_count() -> int | None:
    try:
        from streamlit_webrtc.session_info import get_script_run_count, get_this_session_info

        info = get_this_session_info()
        return get_script_run_count(info) if info else None
    except Exception:  # noqa: BLE001 - only for the log line
        return None


def stream_drawn() -> None:
    """A run that drew the Live page's streamer: the mark :func:`keep_stream` reads at the next draw."""
    import streamlit as st

    st.session_state[STREAM_DRAWN] = True


def forget_stream() -> None:
    """A run that shows no streamer (another page, or Live without one): the next draw is a fresh one."""
    import streamlit as st

    st.session_state.pop(STREAM_DRAWN, None)
