"""The Class page's parts: creating a room (its two links, the key shown once) and the instructor's live view of
it (participants × exercises, each exercise's answers and where the class looked, the quiz's gain, the CSV export,
closing the room).

Everything here reads the store with the room's key (:class:`core.store.Store`'s instructor calls); the page checks
the key first and shows one sentence for a wrong one. Nicknames reach the screen only inside tables and charts
(drawn as text), never through Markdown.

The live view runs again every :data:`REFRESH_S` seconds, so each tick does only what changed: the store's reads
and the small tables built from them (:func:`live_data`, :func:`exercise_data`); the room's CSV is made only when
the button is clicked (a deferred download); the pictures are kept in the session (:data:`PICTURES`) as data URLs,
the model's map per room, exercise and photo, the class's heat map until the class's boxes change.

The key of a room just created is shown once: until "I have kept the link" is clicked or the instructor leaves
the page (Streamlit forgets the page's widgets then, :func:`create` notices).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import streamlit as st

from core import lessons, models
from core.imaging import render
from core.store import csv_text

from . import lesson_state as ls
from .lesson_flow import engine_for, readable
from .pictures import data_url

CREATED = "class_created"  # session key: the room just created, with its key, until dismissed or the page is left
PICTURES = "class_pictures"  # session key: (what, room, exercise id) → (fingerprint, data URL [+ class name])
REFRESH_S = 3
WRONG_KEY = "This link does not open a room's instructor view."


# ---------------------------------------------------------------------------------------------- a new room

def create_room() -> None:
    """Create's callback: a room for the chosen lesson, kept (with its key) in this session only."""
    from core.store import StoreError

    lesson_id = st.session_state.get("class_lesson")
    try:
        room = ls.shared_store().create_room(lesson_id)
    except StoreError as exc:
        st.session_state["class_error"] = str(exc)
        return
    st.session_state[CREATED] = {"code": room.code, "key": room.key, "lesson": lesson_id}


def forget_created() -> None:
    st.session_state.pop(CREATED, None)


def links(code: str, key: str) -> tuple[str, str]:
    """The participants' link and the instructor's, absolute where the browser told the server its address."""
    url = st.context.url or ""
    base = url[: -len("/class")] if url.endswith("/class") else url.rstrip("/")
    prefix = f"{base}/" if base else ""
    return f"{prefix}lesson?room={code}", f"{prefix}class?room={code}&key={key}"


def create(found: dict, problems: list[str]) -> None:
    """The room creator, and the links of the room just created."""
    if CREATED in st.session_state and "class_lesson" not in st.session_state:
        forget_created()  # the page was left (its widgets forgotten): the key is not shown again
    st.header("Create a room")
    if not readable(found, problems):
        return
    st.selectbox("Lesson", list(found), key="class_lesson", format_func=ls.lesson_title(found))
    st.button("Create a room", key="class_create", type="primary", on_click=create_room)
    error = st.session_state.pop("class_error", None)
    if error:
        st.error(error)
    made = st.session_state.get(CREATED)
    if made is None:
        return
    people, mine = links(made["code"], made["key"])
    st.success(f"Room {made['code']} is open for “{ls.lesson_title(found)(made['lesson'])}”.")
    st.markdown("**Participants' link** — give this one to the class:")
    st.code(people, language=None)
    st.markdown("**Your instructor link** — keep it to yourself:")
    st.code(mine, language=None)
    st.warning("The key in the instructor link is shown only now and cannot be shown again (only its hash is "
               "stored): copy the link before you leave this page. Anyone with it sees the class's nicknames and "
               "answers.")
    c1, c2 = st.columns(2)
    c1.link_button("Open the instructor view", mine)
    c2.button("I have kept the link", key="class_forget", on_click=forget_created)


@ls.says_store_problems
def lost_page(store, code: str, key: str) -> None:
    """A participant who lost their page (a closed tab, another device): their own link again, chosen by nickname.
    It carries their token, so it answers as them: the page says to give it to that participant only."""
    nicknames = [row["nickname"] for row in store.table(code, key)]
    if not nicknames:
        st.caption("Nobody has joined yet.")
        return
    who = st.selectbox("Participant", nicknames, index=None, key="class_lost_who", placeholder="Choose a nickname")
    token = None if who is None else store.participant_token(code, key, who)
    if token is None:
        return
    people, _ = links(code, key)
    st.text(f"{who}'s own link: it brings back their page and progress, and answers as them, so give it to "
            "them only.")
    st.code(f"{people}&p={token}", language=None)


# ---------------------------------------------------------------------------------------------- the live view

def cell(entry: dict | None) -> str:
    """One participant's latest attempt at one exercise: ✓ right, ✗ wrong, · no wrong answer; the score and the
    seconds taken (empty: not tried)."""
    if not entry or not entry.get("attempts"):
        return ""
    mark = {True: "✓", False: "✗"}.get(entry.get("correct"), "·")
    score = entry.get("score")
    parts = [mark] + ([f"{score:.2f}"] if score is not None else []) + [f"{float(entry.get('seconds') or 0):.0f} s"]
    tries = entry.get("attempts") or 1
    return " ".join(parts) + (f" ({tries} tries)" if tries > 1 else "")


