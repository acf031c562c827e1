"""A participant's side of a workshop room on the Lesson page: the room from the link (``?room=CODE``), joining it
with a nickname, and who this session is in it.

A participant sees only their own nickname (as plain text, never as Markdown or HTML) and their own progress;
an unknown or closed room is one sentence.

After joining, the participant's token goes into the page's address (``?room=CODE&p=TOKEN``): a reload, a new
browser session or a restarted server finds the participant again from it, and their progress is rebuilt from
the store (their own attempts and quiz sittings). The token is that participant's secret: it is on this page's
address only, never shown in the page's text, and the instructor's links never carry it.
"""
from __future__ import annotations

import streamlit as st

from core.store import RoomClosed, clean_nickname

from . import lesson_state as ls

MEMBERS = "lesson_members"  # session key: room code → {"code", "participant", "nickname"}
TOKEN = "p"  # the query parameter with the participant's token
UNKNOWN = "There is no open room with this code: check the link your instructor gave you."
CLOSED = "This room is closed."


def room_code() -> str | None:
    """The room the link names (``?room=CODE``), or None for solo mode."""
    code = st.query_params.get("room")
    return str(code).strip() or None if code else None


def open_room(code: str) -> dict | None:
    """The room, or None with one sentence when it is unknown or closed."""
    store = ls.store_or_say()
    if store is None:
        return None
    room = store.room(code)
    if room is None:
        st.error(UNKNOWN)
        return None
    if room["closed"]:
        st.error(CLOSED)
        return None
    return room


def _join(code: str) -> None:
    """Join's callback: the nickname cleaned (its message kept for the next run), the participant's token kept."""
    text = st.session_state.get(f"room_nick_{code}", "")
    try:
        nickname, message = clean_nickname(text)
    except ValueError as exc:  # nothing visible left: one sentence
        st.session_state["room_join_error"] = str(exc)
        return
    st.session_state["room_nick_message"] = message
    try:
        participant = ls.shared_store().join(code, nickname)
    except RoomClosed:
        st.session_state["room_join_error"] = CLOSED
        return
    except ValueError as exc:  # the store's one sentence (a nickname already taken, …)
        st.session_state["room_join_error"] = str(exc)
        return
    st.session_state.setdefault(MEMBERS, {})[code] = {"code": code, "participant": participant,
                                                      "nickname": nickname}
    st.query_params[TOKEN] = participant


def _come_back(code: str, lesson) -> dict | None:
    """The membership the address's token names in this room, with the participant's progress rebuilt from the
    store (None, and the token dropped from the address, where it names nobody here)."""
    token = st.query_params.get(TOKEN)
    if not token:
        return None
    store = ls.shared_store()
    nickname = store.nickname(code, str(token))
    if nickname is None:
        del st.query_params[TOKEN]
        st.caption("The link's participant part is not of this room: join with a nickname.")
        return None
    token = str(token)
    joined = {"code": code, "participant": token, "nickname": nickname}
    st.session_state.setdefault(MEMBERS, {})[code] = joined
    runs = st.session_state.setdefault(ls.RUNS, {})
    runs[ls.run_key(lesson.id, code)] = ls.from_store(lesson, code, store.own_progress(code, token),
                                                      store.own_quiz(code, token))
    return joined


def member(code: str, lesson) -> dict | None:
    """This session's membership of the room (found again from the address's token after a reload or a restart):
    the nickname form until it has joined."""
    joined = st.session_state.get(MEMBERS, {}).get(code)
    if joined is None:
        joined = _come_back(code, lesson)
    elif st.query_params.get(TOKEN) != joined["participant"]:
        st.query_params[TOKEN] = joined["participant"]  # the address keeps the token (a reload finds it)
    message = st.session_state.pop("room_nick_message", None)
    if joined is not None:
        st.text(f"You are in room {code} as {joined['nickname']}.")
        if message:
            st.caption(message)
        return joined
    st.markdown("Join the workshop with a nickname: no account, and nothing else about you is kept. "
                "Your instructor sees your nickname and your answers; other participants see neither.")
    st.text_input("Nickname", key=f"room_nick_{code}")
    st.button("Join", key=f"room_join_{code}", type="primary", on_click=_join, args=(code,))
    error = st.session_state.pop("room_join_error", None)
    if error:
        st.error(error)
    return None
