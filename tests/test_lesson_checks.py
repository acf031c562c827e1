"""The check kinds on the real Lite0 and the bundled photos: each with a right and a wrong answer, the computed
answers with real numbers, the cache, and the server CPU of a check."""
import time
from dataclasses import replace

import numpy as np
import pytest

from core import lessons
from core.lessons import checks

LESSON = lessons.builtin()
EX = {e.id: e for e in LESSON.exercises}
CAT, DOG = (0, 0, 505 / 940, 1.0), (601 / 940, 12 / 400, 935 / 940, 380 / 400)  # assets/boxes.toml, fractions
TABBY, MAU, SHEPHERD = 281, 285, 235


@pytest.fixture(scope="module")
def cd(photos):
    return photos["cat_and_dog.jpg"].rgb


def _rect(rgb, box):
    h, w = rgb.shape[:2]
    m = np.zeros((h, w), bool)
    m[box[1]:box[3], box[0]:box[2]] = True
    return m


def test_predict_box_has_no_wrong_answer_and_scores_iou_and_the_peak(lite_engine, cd):
    ex = EX["predict-cat"]
    exp = lessons.expected(ex, lite_engine, cd)
    assert exp.class_index == MAU and exp.answer is not None
    x, y = exp.detail["peak"]
    assert checks.inside((x, y), CAT)  # the top class's map peaks on the cat
    on = lessons.check(ex, exp.answer, exp)  # the map's own region: IoU 1, the peak inside
    assert on.correct is None and on.score == pytest.approx(1.0) and on.detail["peak_inside"]
    assert "IoU 1.00" in on.feedback and "inside your box" in on.feedback
    off = lessons.check(ex, DOG, exp)
    assert off.correct is None and off.score == 0.0 and not off.detail["peak_inside"]
    assert "outside your box" in off.feedback
    with pytest.raises(ValueError, match="draw a box"):
        lessons.check(ex, (0.5, 0.5, 0.2, 0.9), exp)


@pytest.mark.parametrize("cls, box, want", [
    (MAU, CAT, "block7a_project_bn"),          # block6d_add peaks on the dog; from block7a on, on the cat
    (TABBY, CAT, "block5b_add"),
    (SHEPHERD, DOG, "block6b_add"),            # block6a_project_bn still peaks on the cat's side
])
def test_earliest_layer_from_which_the_map_stays_on_the_object(lite_engine, cd, cls, box, want):
    ex = replace(EX["layers-edges-to-objects"], class_index=cls, params={**EX["layers-edges-to-objects"].params,
                                                                          "box": list(box)})
    exp = lessons.expected(ex, lite_engine, cd)
    assert exp.answer == want
    layers = list(lite_engine.spec.layers)
    i = layers.index(want)
    assert exp.detail["inside"][layers[i - 1]] is False and all(exp.detail["inside"][L] for L in layers[i:])
    assert lessons.check(ex, layers[i + 1 if i + 1 < len(layers) else i - 1], exp).correct  # one stop away: accepted
    wrong = lessons.check(ex, layers[i - 2], exp)
    assert wrong.correct is False and want in wrong.feedback and "2 stop(s)" in wrong.feedback
    with pytest.raises(ValueError, match="not a layer"):
        lessons.check(ex, "conv9", exp)


def test_earliest_layer_first_rule_takes_the_first_hit(lite_engine, cd):
    ex = replace(EX["layers-edges-to-objects"], class_index=MAU,
                 params={**EX["layers-edges-to-objects"].params, "object": "cat", "rule": "first"})
    exp = lessons.expected(ex, lite_engine, cd)
    assert exp.answer == "block1a_project_bn"  # an early, noisy map lands on the big cat by chance: hence "stays"


def test_flip_mask_over_the_cat_flips_over_the_dog_does_not_and_too_big_is_refused(lite_engine, cd):
    ex = EX["flip-the-model"]
    exp = lessons.expected(ex, lite_engine, cd)
    assert exp.detail["top1"] == MAU
    eye = _rect(cd, (170, 100, 300, 200))  # the cat's left eye, 3.5 % of the photo
    flipped = lessons.check(ex, eye, exp, lite_engine, cd)
    assert flipped.correct and flipped.score == pytest.approx(eye.mean()) and flipped.detail["after"] == SHEPHERD
    assert "German Shepherd Dog" in flipped.feedback
    # the dog: the cat only gets surer (limit raised so that the pass runs)
    big = replace(ex, params={**ex.params, "max_share": 0.5})
    dog = lessons.check(big, _rect(cd, (601, 12, 935, 380)), exp, lite_engine, cd)
    assert dog.correct is False and dog.score is None and dog.detail["after"] == MAU and dog.detail["p_after"] > 0.6
    corner = lessons.check(ex, _rect(cd, (0, 0, 60, 60)), exp, lite_engine, cd)
    assert corner.correct is False and corner.detail["after"] == MAU
    too_big = lessons.check(ex, _rect(cd, (0, 0, 505, 400)), exp, lite_engine, cd)
    assert too_big.correct is False and too_big.detail["refused"]
    assert too_big.feedback == "Your mask covers 53.7% of the photo; at most 10.0% is allowed, so it was not tried."
    small = lessons.check(ex, eye[::4, ::4], exp, lite_engine, cd)  # a mask at another size maps by pixel centres
    assert small.correct


