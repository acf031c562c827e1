"""AppTest of the Class page (the instructor's): creating a room shows both links and the key once; with the room's
key the live view counts exactly what the participants submitted, draws where the class looked beside the model's
map, exports and closes the room; with a wrong key it is one sentence and no names.

The participants' answers are scripted through the store (the Lesson page's own writes are in
tests/test_lesson_page.py); the workshop database is a temporary SQLite file (``GRADCAM_STUDIO_DB``).
"""
import base64
import io
import textwrap
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import apptest_pages
from apptest_pages import ok, texts

from core import lessons
from core.imaging import images, render
from core.store import Store
from ui import lesson_class as lc
from ui import lesson_state as ls

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "app_pages" / "classroom.py")
LESSON = textwrap.dedent("""
    id = "class-test"
    title = "Class test"

    [[exercise]]
    id = "box"
    kind = "predict_box"
    photo = "cat_and_dog.jpg"
    instructions = "Draw where the model looks."

    [[exercise]]
    id = "pick"
    kind = "choice"
    photo = "cat_and_dog.jpg"
    instructions = "Which one?"
    [exercise.params]
    options = ["first", "second", "third"]
    answer = 1

    [[quiz]]
    id = "q1"
    text = "Which layer is coarser?"
    options = ["an early one", "the last one"]
    answer = 1
""")
NAMES = ["ann", "<i>bob</i> **b**", "cy"]
BOXES = {"ann": [0.0, 0.0, 0.5, 1.0], "<i>bob</i> **b**": [0.25, 0.0, 0.75, 1.0]}
PICKS = {"ann": 1, "<i>bob</i> **b**": 0, "cy": 1}


@pytest.fixture
def env(tmp_path, monkeypatch):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "class.toml").write_text(LESSON)
    url = f"sqlite:///{tmp_path / 'workshop.sqlite3'}"
    monkeypatch.setenv("GRADCAM_STUDIO_DB", url)
    monkeypatch.setenv(ls.LESSONS_ENV, str(folder))
    return {"url": url, "lesson": lessons.load(folder / "class.toml")}


@pytest.fixture
def room(env):
    """A room with three participants' scripted answers: two boxes, three choices (two right), two quiz pairs."""
    store = Store(env["url"])
    made = store.create_room(env["lesson"].id)
    for i, name in enumerate(NAMES):
        pid = store.join(made.code, name)
        if name in BOXES:
            store.record_attempt(made.code, pid, "box", {"box": BOXES[name]}, 0.4 + 0.1 * i, None, 20.0, f"b{i}")
        store.record_attempt(made.code, pid, "pick", {"choice": PICKS[name]}, float(PICKS[name] == 1),
                             PICKS[name] == 1, 10.0 + i, f"p{i}")
        if i < 2:
            store.record_quiz(made.code, pid, "before", {"q1": 0}, 0, 1, f"qb{i}")
            store.record_quiz(made.code, pid, "after", {"q1": 1}, 1, 1, f"qa{i}")
    return {"store": store, "code": made.code, "key": made.key, **env}


def open_page(query=None) -> AppTest:
    return apptest_pages.open_page(PAGE, query)


everything = texts


def pictures(at) -> dict:
    out = {}
    for element in at.image:
        for url, caption in zip(element.value, element.captions):
            data = base64.b64decode(url.split(",", 1)[1])
            out[caption.split(" · ")[0]] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)
    return out


def chart_rows(at):
    """The rows of the page's (one) bar chart, as its Arrow dataset carries them."""
    import pyarrow as pa

    data = at.get("vega_lite_chart")[0].proto.datasets[0].data.data
    return pa.ipc.open_stream(data).read_all().to_pandas()


def test_the_key_is_shown_until_it_is_kept_or_the_page_is_left(env):
    at = open_page()
    at.selectbox(key="class_lesson").set_value("class-test")
    at.button(key="class_create").click()
    ok(at.run())
    people, mine = (c.value for c in at.code)
    code = parse_qs(urlsplit(people).query)["room"][0]
    assert people == f"lesson?room={code}" and mine.startswith(f"class?room={code}&key=")
    key = parse_qs(urlsplit(mine).query)["key"][0]
    store = Store(env["url"])
    assert store.is_instructor(code, key) and store.room(code)["lesson_id"] == "class-test"
    assert len(key) >= 22 and "shown only now" in at.warning[0].value
    ok(at.run())  # still there while the instructor stays on the page
    assert key in everything(at)
    at.button(key="class_forget").click()
    ok(at.run())
    assert key not in everything(at) and not at.code  # gone once the instructor has kept it

    # or once the instructor leaves the page: coming back shows no key
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    ok(at.run())
    ok(at.switch_page("app_pages/classroom.py").run())
    at.button(key="class_create").click()
    ok(at.run())
    mine = at.code[1].value
    assert "key=" in mine and mine in everything(at)
    ok(at.switch_page("app_pages/lesson.py").run())
    assert mine not in everything(at)
    ok(at.switch_page("app_pages/classroom.py").run())
    assert mine not in everything(at) and not at.code and lc.CREATED not in at.session_state


