"""A value exercise that grays out an object (gray-out-the-dog): the figure depends on the rectangle a learner draws
over it, so an answer from any rectangle that covers the object and leaves the other objects alone is accepted —
the rectangles of ``covers.covers``, run once for the first answer the object's box does not accept — and the
expected answers follow an edited boxes file (its boxes are part of the cache key)."""
import os
import textwrap

import numpy as np
import pytest

from core import lessons
from core.cam import occlusion
from core.lessons import covers

DOG_PX, CAT_PX = (601, 12, 935, 380), (0, 0, 505, 400)  # assets/boxes.toml, cat_and_dog.jpg (940×400)
W, H = 940, 400
TABBY = 281


def frac(b):
    return (b[0] / W, b[1] / H, b[2] / W, b[3] / H)


def test_the_covers_of_a_box_stop_at_the_photo_and_at_the_objects_beside_it():
    rects = covers.covers(frac(DOG_PX), [frac(CAT_PX)])
    assert len(rects) == 16 and frac(DOG_PX) in rects
    assert (frac(CAT_PX)[2], 0.0, 1.0, 1.0) in rects  # out to the cat's right edge, the top, the right, the bottom
    assert all(r[0] >= frac(CAT_PX)[2] and r[0] <= r[2] and r[1] <= r[3] for r in rects)
    assert len(covers.covers((0.2, 0.2, 0.4, 0.4), [])) == 16  # alone: every side out to the photo's edge
    assert (0.0, 0.0, 1.0, 1.0) in covers.covers((0.2, 0.2, 0.4, 0.4), [])
    above, overlapping = (0.25, 0.0, 0.35, 0.1), (0.3, 0.3, 0.5, 0.5)
    assert {r[1] for r in covers.covers((0.2, 0.2, 0.4, 0.4), [above, overlapping])} == {0.2, 0.1}
    assert len(covers.covers((0.0, 0.0, 1.0, 1.0), [])) == 1  # nothing left to grow: one rectangle


def _p_after(engine, rgb, px):
    """p(tabby) after a learner grays out the rectangle ``px`` (photo pixels), as the Occlude page does."""
    m = np.zeros(rgb.shape[:2], bool)
    m[px[1]:px[3], px[0]:px[2]] = True
    return 100 * float(engine.predict(engine.prepare(occlusion.apply_fill(rgb, m, "gray")))[0][TABBY])


def test_an_answer_from_any_rectangle_over_the_dog_is_accepted_and_not_the_untouched_photo(lite_engine, photos,
                                                                                          monkeypatch):
    rgb = photos["cat_and_dog.jpg"].rgb
    ex = next(e for e in lessons.builtin().exercises if e.id == "gray-out-the-dog")
    lessons.CACHE.clear()
    exp = lessons.expected(ex, lite_engine, rgb)
    assert exp.answer == pytest.approx(12.89, abs=0.05) and exp.detail["covers"]
    passes = []
    real = lite_engine.predict
    monkeypatch.setattr(lite_engine, "predict", lambda b: (passes.append(len(b)), real(b))[1])
    assert lessons.check(ex, 12.0, exp, lite_engine, rgb).correct and passes == []  # the box's figure: no pass
    # the rectangles a learner draws over the whole dog: full height, out to the photo's right edge, from the gap
    rng = np.random.default_rng(4)
    drawn = [(601, 0, 935, 400), (601, 0, 940, 400), (560, 5, 940, 390)] + [
        tuple(int(rng.integers(lo, hi)) for lo, hi in ((505, 602), (0, 13), (935, 941), (380, 401))) for _ in range(10)]
    monkeypatch.setattr(lite_engine, "predict", real)
    figures = [_p_after(lite_engine, rgb, px) for px in drawn]
    monkeypatch.setattr(lite_engine, "predict", lambda b: (passes.append(len(b)), real(b))[1])
    assert max(figures) - min(figures) > 2 * ex.params["tolerance"]  # the box's figure alone could not accept them
    for px, p in zip(drawn, figures):
        out = lessons.check(ex, round(p, 1), exp, lite_engine, rgb)
        assert out.correct, (px, p, out.feedback)
    assert sum(passes) == 16  # the other rectangles ran once, then came from the cache
    lo, hi, n = covers.cover_range(ex, exp, lite_engine, rgb)
    assert n == 16 and lo < exp.answer < hi
    untouched = 100 * float(lite_engine.run(rgb).probs[TABBY])  # 5.6 %: the dog not grayed out at all
    wrong = lessons.check(ex, round(untouched, 1), exp, lite_engine, rgb)
    assert not wrong.correct and f"{lo:.1f}–{hi:.1f}%" in wrong.feedback
    assert not lessons.check(ex, hi + ex.params["tolerance"] + 0.5, exp, lite_engine, rgb).correct


LESSON = textwrap.dedent('''
    title = "Boxes"
    [[exercise]]
    id = "gray"
    kind = "value"
    photo = "cat_and_dog.jpg"
    class_index = 281
    instructions = "Gray out the dog."
    [exercise.params]
    compute = "prob_after_mask"
    object = "dog"
    tolerance = 2.0
    unit = "%"
''')


def _boxes(dog):
    return (f'[photos."cat_and_dog.jpg"]\nsize = [940, 400]\nboxes = [{{ label = "cat", box = [0, 0, 505, 400] }}, '
            f'{{ label = "dog", box = {list(dog)} }}]\n')


def test_an_edited_boxes_file_changes_the_expected_answer(lite_engine, photos, tmp_path):
    rgb = photos["cat_and_dog.jpg"].rgb
    (tmp_path / "gray.toml").write_text(LESSON)
    boxes = tmp_path / "boxes.toml"
    boxes.write_text(_boxes(DOG_PX))
    ex = lessons.load(tmp_path / "gray.toml").exercises[0]
    before = lessons.expected(ex, lite_engine, rgb)
    assert before.answer == pytest.approx(12.89, abs=0.05)
    boxes.write_text(_boxes((700, 100, 800, 200)))  # only part of the dog
    os.utime(boxes, ns=(boxes.stat().st_atime_ns, boxes.stat().st_mtime_ns + 10**9))
    after = lessons.expected(ex, lite_engine, rgb)
    assert after.detail["box"] == pytest.approx(frac((700, 100, 800, 200)))
    assert after.answer == pytest.approx(_p_after(lite_engine, rgb, (700, 100, 800, 200)), abs=0.01)
    assert abs(after.answer - before.answer) > 1
