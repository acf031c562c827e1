"""Lesson: a guided lesson with exercises that check themselves and a concept quiz before and after.

Solo by default (progress in the session, downloadable); with ``?room=CODE`` the learner joins a workshop room with
a nickname and every answer is also recorded for the instructor (the Class page); the participant's token then
rides in the address (``&p=…``) so that a reload or a restarted server continues as the same participant.
"""
import streamlit as st

from ui import lesson_flow as flow
from ui import lesson_room as room
from ui import lesson_state as ls
from ui.resources import start_notice

st.title("Lesson")  # before anything slow: on screen while a cold server starts
notice = start_notice()  # the start-up work (TensorFlow, the default model) begins in the background
st.sidebar.title("Grad-CAM Studio")
found, problems = ls.catalog()
code = room.room_code()
member = None
if code is None:
    lesson = flow.pick(found, problems)
    if lesson is None:
        st.stop()
else:
    opened = room.open_room(code)
    if opened is None:
        st.stop()
    lesson = found.get(opened["lesson_id"])
    if lesson is None:
        st.error("This room's lesson is not available on this server.")
        st.stop()
    st.subheader(lesson.title)
    member = room.member(opened["code"], lesson)
    if member is None:
        st.stop()

run = ls.progress(lesson, None if member is None else member["code"])
slot = flow.header(lesson, run)
n = len(lesson.exercises)
step = min(run["step"], n + 1)
if step == 0:
    flow.quiz(lesson, run, "before", member)
elif step <= n:
    flow.exercise(lesson, step - 1, run, member, notice)
else:
    flow.quiz(lesson, run, "after", member)
flow.progress_bar(slot, lesson, run)
flow.navigation(lesson, run)
st.divider()
flow.downloads(lesson, run)
if notice is not None:
    notice.empty()
