"""The edges baseline (core/metrics/baselines.py): where its mass goes on a photo whose edges are known, and that
it is measured everywhere the baselines are (evaluate, sanity), a map that never changes with the model."""
import json
from pathlib import Path

import numpy as np
import pytest

from core.metrics import baselines, evaluation

ROOT = Path(__file__).resolve().parent.parent


def square_photo(size=64, lo=30, hi=220):
    rgb = np.full((size, size, 3), lo, np.uint8)
    rgb[16:48, 16:48] = hi
    return rgb


def test_edges_sit_on_the_squares_border_and_nowhere_flat():
    rgb = square_photo()
    e = baselines.edges_map(rgb, 64, 64)
    assert e.shape == (64, 64) and e.min() >= 0 and e.max() == pytest.approx(1.0)
    border = np.zeros((64, 64), bool)
    border[14:50, 14:50] = True
    border[19:45, 19:45] = False
    assert e[border].mean() > 10 * e[~border].mean()
    assert e[28:36, 28:36].max() < 1e-3 and e[:4, :4].max() < 1e-3  # flat inside and far outside
    # σ = 1 % of the shorter side: more smoothing on a larger grid, the same place
    big = baselines.edges_map(rgb, 128, 128)
    assert big.shape == (128, 128) and np.unravel_index(big.argmax(), big.shape)[0] in range(28, 100)
    assert not baselines.edges_map(np.full((20, 30, 3), 90, np.uint8), 20, 30).any()  # a flat photo: all zero


def test_baseline_by_name_needs_the_photo_for_edges():
    rgb = square_photo()
    np.testing.assert_array_equal(baselines.baseline("edges", 32, 40, rgb=rgb), baselines.edges_map(rgb, 32, 40))
    with pytest.raises(ValueError, match="needs the photo"):
        baselines.baseline("edges", 32, 32)
    assert "edges" in evaluation.method_names() and set(baselines.MODEL_FREE) == set(baselines.BASELINES)


def test_measure_photo_takes_edges_like_a_method(lite_engine, photos):
    rgb = photos["cat_and_dog.jpg"].rgb
    cls = lite_engine.run(rgb).class_index
    rec = evaluation.measure_photo(lite_engine, rgb, cls, [(0, 20, 560, 400)], methods=("gradcam", "edges"),
                                   metrics=("pointing", "energy", "deletion"), steps=5)
    assert set(rec["edges"]) == {"correct", "pointing", "energy", "deletion_auc"}
    res = lite_engine.run(rgb)
    e = evaluation.raw_map(lite_engine, rgb, res, "edges", lite_engine.spec.default_layer)
    assert e.shape == (224, 224) and e.max() == pytest.approx(1.0)
    # the photo's edges on the cat's side carry less than Grad-CAM's share of the map (measured: 0.54 vs 0.84)
    assert rec["edges"]["energy"] < rec["gradcam"]["energy"] - 0.2


def test_sanity_of_edges_on_lite0_is_unchanged_at_every_step(capsys):
    from core.cli.metric_commands import main

    assert main(["sanity", str(ROOT / "assets" / "cat_and_dog.jpg"), "--method", "edges", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "edges" and len(out["steps"]) > 10
    assert all(s["spearman"] == pytest.approx(1.0) and s["ssim"] == pytest.approx(1.0) for s in out["steps"])
