"""AppTest of the Lesson page's workshop rooms with the real Lite0 engine: a participant joins by a nickname shown as
text and each submit is stored once however often the script runs; an unknown or closed room is one sentence; solo
progress stays out of a room; a participant comes back as themselves from the address. The page, its temporary
workshop database and lessons, and the helpers that drive it are those of tests/test_lesson_page.py.
"""
import pytest

from apptest_pages import ok, texts

from core.store import Store
from tests.test_lesson_page import (again, alerts, answer_quiz, env, flipping_rect, k, next_step, page,  # noqa: F401
                                    photo, run_of, set_box, submit)
from ui import lesson_state as ls


def test_a_room_participant_joins_by_a_nickname_shown_as_text_and_each_submit_is_stored_once(env, lite_engine,
                                                                                          photo):
    from core.store import NICKNAME_MAX, clean_nickname

    lesson = env["lesson"]
    store = Store(env["url"])
    room = store.create_room(lesson.id)
    at = page({"room": room.code})
    assert at.subheader[0].value == lesson.title and not at.get("download_button")  # nothing before joining
    nick = "<b>Ada</b> **bold** [x](https://evil.example) <script>alert(1)</script>\x07" + "z" * 10_000
    at.text_input(key=f"room_nick_{room.code}").set_value(nick)
    at.button(key=f"room_join_{room.code}").click()
    ok(at.run())
    stored, message = clean_nickname(nick)
    assert len(stored) == NICKNAME_MAX and stored.startswith("<b>Ada</b> **bold**")
    assert [t.value for t in at.text] == [f"You are in room {room.code} as {stored}."]
    assert message in [c.value for c in at.caption] and "cut to" in message
    assert not any("Ada" in m.value for m in at.markdown) and not at.get("html")  # never through Markdown/HTML

    answer_quiz(at, lesson, "before", {"q1": 1, "q2": 1})
    for _ in range(4):  # to the choice exercise
        next_step(at, lesson)
    at.radio(key=k(lesson.id, "pick", "choice")).set_value(1)
    submit(at, lesson, "pick")
    member = at.session_state["lesson_members"][room.code]
    mine = store.own_progress(room.code, member["participant"])
    assert [(a["exercise_id"], a["answer"], a["correct"]) for a in mine] == [("pick", {"choice": 1}, True)]
    ok(at.run())  # the script runs again: nothing new stored
    rk = ls.run_key(lesson.id, room.code)
    attempt = at.session_state[ls.RUNS][rk]["done"]["pick"]["attempt_id"]
    # the same submit handled again (a run interrupted after the store's write and repeated): stored once
    at.session_state[ls.PENDING] = {(rk, "pick"): {"raw": {"choice": 1}, "attempt_id": attempt, "seconds": 3.0}}
    ok(at.run())
    assert len(store.own_progress(room.code, member["participant"])) == 1
    again(at, lesson, "pick")
    at.radio(key=k(lesson.id, "pick", "choice")).set_value(0)
    submit(at, lesson, "pick")
    assert [a["correct"] for a in store.own_progress(room.code, member["participant"])] == [True, False]

    # a flip: the room's best share (another participant's, scripted here) is shown afterwards, never its name
    other = store.join(room.code, "quick")
    store.record_attempt(room.code, other, "flip", {"share": 0.031}, 0.031, True, 5.0, "other-flip")
    at.button(key=f"lesson_back_{lesson.id}").click()
    ok(at.run())
    set_box(at, lesson.id, "flip", "r0", flipping_rect(lesson, lesson.exercises[2], lite_engine, photo))
    submit(at, lesson, "flip")
    assert "The best share in the room so far: 3.1%." in [c.value for c in at.caption]
    assert "quick" not in texts(at)
    table = store.table(room.code, room.key)
    assert [r["nickname"] for r in table] == [stored, "quick"] and table[0]["pick"]["attempts"] == 2
    q = store.quiz(room.code, room.key)
    assert q["n_before"] == 1 and q["before_mean"] == pytest.approx(0.5)


