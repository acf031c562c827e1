"""AppTest of the Lesson page with the real Lite0 engine: every check kind with a right and a wrong answer, the
built-in lesson end to end with scripted answers, a broken lesson file's one line, and the quiz (first, skipped, a
missing answer); the workshop rooms are tests/test_lesson_rooms.py, with this module's page and helpers.

The workshop database is a temporary SQLite file (``GRADCAM_STUDIO_DB``); the test's own lessons are in a temporary
folder (``GRADCAM_STUDIO_LESSONS``). The right answers are computed here with :func:`core.lessons.expected` on the
same photo and model, so the page is checked against the library's real numbers.
"""
import json
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest_pages import ok, open_page, texts

from core import lessons
from core.imaging import images
from ui import lesson_exercise as lx
from ui import lesson_state as ls

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "app_pages" / "lesson.py")
KINDS_LESSON = textwrap.dedent("""
    id = "test-kinds"
    title = "One of each kind"
    intro = "A test lesson: one exercise of each kind on the cat and dog."

    [[exercise]]
    id = "box"
    kind = "predict_box"
    photo = "cat_and_dog.jpg"
    instructions = "Draw where the model looks."

    [[exercise]]
    id = "layer"
    kind = "earliest_layer"
    photo = "cat_and_dog.jpg"
    instructions = "Find the earliest layer whose map points inside the box."
    explanation = "Early layers see edges."
    [exercise.params]
    object = "cat"
    tolerance = 0

    [[exercise]]
    id = "flip"
    kind = "flip_mask"
    photo = "cat_and_dog.jpg"
    instructions = "Change the model's mind."
    [exercise.params]
    max_share = 0.6

    [[exercise]]
    id = "pick"
    kind = "choice"
    photo = "cat_and_dog.jpg"
    instructions = "Which one?"
    [exercise.params]
    options = ["first", "second", "third"]
    answer = 1

    [[exercise]]
    id = "num"
    kind = "value"
    photo = "cat_and_dog.jpg"
    instructions = "What is the top-1 probability?"
    [exercise.params]
    compute = "top1_prob"
    tolerance = 0.02

    [[quiz]]
    id = "q1"
    text = "Which layer is coarser?"
    options = ["an early one", "the last one"]
    answer = 1

    [[quiz]]
    id = "q2"
    text = "What does the ReLU remove?"
    options = ["the negative evidence", "nothing"]
    answer = 0
""")
BROKEN = 'id = "broken"\ntitle = "Broken"\n[[exercise]]\nid = "e1"\nkind = "predict_boxes"\nphoto = "cat.jpg"\n' \
         'instructions = "x"\n'


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A temporary workshop database and a folder with the test lesson and a broken one."""
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "kinds.toml").write_text(KINDS_LESSON)
    (folder / "broken.toml").write_text(BROKEN)
    url = f"sqlite:///{tmp_path / 'workshop.sqlite3'}"
    monkeypatch.setenv("GRADCAM_STUDIO_DB", url)
    monkeypatch.setenv(ls.LESSONS_ENV, str(folder))
    return {"url": url, "folder": folder, "lesson": lessons.load(folder / "kinds.toml")}


def page(query=None) -> AppTest:
    return open_page(PAGE, query)


def alerts(at) -> dict:
    return {k: [e.value for e in getattr(at, k)] for k in ("success", "warning", "info", "error")}


def k(lesson_id, ex_id, name):
    return lx.key(lesson_id, ex_id, name)


def answer_quiz(at, lesson, phase, answers):
    for q in lesson.quiz:
        at.radio(key=k(lesson.id, f"quiz_{phase}", q.id)).set_value(answers[q.id])
    at.button(key=k(lesson.id, f"quiz_{phase}", "submit")).click()
    return ok(at.run())


def next_step(at, lesson):
    at.button(key=f"lesson_next_{lesson.id}").click()
    return ok(at.run())


def submit(at, lesson, ex_id):
    at.button(key=k(lesson.id, ex_id, "submit")).click()
    return ok(at.run())


def again(at, lesson, ex_id):
    at.button(key=k(lesson.id, ex_id, "again")).click()
    return ok(at.run())


def run_of(at, lesson, room=None) -> dict:
    return at.session_state[ls.RUNS][ls.run_key(lesson.id, room)]


def set_box(at, lesson_id, ex_id, name, box):
    x0, y0, x1, y1 = (round(v * 100) for v in box)
    at.slider(key=k(lesson_id, ex_id, f"{name}_x")).set_value((x0, x1))
    at.slider(key=k(lesson_id, ex_id, f"{name}_y")).set_value((y0, y1))


@pytest.fixture(scope="module")
def photo():
    return images.load_path(ROOT / "assets" / "cat_and_dog.jpg").rgb


def flipping_rect(lesson, ex, engine, rgb):
    """A rectangle (fractions) over the top-1 object's box that changes the top-1 class (checked here)."""
    top = engine.spec.label(engine.run(rgb).class_index).lower()
    label = "dog" if any(w in top for w in ("shepherd", "dog", "malinois")) else "cat"
    box = lessons.photo_box(lesson, ex, label)
    box = [round(v, 2) for v in box]
    mask = lx.rects_mask([box], *rgb.shape[:2])
    out = lessons.check(ex, mask, lessons.expected(ex, engine, rgb), engine=engine, rgb=rgb)
    assert out.correct, out.feedback
    return box


