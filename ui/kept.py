"""A page's own widgets whose values outlive a visit to another page.

Streamlit forgets a widget's value once a script run does not draw it (another page's run), unless the run hands it
back. A page names such a widget's key with :func:`keep` (its default set there, the widget then drawn without
one, so Streamlit never warns of a value given twice), and ``streamlit_app.py`` calls :func:`hand_back` at the
start of every run, whichever page it draws. The sidebar's shared widgets are handed back in
``ui.sidebar.init_state``; buttons, uploaders and canvases are never kept (Streamlit refuses to set them).
"""
from __future__ import annotations

import streamlit as st

KEPT = "kept_widgets"  # the session's set of kept keys


def keep(key: str, default, *, low=None, high=None, choices=None) -> str:
    """``key``, its value set to ``default`` where the session has none or one the widget cannot take now
    (outside ``choices``; outside ``low``..``high``, brought inside), and kept from now on."""
    state = st.session_state
    value = state.get(key, default)
    if choices is not None:
        allowed = list(choices)
        if (any(v not in allowed for v in value) if isinstance(value, list) else value not in allowed):
            value = default
    if low is not None and high is not None and isinstance(value, (int, float)):
        value = type(value)(min(max(value, low), high))
    if key not in state or state[key] != value:
        state[key] = value
    state.setdefault(KEPT, set()).add(key)
    return key


def hand_back() -> None:
    """Hand every kept widget's value back to Streamlit for this run (call before the page draws)."""
    state = st.session_state
    for key in state.get(KEPT, ()):
        if key in state:
            state[key] = state[key]
