"""Measurements of the offline default on the shared 400 ImageNet validation images with boxes."""
import pytest

from core.metrics import evaluation

CURVE_IMAGES = 24  # deletion/insertion on the first 24 photos by name: 42 forward passes per photo and map


def test_localisation_pointing_and_energy_on_400_images(eval_set, lite_engine):
    errors = []
    r = evaluation.evaluate_dataset(eval_set / "images", eval_set / "annotations.csv", engine=lite_engine,
                                    methods=["gradcam", "centre"], metrics=["localisation", "pointing", "energy"],
                                    on_error=errors.append)
    assert not errors and r["images"] == 400 and r["top1"] == pytest.approx(0.8375)  # 335 of 400, the README's 83.8 %
    g, c = r["methods"]["gradcam"], r["methods"]["centre"]
    assert g["loc_error"] == pytest.approx(0.442, abs=0.005)  # today's evaluate: 0.4425
    assert g["pointing"] >= 0.85
    assert g["energy"] > c["energy"]  # ImageNet objects sit near the centre: the prior is strong …
    assert g["pointing"] >= c["pointing"]  # … and Grad-CAM is not worse on the pointing game
    assert 0 < g["iou_mean"] < 1 and 0 < c["loc_error"] < 1


def test_gradcam_beats_a_random_map_on_deletion_and_insertion(eval_set, lite_engine):
    r = evaluation.evaluate_dataset(eval_set / "images", eval_set / "annotations.csv", engine=lite_engine,
                                    methods=["gradcam", "random"], metrics=["deletion", "insertion", "drop"],
                                    limit=CURVE_IMAGES)
    g, rnd = r["methods"]["gradcam"], r["methods"]["random"]
    assert r["images"] == CURVE_IMAGES
    assert g["deletion_auc"] < rnd["deletion_auc"]
    assert g["insertion_auc"] > rnd["insertion_auc"]
    assert 0 <= g["avg_drop"] <= 1 and 0 <= g["increase"] <= 1