def test_every_check_kind_with_a_right_and_a_wrong_answer(env, lite_engine, photo):
    lesson = env["lesson"]
    ex = {e.id: e for e in lesson.exercises}
    exp = {i: lessons.expected(e, lite_engine, photo) for i, e in ex.items()}
    at = page()
    at.selectbox(key="lesson_pick").set_value(lesson.id)
    ok(at.run())
    answer_quiz(at, lesson, "before", {"q1": 0, "q2": 0})
    assert "1 of 2 right." in alerts(at)["success"]
    for q in ("q1", "q2"):  # the answers sent with the form's Submit stay on screen, no longer changeable
        radio = at.radio(key=k(lesson.id, "quiz_before_sent", q))
        assert radio.value == 0 and radio.disabled
    next_step(at, lesson)

    # predict_box: no map before the submit; a box on the map's region scores high, one in a far corner low
    assert not at.image[0].captions[0].startswith("The model's map")
    assert len(at.image) == 1 and "revealed once you submit" in at.image[0].captions[0]
    region = exp["box"].answer
    set_box(at, lesson.id, "box", "box", region)
    submit(at, lesson, "box")
    done = run_of(at, lesson)["done"]["box"]
    want = lessons.check(ex["box"], tuple(done["answer"]["box"]), exp["box"])
    assert done["score"] == pytest.approx(want.score) and want.score > 0.8 and done["correct"] is None
    assert want.feedback in alerts(at)["info"]
    assert any(c.startswith("The model's map for") for e in at.image for c in e.captions)
    assert "Try again" not in [b.label for b in at.button]  # the map is out: a predicted box is final
    next_step(at, lesson)

    # earliest_layer: the studio's layer (tolerance 0) is right, the first layer is wrong
    right = exp["layer"].answer
    layers = list(lite_engine.spec.layers)
    assert right is not None and layers.index(right) > 0
    at.select_slider(key=k(lesson.id, "layer", "layer")).set_value(layers[0])
    ok(at.run())
    assert any(f"at `{layers[0]}`" in c for e in at.image for c in e.captions)
    submit(at, lesson, "layer")
    assert run_of(at, lesson)["done"]["layer"]["correct"] is False and at.warning[0].value.startswith("Not quite")
    assert "Early layers see edges." in texts(at)  # the explanation, after the submit
    again(at, lesson, "layer")
    at.select_slider(key=k(lesson.id, "layer", "layer")).set_value(right)
    submit(at, lesson, "layer")
    assert run_of(at, lesson)["done"]["layer"]["correct"] is True and at.success[-1].value.startswith("Right")
    next_step(at, lesson)

    # flip_mask: a small square leaves the top-1; a rectangle over the top-1 object flips it
    set_box(at, lesson.id, "flip", "r0", (0.45, 0.45, 0.50, 0.50))
    ok(at.run())
    submit(at, lesson, "flip")
    d = run_of(at, lesson)["done"]["flip"]
    assert d["correct"] is False and at.warning[0].value.startswith("Not flipped")
    again(at, lesson, "flip")
    box = flipping_rect(lesson, ex["flip"], lite_engine, photo)
    set_box(at, lesson.id, "flip", "r0", box)
    ok(at.run())
    share = float(lx.rects_mask([box], *photo.shape[:2]).mean())
    assert any(f"{share:.1%} of the photo" in c for e in at.image for c in e.captions)  # the live share
    submit(at, lesson, "flip")
    d = run_of(at, lesson)["done"]["flip"]
    assert d["correct"] is True and d["score"] == pytest.approx(share) and d["answer"]["share"] == pytest.approx(share)
    assert at.success[-1].value.startswith("Flipped")
    assert any("now top-1: " + d["detail"]["after_name"] in c for e in at.image for c in e.captions)
    assert f"Your best share so far: {share:.1%}." in [c.value for c in at.caption]
    next_step(at, lesson)

    # choice: the fixed answer 1
    at.radio(key=k(lesson.id, "pick", "choice")).set_value(0)
    submit(at, lesson, "pick")
    assert run_of(at, lesson)["done"]["pick"]["correct"] is False
    again(at, lesson, "pick")
    at.radio(key=k(lesson.id, "pick", "choice")).set_value(1)
    submit(at, lesson, "pick")
    assert run_of(at, lesson)["done"]["pick"]["correct"] is True
    next_step(at, lesson)

    # value: the top-1 probability within 0.02
    truth = exp["num"].answer
    assert 0.2 < truth < 1.0
    at.number_input(key=k(lesson.id, "num", "value")).set_value(truth + 0.1)
    submit(at, lesson, "num")
    assert run_of(at, lesson)["done"]["num"]["correct"] is False
    again(at, lesson, "num")
    at.number_input(key=k(lesson.id, "num", "value")).set_value(round(truth, 3))
    submit(at, lesson, "num")
    assert run_of(at, lesson)["done"]["num"]["correct"] is True
    assert at.progress[0].value == 100 or at.progress[0].proto.value == 100
    next_step(at, lesson)

    answer_quiz(at, lesson, "after", {"q1": 1, "q2": 0})
    assert "2 of 2 right." in alerts(at)["success"]
    assert at.metric[0].value == "+50%"
    run = run_of(at, lesson)
    assert ls.gain(run) == pytest.approx(0.5) and set(run["done"]) == set(ex)
    data = json.loads(ls.to_json(run))
    assert data["gain"] == pytest.approx(0.5) and data["done"]["pick"]["correct"] is True
    rows = ls.to_csv(run).splitlines()
    assert rows[0] == ",".join(ls.CSV_FIELDS) and len(rows) == 1 + len(ex) + 2
    assert [b.label for b in at.get("download_button")] == ["Download progress (JSON)", "Download progress (CSV)"]