def test_the_instructor_view_counts_what_was_submitted(room, lite_engine):
    lesson = room["lesson"]
    at = open_page({"room": room["code"], "key": room["key"]})
    df = at.dataframe[0].value
    assert list(df["nickname"]) == NAMES  # as text in the table, in joining order
    assert list(df["done"]) == [2, 1, 1]  # done: right, or no wrong answer (a box); bob's choice was wrong
    assert list(df.columns)[2:] == ["1. box", "2. pick"]
    assert df["2. pick"].tolist() == ["✓ 1.00 10 s", "✗ 0.00 11 s", "✓ 1.00 12 s"]
    assert [m.value for m in at.metric] == ["0%", "100%", "+100%"]
    assert "3 participant(s)" in everything(at)
    assert [b.label for b in at.get("download_button")] == ["Export the room (CSV)"]
    rows = room["store"].export_rows(room["code"], room["key"])
    assert sum(r["kind"] == "attempt" for r in rows) == 5 and sum(r["kind"] == "quiz" for r in rows) == 4

    # the first exercise, a predicted box: where the class looked beside the model's map
    assert at.selectbox(key="class_exercise").value == "box"
    pics = pictures(at)
    assert set(pics) == {"Where the class looked", "The model's map"}
    rgb = images.load_path(ROOT / "assets" / "cat_and_dog.jpg").rgb
    base = render.display_base(rgb, 480)
    heat = lessons.where_looked(list(BOXES.values()), base.shape[:2])
    h, w = heat.shape
    assert heat[h // 2, int(w * 0.4)] == 1.0 and heat[h // 2, int(w * 0.1)] == 0.5 and heat[h // 2, w - 5] == 0.0
    want = render.overlay(base, heat, 0.55, "jet", vmax=1.0).astype(np.int16)
    assert np.abs(pics["Where the class looked"] - want).mean() < 3  # JPEG's loss only
    exp = lessons.expected(lesson.exercises[0], lite_engine, rgb)
    assert np.abs(pics["The model's map"] - render.overlay(base, exp.map, 0.55, "jet")).mean() < 3
    assert "2 participant(s) answered" in everything(at)

    # the choice: the distribution of answers
    at.selectbox(key="class_exercise").set_value("pick")
    ok(at.run())
    drawn = chart_rows(at)
    assert drawn["people"].tolist() == [1, 2, 0] and drawn["answer"].tolist() == ["1. first", "2. second", "3. third"]
    answers = room["store"].answers(room["code"], room["key"], "pick")
    assert lc.distribution(lesson.exercises[1], answers).equals(drawn)

    # close the room, after the confirmation
    assert at.button(key="class_close").disabled
    at.checkbox(key="class_close_sure").check()
    ok(at.run())
    at.button(key="class_close").click()
    ok(at.run())
    assert room["store"].room(room["code"])["closed"] and "This room is closed" in at.info[0].value


def test_a_participant_who_lost_their_page_gets_their_own_link_back_from_the_instructor(room):
    at = open_page({"room": room["code"], "key": room["key"]})
    lost = at.selectbox(key="class_lost_who")
    assert lost.options == NAMES and lost.value is None and len(at.code) == 1  # only the participants' link
    lost.set_value(NAMES[1])  # the nickname with HTML and Markdown in it, shown as plain text
    ok(at.run())
    link = at.code[1].value
    query = parse_qs(urlsplit(link).query)
    assert link.startswith(f"lesson?room={room['code']}&p=") and query["room"] == [room["code"]]
    token = query["p"][0]
    assert room["store"].nickname(room["code"], token) == NAMES[1]
    assert any(t.value.startswith(f"{NAMES[1]}'s own link") for t in at.text)

    # that link opens the participant's page as them, with their progress from the store
    back = apptest_pages.open_page(str(ROOT / "app_pages" / "lesson.py"), {"room": room["code"], "p": token})
    assert f"You are in room {room['code']} as {NAMES[1]}." in [t.value for t in back.text]
    assert not back.text_input and len(room["store"].table(room["code"], room["key"])) == len(NAMES)


@pytest.mark.parametrize("key", ["wrong", None, "room-key-of-another-room"])
def test_a_wrong_key_is_one_sentence_and_shows_no_names(room, key):
    if key == "room-key-of-another-room":
        key = room["store"].create_room("class-test").key
    at = open_page({"room": room["code"], **({"key": key} if key else {})})
    assert [e.value for e in at.error] == [lc.WRONG_KEY]
    assert not at.dataframe and not at.get("download_button") and not at.button and not at.image
    shown = everything(at)
    assert all(name not in shown for name in NAMES) and room["code"] not in shown


def test_the_lesson_and_class_pages_are_in_the_navigation(env):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    ok(at.run())
    ok(at.switch_page("app_pages/classroom.py").run())
    assert at.title[0].value == "Class" and at.button(key="class_create")
    ok(at.switch_page("app_pages/lesson.py").run())
    assert at.title[0].value == "Lesson" and at.selectbox(key="lesson_pick").value == "gradcam-in-45-minutes"


def test_a_tick_reads_the_store_again_and_draws_only_what_changed(room, lite_engine, monkeypatch):
    from core.store import csv_text

    made, exports = [], []
    monkeypatch.setattr(lc, "data_url", lambda rgb, fmt="JPEG": made.append(rgb.shape) or render_url(rgb))
    real_export = Store.export_rows
    monkeypatch.setattr(Store, "export_rows", lambda self, *a: exports.append(a) or real_export(self, *a))
    at = open_page({"room": room["code"], "key": room["key"]})
    assert len(made) == 2 and not exports  # the two pictures; the CSV only on a click
    assert lc.room_csv(room["store"], room["code"], room["key"])() == csv_text(real_export(room["store"], room["code"],
                                                                                       room["key"]))
    ok(at.run())  # a tick with nothing new: the same pictures, nothing drawn
    assert len(made) == 2 and len(at.image) == 2 and at.dataframe[0].value.shape[0] == 3
    # another participant answers meanwhile: the next tick shows them and draws the class's boxes again, only them
    store = room["store"]
    dee = store.join(room["code"], "dee")
    store.record_attempt(room["code"], dee, "box", {"box": [0.5, 0.0, 1.0, 1.0]}, 0.3, None, 12.0, "d1")
    ok(at.run())
    df = at.dataframe[0].value
    assert list(df["nickname"]) == [*NAMES, "dee"] and df["1. box"].tolist()[-1] == "· 0.30 12 s"
    assert len(made) == 3 and "3 box(es)" in pictures_captions(at) and "4 participant(s)" in everything(at)


def render_url(rgb):
    from ui.pictures import data_url

    return data_url(rgb)


def pictures_captions(at) -> str:
    return " ".join(c for e in at.image for c in e.captions)


def test_a_model_without_weights_is_one_sentence_and_the_answers_still_show(room, monkeypatch):
    from core import models
    from ui import lesson_flow

    def no_weights(name):
        raise models.WeightsUnavailable(f"The weights of {name} are not in the cache and cannot be downloaded.")

    monkeypatch.setattr(lesson_flow, "get_engine", no_weights)
    at = open_page({"room": room["code"], "key": room["key"]})
    assert len(at.error) == 1 and at.error[0].value.startswith("The weights of ") and not at.exception
    assert "2 participant(s) answered" in everything(at)
    assert pictures_captions(at).startswith("Where the class looked · 2 box(es)") and len(at.image) == 1


def test_an_edited_exercise_draws_the_model_s_map_again(room, lite_engine):
    at = open_page({"room": room["code"], "key": room["key"]})
    before = pictures(at)["The model's map"]
    path = room["lesson"].path  # the instructor edits the box exercise: the dog's class instead of the top-1
    path.write_text(path.read_text().replace('photo = "cat_and_dog.jpg"\n', 'photo = "cat_and_dog.jpg"\nclass_index = 235\n', 1))
    ok(at.run())
    edited = lessons.load(path).exercises[0]
    assert edited.class_index == 235
    rgb = images.load_path(ROOT / "assets" / "cat_and_dog.jpg").rgb
    want = render.overlay(render.display_base(rgb, 480), lessons.expected(edited, lite_engine, rgb).map, 0.55, "jet")
    after = pictures(at)["The model's map"]
    assert np.abs(after - want).mean() < 3 and np.abs(after - before).mean() > 10