def table_frame(rows: list[dict], lesson: lessons.Lesson) -> pd.DataFrame:
    """Participants × exercises as the table shows it."""
    cols = {e.id: f"{i + 1}. {e.title}" for i, e in enumerate(lesson.exercises)}
    out = []
    for row in rows:
        line = {"nickname": str(row.get("nickname", ""))}
        line["done"] = sum(  # done: an attempt that was not wrong (right, or a kind with no wrong answer)
            1 for e in lesson.exercises if (row.get(e.id) or {}).get("done"))
        line.update({title: cell(row.get(eid)) for eid, title in cols.items()})
        out.append(line)
    return pd.DataFrame(out, columns=["nickname", "done", *cols.values()])


def live_data(store, code: str, key: str, lesson: lessons.Lesson) -> tuple[pd.DataFrame, dict]:
    """What one tick of the live view reads and builds: the participants × exercises table and the quiz."""
    return table_frame(store.table(code, key), lesson), store.quiz(code, key)


class room_csv:
    """The room's CSV, made when the download is clicked (Streamlit calls it then, on a thread of its own):
    formula-like cells (a nickname "=HYPERLINK(...)") are written as text (core/store/export.py)."""

    def __init__(self, store, code: str, key: str):
        self.store, self.code, self.key = store, code, key

    def __call__(self) -> str:
        return csv_text(self.store.export_rows(self.code, self.key))


@ls.says_store_problems
def live(store, code: str, key: str, lesson: lessons.Lesson) -> None:
    """The table, the quiz and the export (a fragment: it runs again every few seconds on its own)."""
    frame, q = live_data(store, code, key, lesson)
    st.caption(f"{len(frame)} participant(s) · refreshed every {REFRESH_S} s")
    st.dataframe(frame, hide_index=True, key="class_table")
    c1, c2, c3 = st.columns(3)
    c1.metric("Quiz before (mean)", "—" if q.get("before_mean") is None else f"{q['before_mean']:.0%}",
              help=f"{q.get('n_before', 0)} participant(s)")
    c2.metric("Quiz after (mean)", "—" if q.get("after_mean") is None else f"{q['after_mean']:.0%}",
              help=f"{q.get('n_after', 0)} participant(s)")
    c3.metric("Paired gain", "—" if q.get("paired_gain") is None else f"{q['paired_gain']:+.0%}",
              help=f"after − before, over the {q.get('pairs', 0)} participant(s) who sat both")
    st.download_button("Export the room (CSV)", room_csv(store, code, key), file_name=f"room-{code}.csv",
                       mime="text/csv", key="class_export")


def distribution(exercise: lessons.Exercise, answers: list[dict], layers=()) -> pd.DataFrame:
    """The class's answers to one exercise as counts: per option, per layer, or per bin of score or value."""
    kind = exercise.kind
    if kind == "choice":
        options = list(exercise.params.get("options", []))
        counts = [sum(1 for a in answers if a["answer"].get("choice") == i) for i in range(len(options))]
        return pd.DataFrame({"answer": [f"{i + 1}. {o}"[:60] for i, o in enumerate(options)], "people": counts})
    if kind == "earliest_layer":
        chosen = [a["answer"].get("layer") for a in answers]
        names = [n for n in layers if n in chosen] or sorted({c for c in chosen if c})
        return pd.DataFrame({"answer": names, "people": [chosen.count(n) for n in names]})
    if kind == "value":
        values = np.array([a["answer"].get("value") for a in answers if a["answer"].get("value") is not None], float)
    else:  # predict_box (its score: the IoU), flip_mask (its score: the share used)
        values = np.array([a["score"] for a in answers if a.get("score") is not None], float)
    if values.size == 0:
        return pd.DataFrame({"answer": [], "people": []})
    counts, edges = np.histogram(values, bins=min(10, max(1, len(set(values.tolist())))))
    return pd.DataFrame({"answer": [f"{a:.3g}–{b:.3g}" for a, b in zip(edges[:-1], edges[1:])], "people": counts})


def answers_chart(frame: pd.DataFrame):
    """Bars of people per answer, in the frame's order (options, layers early → late, bins low → high)."""
    import altair as alt

    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("answer:N", sort=None, title=None), x=alt.X("people:Q", title="people", axis=alt.Axis(tickMinStep=1)),
        tooltip=["answer", "people"])


def boxes_of(answers: list[dict]) -> list:
    """The class's predicted boxes (fractions) in the answers of a predict_box exercise."""
    return [a["answer"]["box"] for a in answers if isinstance(a.get("answer"), dict) and a["answer"].get("box")]


def exercise_data(store, code: str, key: str, ex: lessons.Exercise, layers=()) -> tuple[list, pd.DataFrame]:
    """What one tick of the per-exercise view reads and builds: the answers and their distribution."""
    answers = store.answers(code, key, ex.id)
    return answers, distribution(ex, answers, layers)