def test_a_broken_lesson_file_is_one_line_and_the_others_load(env):
    at = page()
    lines = [t.value for t in at.expander[0].text]
    assert len(lines) == 1 and "broken.toml: exercise 'e1': field 'kind': unknown kind 'predict_boxes'" in lines[0]
    assert "\n" not in lines[0]
    assert at.expander[0].label == "1 lesson file(s) could not be read"
    assert at.selectbox(key="lesson_pick").options == ["Grad-CAM in 45 minutes", "One of each kind"]
    # a second broken file with two problems: counted as one file more, each problem a line
    (env["folder"] / "worse.toml").write_text(BROKEN.replace('"e1"', '"w1"') + BROKEN[BROKEN.index("[[exercise]]"):]
                                              .replace('"e1"', '"w2"'))
    ok(at.run())
    assert at.expander[0].label == "2 lesson file(s) could not be read (3 problems)"
    assert len(at.expander[0].text) == 3


def test_the_builtin_lesson_end_to_end_with_scripted_answers(env, lite_engine):
    lesson = lessons.builtin()
    at = page()
    assert at.selectbox(key="lesson_pick").value == lesson.id  # the built-in lesson comes first
    wrong_first = {q.id: (q.answer + 1) % len(q.options) for q in lesson.quiz}
    wrong_first[lesson.quiz[0].id] = lesson.quiz[0].answer  # one right before
    answer_quiz(at, lesson, "before", wrong_first)
    next_step(at, lesson)
    for ex in lesson.exercises:
        rgb = ls.exercise_photo(lesson, ex).rgb
        assert ex.title in at.header[0].value
        if ex.params.get("needs") == "trained":  # no trained model in this session: said, and skipped
            assert any("needs a model you trained" in i.value for i in at.info)
            next_step(at, lesson)
            continue
        exp = lessons.expected(ex, lite_engine, rgb)
        if ex.kind == "predict_box":
            set_box(at, lesson.id, ex.id, "box", exp.answer)
        elif ex.kind == "earliest_layer":
            at.select_slider(key=k(lesson.id, ex.id, "layer")).set_value(exp.answer)
        elif ex.kind == "flip_mask":
            eye = (0.18, 0.25, 0.32, 0.5)  # the cat's left eye: 3.5 % of the photo
            assert lessons.check(ex, lx.rects_mask([eye], *rgb.shape[:2]), exp, lite_engine, rgb).correct
            set_box(at, lesson.id, ex.id, "r0", eye)
        elif ex.kind == "choice":
            at.radio(key=k(lesson.id, ex.id, "choice")).set_value(exp.answer)
        else:
            at.number_input(key=k(lesson.id, ex.id, "value")).set_value(round(exp.answer, 3))
        submit(at, lesson, ex.id)
        done = run_of(at, lesson)["done"][ex.id]
        assert done["correct"] is (None if ex.kind == "predict_box" else True), (ex.id, done["feedback"])
        next_step(at, lesson)
    answer_quiz(at, lesson, "after", {q.id: q.answer for q in lesson.quiz})
    run = run_of(at, lesson)
    needed = {e.id for e in lesson.exercises if not e.optional}
    assert needed <= set(run["done"]) and len(needed) >= 8
    assert at.progress[0].value == 100
    n = len(lesson.quiz)
    assert run["quiz"]["before"]["right"] == 1 and run["quiz"]["after"]["right"] == n
    assert ls.gain(run) == pytest.approx((n - 1) / n) and json.loads(ls.to_json(run))["gain"] == ls.gain(run)
    assert at.metric[0].label == "Your gain" and at.metric[0].value == f"{(n - 1) / n:+.0%}"


