"""Grad-CAM behaviour with real numbers: CAM equivalence, a trained toy model, the cat-and-dog photo."""
import numpy as np
import pytest

from core.cam import methods
from core.imaging import render
from tests.toys import gap_dense_model, toy_spec, train_shape_model
from core.engine import Engine


def test_gradcam_equals_cam_on_a_gap_dense_head():
    model = gap_dense_model()
    engine = Engine(toy_spec(["conv1", "last"], 32), model)
    rng = np.random.default_rng(0)
    W = model.get_layer("head").get_weights()[0]  # (channels, classes)
    checked = 0
    for _ in range(4):
        rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        for c in range(W.shape[1]):
            res = engine.run(rgb, c)
            A = res.acts["last"]
            cam = np.tensordot(A, W[:, c], axes=([2], [0]))  # CAM: class weights × activations
            grad = methods.gradcam(A, res.grads["last"])
            relu_cam = np.maximum(cam, 0)
            if relu_cam.max() <= 0:
                assert grad.max() == 0
                continue
            factor = grad.max() / relu_cam.max()
            assert factor > 0
            np.testing.assert_allclose(grad, factor * relu_cam, rtol=1e-4, atol=1e-6 * relu_cam.max())
            # and the factor is exactly 1 / (h·w): the GAP's averaging
            assert factor == pytest.approx(1 / (A.shape[0] * A.shape[1]), rel=1e-4)
            checked += 1
    assert checked >= 10


def test_gradcam_of_a_trained_cnn_peaks_inside_the_shape():
    engine, held_back = train_shape_model()
    correct, inside = 0, 0
    for rgb, cls, mask in held_back:
        res = engine.run(rgb, cls)
        correct += int(np.argmax(res.probs) == cls)
        cam = render.upsample(methods.gradcam(res.acts["last"], res.grads["last"]), 64, 64)
        y, x = np.unravel_index(np.argmax(cam), cam.shape)
        inside += bool(mask[y, x])
    assert correct >= 90, f"the toy model did not learn ({correct}/100)"
    assert inside >= 90, f"Grad-CAM peak inside the shape in only {inside}/100 held-back images"


CAT_DOG_SEAM = 601  # assets/cat_and_dog.jpg: Chelsea (x < 601) beside the German shepherd (see ATTRIBUTION.md)


def _mass_left(cam, width, height, split):
    up = np.maximum(render.upsample(cam, width, height), 0)
    return up[:, :split].sum() / up.sum()


def test_cat_and_dog_maps_point_at_the_right_animal(lite_engine, photos):
    img = photos["cat_and_dog.jpg"]
    w, h = img.size
    split = CAT_DOG_SEAM
    probs = lite_engine.run(img.rgb).probs
    cat = max(range(281, 286), key=lambda i: probs[i])
    dog = 235  # German shepherd
    cat_map = methods.compute("gradcam", lite_engine.run(img.rgb, cat), "top_activation")
    dog_map = methods.compute("gradcam", lite_engine.run(img.rgb, dog), "top_activation")
    assert _mass_left(cat_map, w, h, split) > 0.75  # most of the cat map on the cat (measured: 0.89)
    assert _mass_left(dog_map, w, h, split) < 0.25  # most of the dog map on the dog (measured: 0.12 left)


def test_changing_layer_reuses_the_pass(lite_engine, photos, monkeypatch):
    """Moving the layer slider over every layer redraws from the one cached pass: the engine's network pass
    (``Engine.run_input``, behind every ``run`` the cache cannot answer) is not called again."""
    passes = []
    network_pass = lite_engine.run_input
    monkeypatch.setattr(lite_engine, "run_input", lambda *a, **kw: passes.append(1) or network_pass(*a, **kw))
    rgb = photos["dog.jpg"].rgb
    first = lite_engine.run(rgb)  # one pass, or none where an earlier test ran it
    before = len(passes)
    maps = {}
    for layer in lite_engine.layers:  # early → late, as a page's rerun asks for each
        res = lite_engine.run(rgb)
        assert res is first  # the cached result itself
        maps[layer] = methods.compute("gradcam", res, layer)
    assert len(passes) == before  # no network pass for any of the layers
    assert len({m.shape for m in maps.values()}) > 3  # the layer did change: maps at several resolutions
    assert all(np.isfinite(m).all() for m in maps.values())
    other = rgb.copy()
    other[0, 0, 0] ^= 1  # one bit: a photo the cache has not seen costs exactly one pass, so the count sees passes
    lite_engine.run(other)
    assert len(passes) == before + 1
