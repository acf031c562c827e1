"""Our metrics against Quantus 0.6.0 (an independent implementation) on the same maps and photos: the
figures in tests/fixtures/quantus_reference.json, and Quantus's whole randomisation test (``MPRT``) on a toy
CNN in tests/fixtures/quantus_mprt.json, made by tools/quantus_reference.py (its docstring says how, and where
the definitions differ)."""
import base64
import json
from pathlib import Path

import numpy as np
import pytest

from core.imaging import images, render
from core.metrics import faithfulness, localisation, sanity, similarity
from core.metrics import boxes as bx

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "quantus_reference.json").read_text())
MPRT = json.loads((Path(__file__).parent / "fixtures" / "quantus_mprt.json").read_text())


def test_deletion_insertion_pointing_and_energy_match_quantus(eval_set, lite_engine):
    boxes = bx.read_boxes(eval_set / "annotations.csv")
    steps = FIXTURE["steps"]
    assert len(FIXTURE["images"]) == 3
    for ref in FIXTURE["images"]:
        img = images.load_path(eval_set / "images" / ref["file"])
        cls, gt = boxes[ref["file"]]
        assert cls == ref["class_index"]
        cam = np.array(ref["cam"], np.float32)
        d, i = faithfulness.curves(lite_engine, img.rgb, cam, cls, steps)
        # Quantus's curve starts after the first step; ours has the point at 0 too
        assert np.allclose(d.probs[1:], ref["deletion_curve"], atol=1e-3)
        assert np.allclose(i.probs[1:], ref["insertion_curve"], atol=1e-3)
        assert d.auc == pytest.approx(np.trapezoid([d.probs[0], *ref["deletion_curve"]]) / steps, abs=1e-3)
        assert i.auc == pytest.approx(np.trapezoid([i.probs[0], *ref["insertion_curve"]]) / steps, abs=1e-3)
        w, h = img.size
        cam_up = render.upsample(cam, w, h)
        assert localisation.pointing(cam_up, gt) == ref["pointing"]
        assert localisation.energy(cam_up, gt) == pytest.approx(ref["energy"], abs=1e-3)


def test_spearman_matches_quantus_and_ssim_matches_scikit_image():
    for pair in FIXTURE["similarity"]:
        a = render.upsample(np.array(pair["original"], np.float32), 224, 224).astype(np.float64)
        b = render.upsample(np.array(pair["cam"], np.float32), 224, 224).astype(np.float64)
        assert similarity.spearman(a, b) == pytest.approx(pair["quantus_spearman"], abs=1e-3)
        ours = similarity.ssim(similarity.unit(a), similarity.unit(b))
        assert ours == pytest.approx(pair["skimage_gaussian_ssim"], abs=1e-3)
        # Quantus's own SSIM (scikit-image defaults: a 7×7 uniform window) is another definition: same sign,
        # not the same number
        assert abs(ours - pair["quantus_ssim"]) < 0.1


def _array(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["b64"]), d["dtype"]).reshape(d["shape"]).copy()


@pytest.fixture(scope="module")
def mprt_model():
    """The toy CNN Quantus's MPRT ran on, with the weights it was trained to (stored in the fixture)."""
    from tests import toy_region

    model = toy_region.build("blocks")
    model.set_weights([_array(w) for w in MPRT["weights"]])
    return toy_region.spec("blocks"), model


def test_the_cascade_with_quantus_randomisation_gives_quantus_mprt_scores(mprt_model):
    """Quantus's MPRT end to end (its permutation, one layer a step, top down; the clone given the trained
    weights) against our cascade with ``permuting`` and ``per_layer``: the same Spearman at every step."""
    spec, model = mprt_model
    layers = ["predictions", "block2_conv2", "block2_conv1", "block1_conv2", "block1_conv1"]
    assert MPRT["layers"] == layers and MPRT["quantus_version"] == "0.6.0"
    compared = empty = 0
    for ref in MPRT["images"]:
        rgb = _array(ref["rgb"])
        c = sanity.cascade(spec, model, rgb, "gradcam", MPRT["layer"], ref["class_index"],
                           reinit=sanity.permuting(MPRT["seed"]), per_layer=True)
        # the same Grad-CAM as the reference's own (tf.GradientTape, tf.image.resize), at the input's 32×32
        theirs = _array(ref["original_map"])
        assert np.allclose(render.upsample(c.original, 32, 32), theirs, atol=1e-4 * theirs.max())
        assert ref["quantus"]["original"] == pytest.approx(1.0)
        assert [s.randomised_from for s in c.steps] == layers and all(len(s.layers) == 1 for s in c.steps)
        for s in c.steps:
            q = ref["quantus"][s.randomised_from]
            if q is None:  # Quantus's NaN: no positive value left in its map; ours says empty and 0
                assert render.is_empty(s.cam) and s.spearman == 0.0
                empty += 1
            else:
                assert s.spearman == pytest.approx(q, abs=1e-4), (s.randomised_from, s.spearman, q)
                compared += 1
    assert compared >= 10 and empty <= 5


def test_the_comparison_tells_randomisations_apart(mprt_model):
    """Our own re-initialisation (Glorot-uniform, zero biases) is another randomisation: it does not give
    Quantus's figures, and by blocks the toy has three steps, not five."""
    spec, model = mprt_model
    ref = MPRT["images"][0]
    before = [w.copy() for w in model.get_weights()]
    c = sanity.cascade(spec, model, _array(ref["rgb"]), "gradcam", MPRT["layer"], ref["class_index"],
                       seed=MPRT["seed"], per_layer=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the model is left alone
    assert max(abs(s.spearman - ref["quantus"][s.randomised_from]) for s in c.steps) > 0.1
    blocks = sanity.cascade(spec, model, _array(ref["rgb"]), "gradcam", MPRT["layer"], ref["class_index"])
    assert [s.randomised_from for s in blocks.steps] == ["predictions", "block2", "block1"]


def test_permuting_is_quantus_permutation():
    """``np.random.seed(seed + 1)`` and ``np.random.permutation`` of each weight array, as in Quantus 0.6.0."""
    class Layer:
        def get_weights(self):
            return [np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4), np.arange(4.0)]

    state = np.random.get_state()
    np.random.seed(42 + 1)
    expected = [np.random.permutation(w) for w in Layer().get_weights()]
    np.random.set_state(state)
    got = sanity.permuting(42)(Layer(), np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert not np.array_equal(got[0], Layer().get_weights()[0])  # seed 43 moves the kernel's rows
