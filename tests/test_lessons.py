"""Lesson files: the built-in lesson, the loader's one-line problems, the boxes, the quiz, where people looked, the
CLI (check and export)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import lessons
from core.cli import lesson_commands
from core.lessons import boxes

ROOT = Path(__file__).resolve().parent.parent

GOOD = '''title = "Tiny"
[[exercise]]
id = "a"
kind = "choice"
photo = "cat.jpg"
instructions = "Pick one."
[exercise.params]
options = ["x", "y"]
answer = 1
[[quiz]]
id = "q"
text = "?"
options = ["a", "b"]
answer = 0
'''


def test_the_builtin_lesson_loads_with_its_exercises_and_quiz():
    lesson = lessons.builtin()
    assert lesson.title == "Grad-CAM in 45 minutes"
    required = [e for e in lesson.exercises if not e.optional]
    assert 8 <= len(required) <= 10 and len(lesson.exercises) == len(required) + 1
    assert {e.kind for e in lesson.exercises} == set(lessons.KINDS)
    assert len(lesson.quiz) == 6 and all(0 <= q.answer < len(q.options) for q in lesson.quiz)
    shortcut = [e for e in lesson.exercises if e.optional]
    assert shortcut[0].params["needs"] == "trained"
    for e in lesson.exercises:
        assert lessons.photo_path(lesson, e).is_file()


def test_every_bundled_photo_has_boxes_inside_it():
    from PIL import Image

    for photo in sorted((ROOT / "assets").glob("*.jpg")):
        found = boxes.boxes_for(photo.name)
        assert found, photo.name
        for b in found:
            assert b.size == Image.open(photo).size
            x0, y0, x1, y1 = b.fractions
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_photo_box_by_label_and_default():
    lesson = lessons.builtin()
    ex = next(e for e in lesson.exercises if e.id == "layers-edges-to-objects")
    assert lessons.photo_box(lesson, ex) == pytest.approx((601 / 940, 12 / 400, 935 / 940, 380 / 400))
    assert lessons.photo_box(lesson, ex, "cat") == pytest.approx((0, 0, 505 / 940, 1))


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


BROKEN = {
    "unknown_kind.toml": (GOOD.replace('kind = "choice"', 'kind = "essay"'), ["exercise 'a': field 'kind'"]),
    "missing.toml": (GOOD.replace('instructions = "Pick one."\n', ''), ["exercise 'a': field 'instructions': missing"]),
    "types.toml": (GOOD.replace("answer = 1", "answer = \"one\"").replace('photo = "cat.jpg"',
                   'photo = "cat.jpg"\nclass_index = 5000\nlayer = "conv9"\nmethod = "magic"\nmodel = "resnet9"'),
                   ["field 'params.answer'", "field 'model'", "field 'method'", "field 'layer'"]),
    "photo.toml": (GOOD.replace("cat.jpg", "../secret.jpg"), ["exercise 'a': field 'photo'"]),
    "dupes.toml": (GOOD + GOOD[GOOD.index("[[exercise]]"):GOOD.index("[[quiz]]")],
                   ["exercise 'a': field 'id': is used by another exercise"]),
    "syntax.toml": ("title = \n", ["not a valid TOML file"]),
    "params.toml": (GOOD.replace("answer = 1", 'compute = "sanity"\nmaps = ["gradcam", "nothing"]\ncolour = 3'),
                    ["field 'params.maps': unknown method 'nothing'", "field 'params.colour': not a setting"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_lesson_gives_one_line_per_problem_naming_file_exercise_and_field(tmp_path, name):
    text, expected = BROKEN[name]
    path = _write(tmp_path, name, text)
    with pytest.raises(lessons.LessonError) as err:
        lessons.load(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(path))
    for line in err.value.problems:
        assert line.startswith(f"{path}: ") and "\n" not in line
    for want in expected:
        assert any(want in line for line in err.value.problems), (want, err.value.problems)


def test_every_value_and_earliest_layer_field_is_checked(tmp_path):
    text = GOOD.replace('kind = "choice"', 'kind = "value"').replace(
        'options = ["x", "y"]\nanswer = 1', 'compute = "prob_after_mask"\nunit = "kg"')
    text = text.replace('id = "a"', 'id = "v"') + ('[[exercise]]\nid = "e"\nkind = "earliest_layer"\nphoto = "cat.jpg"\n'
                                                   'instructions = "."\nmethod = "occlusion"\n[exercise.params]\n'
                                                   'tolerance = -1\nrule = "soon"\nobject = "horse"\n')
    with pytest.raises(lessons.LessonError) as err:
        lessons.load(_write(tmp_path, "fields.toml", text))
    lines = "\n".join(err.value.problems)
    for want in ("exercise 'v': field 'params.tolerance': missing", "exercise 'v': field 'params.unit'",
                 "exercise 'v': field 'params.box': prob_after_mask needs", "exercise 'e': field 'params.tolerance'",
                 "exercise 'e': field 'params.rule'", "exercise 'e': field 'params.object': no box labelled 'horse'",
                 "exercise 'e': field 'method': earliest_layer needs"):
        assert want in lines, want


def test_load_folder_keeps_the_good_lessons(tmp_path):
    _write(tmp_path, "good.toml", GOOD)
    _write(tmp_path, "bad.toml", BROKEN["unknown_kind.toml"][0])
    _write(tmp_path, "boxes.toml", '[photos."mine.png"]\nsize = [10, 10]\nboxes = [{ label = "x", box = [1, 1, 5, 5] }]\n')
    good, problems = lessons.load_folder(tmp_path)
    assert [lesson.title for lesson in good] == ["Tiny"]
    assert len(problems) == 1 and problems[0].startswith(str(tmp_path / "bad.toml"))


def test_a_photo_beside_the_lesson_with_its_own_boxes(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 10)).save(tmp_path / "mine.png")
    _write(tmp_path, "boxes.toml", '[photos."mine.png"]\nsize = [20, 10]\nboxes = [{ label = "thing", box = [2, 1, 12, 6] }]\n')
    lesson = lessons.load(_write(tmp_path, "own.toml", GOOD.replace("cat.jpg", "mine.png")))
    ex = lesson.exercises[0]
    assert lessons.photo_path(lesson, ex) == tmp_path / "mine.png"
    assert lessons.photo_box(lesson, ex) == pytest.approx((0.1, 0.1, 0.6, 0.6))


def test_quiz_score_counts_missing_answers_as_wrong():
    quiz = lessons.builtin().quiz
    all_right = {q.id: q.answer for q in quiz}
    assert lessons.quiz_score(quiz, all_right) == (6, 6)
    assert lessons.quiz_score(quiz, {quiz[0].id: quiz[0].answer, "nope": 1}) == (1, 6)
    assert lessons.quiz_score(quiz, {q.id: (q.answer + 1) % len(q.options) for q in quiz}) == (0, 6)


def test_where_looked_is_the_share_of_boxes_over_each_pixel():
    heat = lessons.where_looked([(0, 0, 0.5, 1), (0, 0, 1, 0.5), (0.25, 0.25, 0.75, 0.75)], (4, 4))
    assert heat.shape == (4, 4) and heat.dtype == np.float32
    assert heat[0, 0] == pytest.approx(2 / 3) and heat[3, 3] == 0 and heat[1, 1] == pytest.approx(1.0)
    assert heat[3, 1] == pytest.approx(1 / 3) and heat[1, 2] == pytest.approx(2 / 3)
    assert not lessons.where_looked([], (3, 5)).any()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "core", "lesson", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_check_prints_one_line_per_problem_and_exits_2(tmp_path):
    bad = _write(tmp_path, "bad.toml", BROKEN["types.toml"][0])
    broken = _write(tmp_path, "syntax.toml", BROKEN["syntax.toml"][0])
    out = _cli("check", str(ROOT / "lessons" / "gradcam-in-45-minutes.toml"), str(bad), str(broken))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    with pytest.raises(lessons.LessonError) as err:
        lessons.load(bad)
    assert lines[:-1] == err.value.problems
    assert lines[-1].startswith(f"{broken}: not a valid TOML file") and "Traceback" not in out.stderr
    ok = _cli("check", str(ROOT / "lessons" / "gradcam-in-45-minutes.toml"))
    assert ok.returncode == 0 and ok.stderr.strip() == ""


def test_cli_export_of_an_unknown_room_is_one_line(tmp_path):
    out = _cli("export", "--room", "NOSUCH", "--db", f"sqlite:///{tmp_path / 'w.sqlite3'}")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_cli_export_writes_the_rooms_rows_as_csv(tmp_path):
    from core.store import Store

    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    store = Store(url)
    room = store.create_room("gradcam-in-45-minutes")
    who = store.join(room.code, "Ada")
    store.record_attempt(room.code, who, "predict-cat", {"box": [0.1, 0.1, 0.5, 0.9]}, 0.42, None, 12.5, "a1")
    store.close()
    out = _cli("export", "--room", room.code, "--db", url, "--csv", str(tmp_path / "out.csv"))
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "out.csv").read_text()
    assert text.splitlines()[0].startswith("room,nickname,kind,item") and "Ada" in text and "predict-cat" in text


def test_export_rows_become_csv_with_a_header():
    text = lesson_commands.rows_csv([{"room": "R", "nickname": "a,b", "kind": "attempt", "item": "x", "score": 0.5,
                                      "correct": None}])
    head, row = text.splitlines()
    assert head.split(",")[:4] == ["room", "nickname", "kind", "item"]
    assert row.startswith('R,"a,b",attempt,x')


def test_a_fooled_choice_on_a_photo_without_a_box_asks_for_params_box(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 10)).save(tmp_path / "plain.png")  # no boxes.toml beside it, not a bundled sample
    fooled = GOOD.replace("cat.jpg", "plain.png").replace(
        "answer = 1", 'compute = "fooled"\nmaps = ["gradcam", "edges"]\nmetric = "energy"')
    with pytest.raises(lessons.LessonError) as err:
        lessons.load(_write(tmp_path, "fooled.toml", fooled))
    assert err.value.problems == [f"{tmp_path / 'fooled.toml'}: exercise 'a': field 'photo': has no object box "
                                  "(assets/boxes.toml or boxes.toml beside the lesson); give params.box"]
    given = fooled.replace('metric = "energy"', 'metric = "energy"\nbox = [0.1, 0.1, 0.5, 0.9]')
    ex = lessons.load(_write(tmp_path, "given.toml", given)).exercises[0]
    assert lessons.photo_box(None, ex) == (0.1, 0.1, 0.5, 0.9)


@pytest.mark.parametrize("numbers", ["1, 1, 5", "1, 1, 5, 5, 9"])
def test_a_box_without_four_numbers_is_one_line_for_the_exercises_of_that_photo_only(tmp_path, numbers):
    from PIL import Image

    for name in ("bad.png", "good.png"):
        Image.new("RGB", (20, 10)).save(tmp_path / name)
    _write(tmp_path, "boxes.toml", '[photos."bad.png"]\nsize = [20, 10]\n'
           f'boxes = [{{ label = "x", box = [{numbers}] }}]\n'
           '[photos."good.png"]\nsize = [20, 10]\nboxes = [{ label = "y", box = [1, 1, 5, 5] }]\n')
    second = GOOD[GOOD.index("[[exercise]]"):GOOD.index("[[quiz]]")].replace('id = "a"', 'id = "b"')
    text = GOOD.replace("cat.jpg", "bad.png") + second.replace("cat.jpg", "good.png")
    path = _write(tmp_path, "two.toml", text)
    with pytest.raises(lessons.LessonError) as err:
        lessons.load(path)
    n = len(numbers.split(","))
    assert err.value.problems == [f"{path}: exercise 'a': field 'photo': {tmp_path / 'boxes.toml'}: photo 'bad.png': "
                                  f"box 'x' must be 4 numbers [x0, y0, x1, y1], not {n}"]
    assert boxes.boxes_for("good.png", tmp_path)[0].box == (1, 1, 5, 5)


def test_the_boxes_files_read_are_kept_in_a_bounded_cache_and_reread_when_changed(tmp_path):
    import os

    for i in range(20):
        folder = tmp_path / f"l{i}"
        folder.mkdir()
        _write(folder, "boxes.toml", '[photos."p.png"]\nsize = [20, 10]\n'
               f'boxes = [{{ label = "b{i}", box = [1, 1, 5, 5] }}]\n')
        assert boxes.boxes_for("p.png", folder)[0].label == f"b{i}"
    assert boxes._parse.cache_info().currsize <= 16
    changed = _write(tmp_path / "l19", "boxes.toml", '[photos."p.png"]\nsize = [20, 10]\n'
                     'boxes = [{ label = "new", box = [2, 2, 6, 6] }]\n')
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert boxes.boxes_for("p.png", tmp_path / "l19")[0].label == "new"
