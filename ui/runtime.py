"""Streamlit's own behaviour that the studio adjusts, once per server process, each checked.

After every script run of every session, Streamlit calls ``keras.backend.clear_session()``
(``streamlit.runtime.scriptrunner.script_runner._clean_problem_modules``, meant for apps that build a
model per run). Here the models are built once and shared, so that call only costs: Keras's
``clear_session`` replaces its global state *for every thread*, runs a full garbage collection and
empties TensorFlow's kernel cache. That was about 0.15 s of server CPU per run of every session, and
a model being loaded by one session lost its Keras state (the scope that defers its variables) when
another session's run ended. :func:`keep_keras_state` turns that one call off and keeps the rest
(closing matplotlib figures). Where a future Streamlit has no such function, it logs one warning line
and changes nothing: the app then works as before, with that cost.
"""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("ui.runtime")


def keep_keras_state() -> bool:
    """Stop Streamlit from clearing Keras's global state after each script run (see the module docstring).

    Returns:
        True where the call is now off; False (one warning line) where this Streamlit has no such call.
    """
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
    hand or the session ends — a fresh uploader key does not free them — so 500 photos of 12 MP stayed in
    memory: measured with ``tools/train_upload_memory.py``, the server grew by about one batch per batch
    (2.9 GB at the end). Here the files are removed from the manager, as Streamlit's own ``st.chat_input``
    does with its files once read, closed, and the freed heap handed back to the system.

    Args:
        uploads: what ``st.file_uploader`` / ``st.camera_input`` returned (a file, a list of files, or None),
            and what the widget's state holds (another copy of the same files, read the same way).

    Returns:
        True where the manager let go of them; False (one warning line) where this Streamlit has no such
        manager: the bytes then stay until the session ends, as before.
    """
    from core import compat

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
