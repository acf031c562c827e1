"""Class: an instructor creates a workshop room for a lesson (two links: the participants' and a private one with
the room's key) and, with that key, follows the class live: who did what, the answers per exercise, where the class
looked beside the model's map, the quiz's gain, the export, and closing the room."""
import streamlit as st

from ui import lesson_class as lc
from ui import lesson_state as ls

st.title("Class")
st.sidebar.title("Grad-CAM Studio")
code, key = st.query_params.get("room"), st.query_params.get("key")
found, problems = ls.catalog()
if not code:
    lc.create(found, problems)
    st.stop()
store = ls.store_or_say()
if store is None:
    st.stop()
if not key or not store.is_instructor(code, key):
    st.error(lc.WRONG_KEY)
    st.stop()

room = store.room(code)
lesson = found.get(room["lesson_id"])
st.header(f"Room {room['code']}" + (f" · {lesson.title}" if lesson else ""))
if lesson is None:
    st.error("This room's lesson is not available on this server.")
    st.stop()
people, _ = lc.links(room["code"], key)
st.caption("Participants' link:")
st.code(people, language=None)
st.fragment(lc.live, run_every=lc.REFRESH_S)(store, room["code"], key, lesson)
st.subheader("Per exercise")
st.fragment(lc.per_exercise, run_every=lc.REFRESH_S)(store, room["code"], key, lesson)
with st.expander("A participant lost their page"):
    lc.lost_page(store, room["code"], key)
st.subheader("Close the room")
lc.close_control(room["code"], key, room["closed"])
