"""The map methods: properties that must hold, on real and toy models, and the one interface they are registered with."""
import numpy as np
import pytest

from core.cam import methods
from core.imaging import render
from core.engine import Engine
from tests.test_gradcam_properties import CAT_DOG_SEAM, _mass_left
from tests.toys import gap_dense_model, toy_spec

GRADIENT_METHODS = list(methods.METHODS)


@pytest.fixture(scope="module")
def toy():
    model = gap_dense_model(size=32, classes=4, seed=3)
    return Engine(toy_spec(["conv1", "last"], 32), model)


def test_every_method_at_every_layer_for_any_class(lite_engine, photos):
    rgb = photos["coffee.jpg"].rgb
    for cls in (None, 1, 999):
        res = lite_engine.run(rgb, cls)
        for layer in lite_engine.layers[::4] + (lite_engine.layers[-1],):
            for m in GRADIENT_METHODS:
                cam = methods.compute(m, res, layer)
                assert cam.shape == lite_engine.layer_shape(layer)[:2]
                assert np.isfinite(cam).all() and cam.min() >= 0, (m, layer)


def test_hirescam_equals_gradcam_when_the_gradient_is_spatially_constant():
    rng = np.random.default_rng(0)
    A = rng.random((6, 5, 8))
    G = np.broadcast_to(rng.uniform(0.1, 1.0, size=8), (6, 5, 8))
    g = methods.gradcam(A, G)
    assert g.max() > 0 and (g > 0).sum() > 5  # a real map, not two zeros
    np.testing.assert_allclose(methods.hirescam(A, G), g, rtol=1e-10)
    G2 = G.copy()
    G2[0, 0] += 5.0  # once the gradient varies over positions, they differ
    assert not np.allclose(methods.hirescam(A, G2), methods.gradcam(A, G2))


def test_hirescam_xgradcam_gradcam_coincide_at_a_gap_head(lite_engine, photos):
    res = lite_engine.run(photos["dog.jpg"].rgb)
    A, G = res.acts["top_activation"], res.grads["top_activation"]
    assert np.allclose(G, G[:1, :1], rtol=1e-4, atol=1e-9)  # spatially constant
    g = methods.gradcam(A, G)
    assert g.max() > 0
    np.testing.assert_allclose(methods.hirescam(A, G), g, rtol=1e-3, atol=1e-6 * g.max())
    np.testing.assert_allclose(methods.xgradcam(A, G), g, rtol=1e-3, atol=1e-6 * g.max())


def test_gradcam_equals_cam_through_the_methods_api(toy):
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for c in range(4):
        res = toy.run(rgb, c)
        cam = methods.compute("cam", res, "last", engine=toy)
        g = methods.compute("gradcam", res, "last")
        np.testing.assert_allclose(g, cam / 256, rtol=1e-4, atol=1e-7)  # 16×16 positions


def test_cam_says_why_it_does_not_apply(toy, lite_engine, photos):
    res = toy.run(np.zeros((32, 32, 3), np.uint8), 0)
    with pytest.raises(methods.NotApplicable, match="feeds the classifier"):
        methods.compute("cam", res, "conv1", engine=toy)
    no_gap = Engine(toy_spec(["conv1", "last"], 32, gap_dense=False), toy.model)
    with pytest.raises(methods.NotApplicable, match="global-average-pooling"):
        methods.compute("cam", no_gap.run(np.zeros((32, 32, 3), np.uint8), 0), "last", engine=no_gap)
    lite = lite_engine.run(photos["dog.jpg"].rgb)
    np.testing.assert_allclose(methods.compute("cam", lite, "top_activation", engine=lite_engine),
                               methods.compute("gradcam", lite, "top_activation") * 49, rtol=1e-3, atol=1e-6)


def test_scorecam_batched_equals_unbatched(lite_engine, photos):
    rgb = photos["cat_and_dog.jpg"].rgb
    res = lite_engine.run(rgb)
    seen = []
    a, pa = methods.scorecam(lite_engine, rgb, res, "block5c_add", batch=112, progress=seen.append)
    b, pb = methods.scorecam(lite_engine, rgb, res, "block5c_add", batch=7)
    assert (pa, pb) == (1, 16) and seen == [1.0]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * a.max())


def test_scorecam_top_n_uses_only_n_channels(lite_engine, photos):
    rgb = photos["dog.jpg"].rgb
    res = lite_engine.run(rgb)
    full, p_full = methods.scorecam(lite_engine, rgb, res, "block5c_add")
    top, p_top = methods.scorecam(lite_engine, rgb, res, "block5c_add", top_n=32)
    assert p_full == 7 and p_top == 2  # 112 channels vs 32, in batches of 16
    assert top.max() > 0 and np.isfinite(top).all()
    same, _ = methods.scorecam(lite_engine, rgb, res, "block5c_add", top_n=112)
    np.testing.assert_allclose(same, full, rtol=1e-5, atol=1e-8)


def test_counterfactual_on_cat_and_dog_points_at_the_other_animal(lite_engine, photos):
    img = photos["cat_and_dog.jpg"]
    w, h = img.size
    for cls, other_side_left in ((285, False), (235, True)):  # cat → the dog's side; dog → the cat's side
        res = lite_engine.run(img.rgb, cls)
        cf = methods.compute("counterfactual", res, "top_activation")
        left = _mass_left(cf, w, h, CAT_DOG_SEAM)
        assert (left > 0.6) if other_side_left else (left < 0.4), (cls, left)


def test_eigencam_is_class_independent_and_positive_on_the_object(lite_engine, photos):
    rgb = photos["dog.jpg"].rgb
    a = methods.compute("eigencam", lite_engine.run(rgb, 235), "top_activation")
    b = methods.compute("eigencam", lite_engine.run(rgb, 1), "top_activation")
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert a.max() > 0


