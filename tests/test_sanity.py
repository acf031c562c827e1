"""The sanity check and insertion on a toy CNN whose class depends only on a known region
(tests/toy_region.py), trained here."""
import numpy as np
import pytest

from core.cam import methods
from core.metrics import baselines, faithfulness, sanity
from tests.toy_region import region_mask, train


@pytest.fixture(scope="module")
def toy():
    engine, model, held = train()
    accuracy = np.mean([engine.run(rgb).class_index == cls for rgb, cls in held])
    assert accuracy >= 0.95  # the model really reads the region
    return engine, model, held


def test_insertion_of_the_true_region_is_near_its_maximum_and_beats_a_random_map(toy):
    engine, _model, held = toy
    true_auc, best, random_auc = [], [], []
    for k, (rgb, cls) in enumerate(held[:20]):
        curve = faithfulness.insertion(engine, rgb, region_mask().astype(float), cls)
        assert curve.fractions[0] == 0 and curve.fractions[-1] == 1 and len(curve.probs) == 21
        true_auc.append(curve.auc)
        best.append(curve.probs.max())
        random_auc.append(faithfulness.insertion(engine, rgb, baselines.random_map(16, 16, k), cls).auc)
    assert np.mean(true_auc) >= 0.9 * np.mean(best)  # the class comes back with the first pixels revealed
    assert np.mean(true_auc) > np.mean(random_auc) + 0.05


def test_gradcam_points_at_the_region_and_the_cascade_destroys_it(toy):
    engine, model, held = toy
    finals = []
    for rgb, cls in held[:6]:
        res = engine.run(rgb, cls)
        cam = methods.gradcam(res.acts["last"], res.grads["last"])
        y, x = np.unravel_index(np.argmax(cam), cam.shape)
        assert region_mask()[::2, ::2][y, x]  # the 16×16 map's maximum is inside the region
        before = [w.copy() for w in model.get_weights()]
        c = sanity.cascade(engine.spec, model, rgb, "gradcam", "last", cls, seed=1)
        assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the model is left alone
        assert [s.randomised_from for s in c.steps] == ["head", "last", "conv1"]
        assert c.class_index == cls and np.allclose(c.original, cam, atol=1e-5)
        assert all(-1 <= s.spearman <= 1 and -1 <= s.ssim <= 1 for s in c.steps)
        finals.append(c.steps[-1].spearman)
    assert np.mean(finals) <= 0.2, finals
    # the engine the model came with still gives the same map (a randomised copy never touches it)
    rgb, cls = held[0]
    res = engine.run_input(engine.prepare(rgb), cls)
    again = engine.run(rgb, cls)
    assert np.allclose(res.grads["last"], again.grads["last"])


def test_a_map_that_ignores_the_model_survives_the_cascade(toy):
    engine, model, held = toy
    rgb, cls = held[0]
    c = sanity.cascade(engine.spec, model, rgb, "centre", "last", cls)
    assert all(s.spearman == pytest.approx(1.0) and s.ssim == pytest.approx(1.0) for s in c.steps)


def test_block_names_follow_the_layer_names():
    assert sanity.block_of("block6d_expand_conv") == "block6d"
    assert sanity.block_of("conv5_block3_1_conv") == "conv5_block3"
    assert sanity.block_of("block_16_project") == "block_16"
    assert sanity.block_of("top_conv") == "top" and sanity.block_of("predictions") == "predictions"


def test_input_normalisation_is_not_a_block_of_the_cascade():
    """EfficientNetB0 normalises its input with a Normalization layer that has weights (mean, variance):
    re-initialising it would zero the variance and scale every input by 1e7, not randomise the model."""
    from core import models
    from core.metrics.sanity import blocks

    model = models.load_model("efficientnet_b0", weights=None)
    layers = [l for _, ls in blocks(model) for l in ls]
    assert layers and not any(l.__class__.__name__ in ("Normalization", "Rescaling") for l in layers)
    assert any(l.__class__.__name__ == "Normalization" and l.weights for l in model.layers)
