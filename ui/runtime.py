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