def test_an_unknown_or_closed_room_is_one_sentence(env):
    at = page({"room": "NOSUCHROOM"})
    assert [e.value for e in at.error] == ["There is no open room with this code: check the link your instructor "
                                           "gave you."]
    assert not at.text_input and not at.button
    store = Store(env["url"])
    room = store.create_room(env["lesson"].id)
    store.close_room(room.code, room.key)
    at = page({"room": room.code})
    assert [e.value for e in at.error] == ["This room is closed."] and not at.text_input


def test_solo_progress_stays_out_of_a_room(env):
    lesson = env["lesson"]
    store = Store(env["url"])
    room = store.create_room(lesson.id)
    at = page()
    at.selectbox(key="lesson_pick").set_value(lesson.id)
    ok(at.run())
    answer_quiz(at, lesson, "before", {"q1": 1, "q2": 0})
    assert "2 of 2 right." in alerts(at)["success"]
    at.query_params["room"] = room.code  # the same session opens the room's link
    ok(at.run())
    at.text_input(key=f"room_nick_{room.code}").set_value("Ann")
    at.button(key=f"room_join_{room.code}").click()
    ok(at.run())
    assert run_of(at, lesson, room.code)["quiz"] == {} and run_of(at, lesson)["quiz"]["before"]["right"] == 2
    assert at.button(key=k(lesson.id, "quiz_before", "submit")) and not at.success
    assert at.button(key=f"lesson_next_{lesson.id}").disabled


def test_a_participant_comes_back_as_themselves_from_the_address_and_a_double_submit_stores_one_row(env):
    lesson = env["lesson"]
    store = Store(env["url"])
    room = store.create_room(lesson.id)
    at = page({"room": room.code})
    at.text_input(key=f"room_nick_{room.code}").set_value("Ann")
    at.button(key=f"room_join_{room.code}").click()
    ok(at.run())
    token = at.session_state["lesson_members"][room.code]["participant"]
    assert at.query_params["p"] == token and token not in texts(at)
    answer_quiz(at, lesson, "before", {"q1": 1, "q2": 1})
    run = run_of(at, lesson, room.code)
    run["step"] = 4  # straight to the choice (no model needed)
    ok(at.run())
    at.radio(key=k(lesson.id, "pick", "choice")).set_value(1)
    # a submit of this exercise is pending (its run was cut short): a second click adds nothing, the pending one is
    # handled with its own attempt id and stored once
    rk = ls.run_key(lesson.id, room.code)
    at.session_state[ls.PENDING] = {(rk, "pick"): {"raw": {"choice": 1}, "attempt_id": "pending-1", "seconds": 2.0}}
    submit(at, lesson, "pick")
    assert [(a["attempt_id"], a["answer"]) for a in store.own_progress(room.code, token)] == [("pending-1",
                                                                                             {"choice": 1})]
    assert not at.session_state[ls.PENDING]

    # a reload, a new browser session or a restarted server: the same address finds Ann and her progress
    back = page({"room": room.code, "p": token})
    assert [t.value for t in back.text] == [f"You are in room {room.code} as Ann."] and not back.text_input
    again_ = run_of(back, lesson, room.code)
    assert again_["quiz"]["before"]["right"] == 1 and again_["done"]["pick"]["attempt_id"] == "pending-1"
    assert again_["step"] == 1 and token not in texts(back)  # the first exercise left to do
    again_["step"] = 4
    ok(back.run())
    assert back.success[0].value.startswith("Right") and back.button(key=k(lesson.id, "pick", "again"))
    assert [r["nickname"] for r in store.table(room.code, room.key)] == ["Ann"]  # no second participant

    # a token of nobody in this room: the join form, and the address forgets it
    other = store.create_room(lesson.id)
    stranger = store.join(other.code, "Bob")
    at = page({"room": room.code, "p": stranger})
    assert at.text_input(key=f"room_nick_{room.code}") and "p" not in at.query_params
    assert "Bob" not in texts(at) and [r["nickname"] for r in store.table(room.code, room.key)] == ["Ann"]