def fingerprint(value) -> str:
    """A short hash of JSON-able data or of an array's bytes (what a kept picture was drawn from)."""
    data = value.tobytes() if isinstance(value, np.ndarray) else json.dumps(value, sort_keys=True).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def kept_picture(slot: tuple, mark: str, draw) -> str:
    """The data URL kept in the session under ``slot`` if it was drawn from ``mark``, else ``draw()`` kept anew."""
    pics = st.session_state.setdefault(PICTURES, {})
    held = pics.get(slot)
    if held is None or held[0] != mark:
        held = pics[slot] = (mark, draw())
    return held[1]


@ls.says_store_problems
def per_exercise(store, code: str, key: str, lesson: lessons.Lesson) -> None:
    """One exercise at a time: the distribution of the class's answers and, for a predicted box, where the class
    looked beside the model's map (a fragment, like :func:`live`). A model that cannot be used here is one
    sentence; the answers are shown all the same."""
    ids = [e.id for e in lesson.exercises]
    titles = {e.id: f"{i + 1}. {e.title}" for i, e in enumerate(lesson.exercises)}
    eid = st.selectbox("Exercise", ids, key="class_exercise", format_func=titles.__getitem__)
    ex = next(e for e in lesson.exercises if e.id == eid)
    engine = None
    if ex.kind in ("earliest_layer", "predict_box"):
        engine = engine_for(ex)
        if engine is None and ex.model not in models.REGISTRY:
            st.info(f"The model `{ex.model}` of this exercise is not available on this server.")
    layers = engine.spec.layers if engine is not None else ()
    answers, frame = exercise_data(store, code, key, ex, layers)
    st.caption(f"{len(answers)} participant(s) answered (each one's latest answer).")
    if len(frame):
        st.altair_chart(answers_chart(frame), width="stretch")
    if ex.kind == "predict_box":
        where_looked(lesson, ex, engine, boxes_of(answers), code)


def where_looked(lesson: lessons.Lesson, ex: lessons.Exercise, engine, boxes: list, code: str = "") -> None:
    """All the class's boxes as a heat map over the photo (drawn again only when the boxes change), beside the
    model's map for the exercise (drawn once per room, exercise and photo; a bar while it is first computed)."""
    rgb = ls.exercise_photo(lesson, ex).rgb

    def base():
        return render.display_base(rgb, 480)

    def looked():
        b = base()
        if not boxes:
            return data_url(b)
        heat = lessons.where_looked([tuple(x) for x in boxes], b.shape[:2])
        return data_url(render.overlay(b, heat, 0.55, "jet", vmax=1.0))

    c1, c2 = st.columns(2)
    c1.image(kept_picture(("looked", code, ex.id), fingerprint([ex.photo, boxes]), looked), width="stretch",
             caption=f"Where the class looked · {len(boxes)} box(es) · red: everyone's box covers it" if boxes
             else "Where the class looked · no box yet")
    if engine is None:
        return
    # drawn again where the photo or anything that makes the map changes (an instructor's edited lesson)
    mark = fingerprint(rgb) + fingerprint([ex.model, ex.class_index, ex.layer, ex.method, repr(sorted(ex.params.items()))])
    slot = ("model", code, ex.id)
    held = st.session_state.get(PICTURES, {}).get(slot)
    if held is None or held[0] != mark:
        try:
            exp = _expected_with_bar(ex, engine, rgb)
        except (ValueError, models.WeightsUnavailable) as exc:
            st.error(_sentence(exc))
            return
        if exp.map is None:
            return
        kept_picture(slot, mark, lambda: (data_url(render.overlay(base(), exp.map, 0.55, "jet")), exp.class_name))
    url, name = st.session_state[PICTURES][slot][1]
    c2.image(url, caption=f"The model's map · {name}", width="stretch")


def _sentence(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:1].upper() + text[1:]


def _expected_with_bar(ex: lessons.Exercise, engine, rgb):
    """:func:`core.lessons.expected`, with a progress bar only while it is computed (a cached one is instant)."""
    slot = st.empty()

    def progress(fraction: float) -> None:
        if fraction < 1.0:
            ls.bar_progress(slot, "Computing the model's map…")(fraction)

    try:
        return lessons.expected(ex, engine, rgb, progress=progress)
    finally:
        slot.empty()


def close(code: str, key: str) -> None:
    """Close's callback (a database problem kept as its sentence for the page's run)."""
    from core.store import StoreError

    try:
        ls.shared_store().close_room(code, key)
    except StoreError as exc:
        st.session_state["class_close_error"] = str(exc)


def close_control(code: str, key: str, closed: bool) -> None:
    """Close the room, after a confirmation."""
    if closed:
        st.info("This room is closed: participants can no longer answer. Its results stay here and in the export.")
        return
    if problem := st.session_state.pop("class_close_error", None):
        st.error(problem)
    sure = st.checkbox(f"Yes, close room {code}: participants can no longer answer", key="class_close_sure")
    st.button("Close the room", key="class_close", disabled=not sure, on_click=close, args=(code, key))