def test_choice_fixed_and_points_at(lite_engine, cd):
    ex = EX["counterfactual"]
    exp = lessons.expected(ex, lite_engine, cd)
    assert exp.answer == 1 and exp.detail["figures"]["dog"] == 0.0  # the cat's counterfactual peaks on the dog
    assert lessons.check(ex, 1, exp).correct and not lessons.check(ex, 0, exp).correct
    gc = replace(ex, method="gradcam")
    assert lessons.expected(gc, lite_engine, cd).answer == 0  # Grad-CAM of the cat points at the cat
    fixed = EX["planted-shortcut"]
    e2 = lessons.expected(fixed, lite_engine, cd)
    assert lessons.check(fixed, 0, e2).correct and lessons.check(fixed, 2, e2).score == 0.0
    with pytest.raises(ValueError, match="choose one of the 3"):
        lessons.check(fixed, 3, e2)


def test_choice_fooled_edges_beat_grad_cam_on_energy_in_the_rockets_box(lite_engine, photos):
    ex = EX["fooled-metric"]
    exp = lessons.expected(ex, lite_engine, photos["rocket.jpg"].rgb)
    f = exp.detail["figures"]
    assert exp.class_name == "missile" and exp.answer == 1
    assert f["edges"] == pytest.approx(0.178, abs=0.005) and f["gradcam"] == pytest.approx(0.137, abs=0.005)
    assert f["random"] < f["gradcam"] < f["edges"]
    assert lessons.check(ex, 1, exp).correct and not lessons.check(ex, 0, exp).correct


def test_choice_sanity_separates_grad_cam_guided_backprop_and_edges(lite_engine, cd):
    ex = EX["sanity-check"]
    seen = []
    exp = lessons.expected(ex, lite_engine, cd, progress=seen.append)
    rho = exp.detail["figures"]
    assert exp.answer == 2 and rho["edges"] == pytest.approx(1.0)
    assert abs(rho["gradcam"]) < 0.1 and 0.2 < rho["guidedbackprop"] < 0.5  # measured 0.00 and 0.33
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert lessons.check(ex, 2, exp).correct and not lessons.check(ex, 0, exp).correct
    assert lite_engine.run(cd).probs[MAU] == pytest.approx(0.3935, abs=1e-3)  # the shared engine was left alone


def test_value_prob_after_mask_and_after_the_hottest_pixels(lite_engine, cd):
    ex = EX["gray-out-the-dog"]
    exp = lessons.expected(ex, lite_engine, cd)
    assert exp.answer == pytest.approx(12.89, abs=0.05)  # p(tabby) 5.6 % → 12.9 % with the dog grayed out
    assert exp.detail["top1_after"] == MAU and exp.detail["share"] == pytest.approx(0.327, abs=0.002)
    assert lessons.check(ex, 12, exp).correct and lessons.check(ex, "14.5", exp).correct
    assert not lessons.check(ex, 5.6, exp).correct
    with pytest.raises(ValueError, match="enter a number"):
        lessons.check(ex, "lots", exp)
    hot = lessons.expected(EX["heatmap-guided-occlusion"], lite_engine, cd)
    assert hot.answer == pytest.approx(4.86, abs=0.05) and hot.detail["top1_after"] == SHEPHERD
    assert hot.detail["share"] == pytest.approx(0.10, abs=0.002)
    top1 = replace(ex, params={**ex.params, "compute": "top1_prob", "unit": "", "tolerance": 0.01})
    e3 = lessons.expected(top1, lite_engine, cd)
    assert e3.answer == pytest.approx(0.3935, abs=1e-3) and lessons.check(top1, 0.39, e3).correct


def test_expected_is_cached_per_exercise_and_pixels_and_a_check_is_cheap(lite_engine, cd):
    ex = EX["layers-edges-to-objects"]
    a = lessons.expected(ex, lite_engine, cd)
    assert lessons.expected(ex, lite_engine, cd) is a
    other = cd.copy()
    other[0, 0] ^= 1
    assert lessons.expected(ex, lite_engine, other) is not a
    assert len(lessons.CACHE) <= checks.CACHE_ENTRIES
    for e in (EX["predict-cat"], EX["counterfactual"], EX["gray-out-the-dog"]):
        lessons.expected(e, lite_engine, cd)
    t = time.process_time()
    for e, answer in ((EX["predict-cat"], CAT), (ex, "block6b_add"), (EX["counterfactual"], 1),
                      (EX["gray-out-the-dog"], 12.9)):
        lessons.check(e, answer, lessons.expected(e, lite_engine, cd))
    assert (time.process_time() - t) / 4 < 0.1


def test_the_lru_is_bounded_in_count_and_bytes():
    lru = checks._LRU(3, 100)
    for i in range(5):
        lru.put(i, i, 10)
    assert len(lru) == 3 and lru.get(0) is None and lru.get(4) == 4
    lru.put("big", "x", 95)
    assert len(lru) == 1 and lru.get("big") == "x"