def test_all_zero_inputs_give_zero_maps_not_nan():
    A = np.zeros((4, 4, 3))
    G = np.zeros((4, 4, 3))
    for m in GRADIENT_METHODS:
        out = methods.METHODS[m](A, G)
        assert np.isfinite(out).all() and (out == 0).all() and render.is_empty(out), m


def test_every_method_is_one_registry_entry_with_what_it_needs():
    assert methods.names() == list(methods.REGISTRY) and methods.names(every=True) == list(methods.EVERY)
    assert set(methods.EVERY) - set(methods.REGISTRY) == {"occlusion"} and methods.EVERY["occlusion"].layer == "input"
    assert set(methods.METHODS) == {n for n, m in methods.REGISTRY.items() if not m.needs_model}
    for m in methods.EVERY.values():
        assert m.title and m.summary and m.paper and m.url.startswith("https://") and callable(m.fn), m.name
        assert not (m.extra_passes and m.live) and (m.needs_model or not m.extra_passes), m.name
        assert m.progress == m.extra_passes, m.name  # the slow ones report how far they are
    assert [m.name for m in methods.EVERY.values() if m.needs_gap_dense] == ["cam"]
    tunables = [(t.name, t.flag, t.key) for t in methods.tunables()]
    assert len({t[0] for t in tunables}) == len(tunables) and {
        ("top_n", "--top-n", "topn"), ("patch", "--patch", "patch"), ("stride", "--stride", "stride"),
        ("steps", "--steps", "steps"), ("samples", "--samples", "samples")} <= set(tunables)
    assert methods.tunables(["gradcam", "cam"]) == [] and methods.tunables(["scorecam", "scorecam"]) == [methods.TOP_N]
    assert methods.EVERY["scorecam"].page_options() == {"top_n": 256}
    with pytest.raises(ValueError, match="unknown method 'magic'; choose one of gradcam,.*occlusion"):
        methods.get("magic")


def test_every_method_runs_from_one_context(lite_engine, photos):
    rgb = photos["dog.jpg"].rgb
    res = lite_engine.run(rgb)
    for m in methods.EVERY.values():
        seen = []
        lite_engine.input_cache.clear()  # the guided gradient is kept per photo: each method from scratch
        ctx = methods.Context(res, m.layer or "top_activation", lite_engine, rgb, progress=seen.append,
                              options={"top_n": 16, "patch": 112, "stride": 112, "steps": 8, "samples": 8,
                                       "masks": 8, "unrelated": 1})
        cam = m.run(ctx)
        size = lite_engine.spec.input_size
        assert cam.shape == ((size, size) if m.pixels else (7, 7)) and np.isfinite(cam).all(), m.name
        # Score-CAM: 16 channels in one batch; occlusion: 2×2 positions of a 112-px patch in one batch; integrated
        # gradients' 8 points, SmoothGrad's 8 copies and RISE's 8 masks: one batch; Ablation-CAM: the intact
        # activations and each of the layer's 1280 channels zeroed, 8 at a time through the network's tail
        passes = -(-(1280 + 1) // 8) if m.name == "ablationcam" else 1
        assert ctx.passes == (passes if m.extra_passes else 0), (m.name, ctx.passes)
        if m.progress:  # one report per batch, rising to 1
            assert len(seen) == passes and seen[-1] == 1.0 and seen == sorted(seen), (m.name, seen[:3])
        else:
            assert seen == [], m.name
    top = methods.compute("scorecam", res, "top_activation", engine=lite_engine, rgb=rgb, top_n=16)
    np.testing.assert_allclose(top, methods.scorecam(lite_engine, rgb, res, "top_activation", top_n=16)[0])
    with pytest.raises(ValueError, match="unknown layer"):
        methods.compute("gradcam", res, "nope")


def test_a_redrawn_page_shows_grad_cam_where_the_method_cannot_be_drawn_from_the_pass(lite_engine, photos):
    res = lite_engine.run(photos["dog.jpg"].rgb)
    g = methods.gradcam(res.acts["block5c_add"], res.grads["block5c_add"])
    cam, used, why = methods.from_pass("scorecam", res, "block5c_add", lite_engine)
    assert used.name == "gradcam" and why.startswith("Score-CAM runs its own forward passes, so this page shows "
                                                     "Grad-CAM; the Explain and Compare pages run it.")
    np.testing.assert_allclose(cam, g)
    cam, used, why = methods.from_pass("cam", res, "block5c_add", lite_engine)
    assert used.name == "gradcam" and "feeds the classifier" in why and why.endswith("Showing Grad-CAM instead.")
    np.testing.assert_allclose(cam, g)
    cam, used, why = methods.from_pass("layercam", res, "block5c_add", lite_engine)
    assert used.name == "layercam" and why is None
    np.testing.assert_allclose(cam, methods.layercam(res.acts["block5c_add"], res.grads["block5c_add"]))


def test_explain_reports_a_map_with_a_place_of_its_own_there(lite_engine, photos):
    from core.cam.explain import explain, method_names

    assert method_names() == methods.names(every=True)
    rgb = photos["cat_and_dog.jpg"].rgb
    ex = explain(lite_engine, rgb, 235, "block5c_add", "occlusion", patch=112, stride=56)
    assert ex.layer == "input" and ex.cam.shape == (224, 224) and ex.class_index == 235
    ex = explain(lite_engine, rgb, 235, None, "gradcampp", patch=112)  # another method's options are ignored
    assert ex.layer == "top_activation" and ex.cam.shape == (7, 7)
    with pytest.raises(ValueError, match="unknown layer"):
        explain(lite_engine, rgb, 235, "nope", "gradcam")