def warnings_of(at) -> list[str]:
    return [w.value for w in at.warning]


def test_the_quiz_comes_first_or_is_skipped_and_a_missing_answer_is_one_line(env, lite_engine):
    lesson = env["lesson"]
    at = page()
    at.selectbox(key="lesson_pick").set_value(lesson.id)
    ok(at.run())
    assert at.button(key=f"lesson_next_{lesson.id}").disabled  # the quiz before comes first
    at.radio(key=k(lesson.id, "quiz_before", "q1")).set_value(1)
    at.button(key=k(lesson.id, "quiz_before", "submit")).click()
    ok(at.run())
    assert warnings_of(at) == [lx.QUIZ_MISSING] and "before" not in run_of(at, lesson)["quiz"]
    assert at.button(key=f"lesson_next_{lesson.id}").disabled
    ok(at.run())
    assert not at.warning  # said once
    at.button(key=k(lesson.id, "quiz_before", "skip")).click()
    ok(at.run())
    assert run_of(at, lesson)["step"] == 1 and "Exercise 1 of 5" in at.header[0].value
    for _ in range(3):
        next_step(at, lesson)
    submit(at, lesson, "pick")  # no option chosen
    assert warnings_of(at) == ["Choose an answer before you submit."] and "pick" not in run_of(at, lesson)["done"]
    at.radio(key=k(lesson.id, "pick", "choice")).set_value(1)
    submit(at, lesson, "pick")
    assert run_of(at, lesson)["done"]["pick"]["correct"] is True and not at.warning
    next_step(at, lesson)
    submit(at, lesson, "num")  # no number entered
    assert warnings_of(at) == ["Enter a number before you submit."] and "num" not in run_of(at, lesson)["done"]

    # an exercise is done: the quiz before can no longer be sat (no radio, no submit, the callback refuses)
    at.session_state[ls.RUNS][ls.run_key(lesson.id)]["step"] = 0
    ok(at.run())
    assert all(r.disabled for r in at.radio) and not [b for b in at.button if b.label == "Submit the quiz"]
    assert "can no longer be sat" in texts(at) and not at.button(key=f"lesson_next_{lesson.id}").disabled

    # the quiz after: only once every exercise is done, or the learner ends the lesson; no quiz before → no gain
    at.session_state[ls.RUNS][ls.run_key(lesson.id)]["step"] = len(lesson.exercises) + 1
    ok(at.run())
    assert not at.radio and "4 left" in texts(at)
    at.button(key=k(lesson.id, "quiz_after", "end")).click()
    ok(at.run())
    answer_quiz(at, lesson, "after", {"q1": 1, "q2": 0})
    assert "2 of 2 right." in alerts(at)["success"] and ls.gain(run_of(at, lesson)) is None
    assert at.metric[0].label == "Your gain" and at.metric[0].value == "—"
