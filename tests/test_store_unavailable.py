"""A workshop database that stops answering during a session (busy, restarting, gone): the pages that read it say
the store's one sentence and the session goes on, instead of a traceback — the Lesson page of a room (caught around
every page's run in streamlit_app.py), the Class page's two live fragments (they run again on their own), its lost
page's list and its Close button (a callback)."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

from apptest_pages import ok, texts

from core.store import Store, StoreUnavailable
from tests.test_class_page import env, open_page, room  # noqa: F401 (fixtures: a temporary database and lesson)

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
SENTENCE = "The workshop database did not answer within 1 s (database is locked); try again."


def down(monkeypatch, *calls):
    def unavailable(*_args, **_kwargs):
        raise StoreUnavailable(SENTENCE)

    for name in calls:
        monkeypatch.setattr(Store, name, unavailable)


def test_the_lesson_page_of_a_room_says_one_sentence_and_comes_back(room, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    at.query_params["room"] = room["code"]
    with monkeypatch.context() as m:
        down(m, "room")
        ok(at.switch_page("app_pages/lesson.py").run())
        assert [e.value for e in at.error] == [SENTENCE]
    ok(at.run())  # the database answers again: the room's join form
    assert not at.error and at.text_input(key=f"room_nick_{room['code']}")


def test_the_class_page_s_live_view_says_one_sentence_per_fragment_and_closing_keeps_the_room(room, monkeypatch):
    at = open_page({"room": room["code"], "key": room["key"]})
    assert "3 participant(s)" in texts(at) and not at.error
    with monkeypatch.context() as m:
        down(m, "table", "answers", "quiz")
        ok(at.run())
        # the live table, the per-exercise view and the lost page's list of nicknames
        assert [e.value for e in at.error] == [SENTENCE] * 3
        assert at.checkbox(key="class_close_sure")  # the rest of the page is there
    ok(at.run())
    assert not at.error and "3 participant(s)" in texts(at)
    with monkeypatch.context() as m:
        down(m, "close_room")
        ok(at.checkbox(key="class_close_sure").check().run())
        at.button(key="class_close").click()
        ok(at.run())
        assert [e.value for e in at.error] == [SENTENCE]
    assert not room["store"].room(room["code"])["closed"]
