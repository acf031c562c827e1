"""The gradient methods at the model input (core/cam/gradients.py): guided backpropagation against a hand-computed
backward pass, Guided Grad-CAM as the product it is defined to be, integrated gradients' completeness, SmoothGrad's
seeded noise, batched ≡ unbatched, the guided gradient's cache, every zoo model, and the command line's flags."""
import json

import numpy as np
import pytest

from core import models
from core.cam import gradients, methods
from core.cli import main
from core.engine import Engine
from core.imaging import images, render
from tests.conftest import ASSETS
from tests.toys import toy_spec

NEW = ("guidedbackprop", "guidedgradcam", "integratedgradients", "smoothgrad", "smoothgradcam")


def _dense_toy(activation_1, activation_2, seed=0, size=4, scale=2.5):
    """Input (size, size, 3) → Flatten → Dense 16 → act → Dense 12 → act → Dense 5, with known weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = layers.Flatten(name="flat")(inp)
    x = layers.Dense(16, name="d1")(x)
    x = activation_1(x)
    x = layers.Dense(12, name="d2")(x)
    x = activation_2(x)
    out = layers.Dense(5, name="d3")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    for name, sd in (("d1", 1.0), ("d2", scale), ("d3", 1.0)):  # d2 large enough that some units pass 6
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        layer.set_weights([rng.normal(0, sd, w.shape).astype(np.float32),
                           rng.normal(0, 0.5, b.shape).astype(np.float32)])
    return model


def assert_same_map(got, expected, rel=1e-2):
    """Batched ≡ one at a time, to 1 % of the map's L2 norm. A batch and a single input may take different CPU
    kernels (oneDNN): on an AVX2 AMD EPYC, three of the twelve inputs of a path had input gradients 0.45–0.66 % apart
    in a batch and alone (the same every run; the rest identical), as where rounding moves a ReLU6 unit across a
    kink. A point with 1.5× its weight is 3–22 % off, a path shifted by one point 31 %."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape
    off = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert off <= rel, f"{off:.2%} of the map's norm apart"


def _hand_guided(model, x, c):
    """Guided backpropagation through the dense toy by hand: each ReLU/ReLU6 passes a gradient only where its input
    is in its linear range and the gradient is positive."""
    (w1, b1), (w2, b2), (w3, _b3) = (model.get_layer(n).get_weights() for n in ("d1", "d2", "d3"))
    v = x.reshape(-1).astype(np.float64)
    h1 = v @ w1 + b1
    h2 = np.maximum(h1, 0) @ w2 + b2
    g = w3[:, c].astype(np.float64)
    g = g * ((h2 > 0) & (h2 < 6) & (g > 0))
    g = w2 @ g
    g = g * ((h1 > 0) & (g > 0))
    return (w1 @ g).reshape(x.shape), h2


def test_guided_gradient_equals_the_hand_computed_one_for_relu_and_relu6():
    from keras import layers

    model = _dense_toy(layers.ReLU(), layers.ReLU(max_value=6.0))
    engine = Engine(toy_spec(["d2"], 4), model)
    x = np.random.default_rng(1).normal(0, 1, (8, 4, 4, 3)).astype(np.float32)
    guided = engine.guided_gradient(x, 2)
    plain = engine.input_gradient(x, 2)
    pre = []
    for i in range(len(x)):
        expected, h2 = _hand_guided(model, x[i], 2)
        np.testing.assert_allclose(guided[i], expected, rtol=1e-4, atol=1e-5)
        pre.append(h2)
    pre = np.concatenate(pre)
    assert (pre > 6).any() and (pre < 0).any() and ((pre > 0) & (pre < 6)).any()  # every part of ReLU6
    assert not np.allclose(guided, plain, atol=1e-3)  # the gates changed something
    np.testing.assert_allclose(engine.input_gradient(x, 2), plain)  # the override stays inside the guided pass


def test_on_a_swish_network_guided_backprop_is_the_plain_gradient():
    from keras import layers

    model = _dense_toy(layers.Activation("swish"), layers.Activation("swish"))
    engine = Engine(toy_spec(["d2"], 4), model)
    x = np.random.default_rng(2).normal(0, 1, (2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(engine.guided_gradient(x, 1), engine.input_gradient(x, 1), rtol=1e-5, atol=1e-7)


def test_a_dropped_engine_that_guided_is_freed():
    import gc
    import weakref

    from keras import layers

    engine = Engine(toy_spec(["d2"], 4), _dense_toy(layers.ReLU(), layers.Activation("silu")))
    engine.guided_gradient(np.zeros((1, 4, 4, 3), np.float32), 0)
    graph = weakref.ref(engine._guided._fn.get_concrete_function().graph)
    del engine
    gc.collect()
    assert graph() is None


def test_the_registry_entries_say_what_the_pages_and_the_cli_need():
    for name in NEW:
        m = methods.get(name)
        assert m.title and m.summary and m.paper and m.url.startswith("https://") and m.pages
        assert m.extra_passes and m.progress and not m.live and m.needs_model
        assert m.pixels == (name != "smoothgradcam") and m.layer == ("input" if name in (
            "guidedbackprop", "integratedgradients", "smoothgrad") else None)
    assert methods.get("integratedgradients").reading and "EfficientNetB0" in methods.get("guidedbackprop").reading
    flags = {t.flag: t for t in methods.tunables()}
    assert flags["--baseline"].choices == ("black", "blur") and flags["--steps"].default == 32
    assert flags["--samples"].default == 16 and flags["--noise"].default == 15 and "--seed" in flags


def test_guided_gradcam_is_guided_backprop_times_the_upsampled_gradcam(lite_engine, photos):
    for name in ("cat_and_dog.jpg", "dog.jpg"):
        rgb = photos[name].rgb
        res = lite_engine.run(rgb)
        gb = lite_engine.guided_gradient(lite_engine.prepare(rgb), res.class_index)[0]  # uncached, its own pass
        for layer in ("top_activation", "block5c_add"):
            cam = render.upsample(methods.gradcam(res.acts[layer], res.grads[layer]), 224, 224)
            expected = np.abs(gb * cam[:, :, None]).max(axis=2)
            got = methods.compute("guidedgradcam", res, layer, engine=lite_engine, rgb=rgb)
            assert got.shape == (224, 224) and got.max() > 0
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7 * expected.max())
        np.testing.assert_allclose(methods.compute("guidedbackprop", res, "x", engine=lite_engine, rgb=rgb),
                                   np.abs(gb).max(axis=2), rtol=1e-6)


def test_the_guided_gradient_is_kept_per_photo_and_class(lite_engine, photos):
    rgb = photos["cow.jpg"].rgb
    res = lite_engine.run(rgb)
    lite_engine.input_cache.clear()
    first = methods.Context(res, "input", lite_engine, rgb)
    a = methods.get("guidedbackprop").run(first)
    again = methods.Context(res, "block5c_add", lite_engine, rgb)
    methods.get("guidedgradcam").run(again)
    assert (first.passes, again.passes) == (1, 0) and lite_engine.guided_cached(rgb, res.class_index)
    other = lite_engine.run(rgb, 1)
    assert not lite_engine.guided_cached(rgb, 1)
    b = methods.compute("guidedbackprop", other, "input", engine=lite_engine, rgb=rgb)
    assert not np.allclose(a, b)  # another class, another map
    np.testing.assert_array_equal(methods.compute("guidedbackprop", res, "input", engine=lite_engine, rgb=rgb), a)


def test_integrated_gradients_are_complete_on_a_smooth_network():
    from keras import layers

    model = _dense_toy(layers.Activation("softplus"), layers.Activation("tanh"), seed=4, scale=0.3)
    engine = Engine(toy_spec(["d2"], 4), model)
    x = np.random.default_rng(3).normal(0, 0.5, (1, 4, 4, 3)).astype(np.float32)
    base = np.zeros_like(x)
    diff = float(engine.logits(x)[0, 0] - engine.logits(base)[0, 0])
    for points in gradients.POINT_RULES:
        runs = [gradients.integrated_gradients(engine, x, base, 0, n, points=points) for n in (8, 32)]
        gaps = [abs(r.attributions.sum() - diff) / abs(diff) for r in runs]
        assert gaps[0] > gaps[1] and gaps[1] < 1e-3, (points, gaps)
        # the change read from the gradient passes' logits (float32, a graph of its own) is the forward pass's to
        # float precision, so both gaps agree to about 1e-6 of the change
        assert runs[1].change == pytest.approx(diff, rel=1e-5) and runs[1].gap == pytest.approx(gaps[1], abs=1e-5)
        assert len(runs[1].alphas) == 32 and runs[1].passes == 4


def test_trapezoid_weights_and_refusals():
    alphas, w = gradients.trapezoid(5)
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(w, [0.125, 0.25, 0.25, 0.25, 0.125])
    with pytest.raises(ValueError, match="steps must be at least 2"):
        gradients.trapezoid(1)
    with pytest.raises(ValueError, match="choose one of adaptive, even"):
        gradients.integrated_gradients(None, np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)), 0, 8, points="gauss")
    with pytest.raises(ValueError, match="choose one of black, blur"):
        gradients.baseline_input(None, np.zeros((4, 4, 3), np.uint8), "gray")
    with pytest.raises(ValueError, match="seed must be at least 0"):
        next(gradients.noise_draws(-1, 1, (2,), 1.0))


def test_adaptive_points_go_where_the_trapezoid_rule_is_off():
    alphas = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(gradients.refine(alphas, np.array([1.0, 0.1]), 3), [0.125, 0.25, 0.375])
    # an error four times as large earns the second point: (4 / 2²) = 1 ≥ 1
    np.testing.assert_allclose(gradients.refine(alphas, np.array([-4.0, 1.0]), 2), [1 / 6, 2 / 6])
    np.testing.assert_allclose(gradients.trapezoid_weights(np.array([0, 0.1, 0.4, 1.0])), [0.05, 0.2, 0.45, 0.3])


def test_adaptive_points_refine_a_known_spike():
    """A toy path whose logit climbs within the first tenth (as Lite0's from black): the adaptive rule puts most
    of its points there and its sum is much nearer the change than the even rule's with the same 32 points."""
    from scipy.special import ndtr

    class Spike:
        def scores_and_input_gradient(self, batch, class_index):
            t = batch[:, 0, 0, 0].astype(np.float64)  # x' = 0, x = 1: the point's α
            grads = np.zeros(batch.shape, np.float32)
            z = (t - 0.05) / 0.006
            grads[:, 0, 0, 0] = 2 * np.exp(-z ** 2 / 2) / (0.006 * np.sqrt(2 * np.pi))
            return 2 * ndtr(z), grads

    x, base = np.ones((1, 2, 2, 3), np.float32), np.zeros((1, 2, 2, 3), np.float32)
    even = gradients.integrated_gradients(Spike(), x, base, 0, 32, points="even")
    adaptive = gradients.integrated_gradients(Spike(), x, base, 0, 32)
    assert adaptive.passes == even.passes == 4 and len(adaptive.alphas) == 32
    assert (adaptive.alphas < 0.15).sum() > 16 and adaptive.gap < 0.01 < 0.05 < even.gap


# the relative gap |Σ attributions − (logit(photo) − logit(baseline))| / |that difference|, measured on the six
# sample photos and both baselines (docs/methods.md): 32 adaptive points 0.3–7.4 % (cow.jpg from black the worst,
# the one above 5 %), 32 evenly spaced 1–41 % (dog.jpg from black the worst), 512 evenly spaced at most 2.5 %
SAMPLES = ("cat.jpg", "cat_and_dog.jpg", "coffee.jpg", "cow.jpg", "dog.jpg", "rocket.jpg")


@pytest.mark.parametrize("baseline", gradients.BASELINES)
def test_integrated_gradients_approach_completeness_on_real_photos(lite_engine, photos, baseline):
    gaps = {"adaptive": [], "even": []}
    for name in SAMPLES:
        rgb = photos[name].rgb
        c = lite_engine.run(rgb).class_index
        x, base = lite_engine.prepare(rgb), gradients.baseline_input(lite_engine, rgb, baseline)
        diff = float(lite_engine.logits(x)[0, c] - lite_engine.logits(base)[0, c])
        assert diff > 1  # the photo scores its class well above either baseline
        for points in gaps:
            r = gradients.integrated_gradients(lite_engine, x, base, c, 32, points=points)
            assert r.passes == 4 and r.change == pytest.approx(diff, rel=1e-3, abs=1e-3)
            gaps[points].append(r.gap)
        if name in ("dog.jpg", "coffee.jpg"):  # the two farthest from completeness with even points
            assert gradients.integrated_gradients(lite_engine, x, base, c, 512, points="even").gap <= 0.05
    print(baseline, {k: [round(g, 4) for g in v] for k, v in gaps.items()})
    assert max(gaps["adaptive"]) <= 0.1 and sum(g <= 0.05 for g in gaps["adaptive"]) >= 5
    assert np.median(gaps["adaptive"]) < np.median(gaps["even"]) / 2


def test_integrated_gradients_batched_equals_one_point_at_a_time(lite_engine, photos):
    rgb = photos["dog.jpg"].rgb
    c = lite_engine.run(rgb).class_index
    x, base = lite_engine.prepare(rgb), gradients.baseline_input(lite_engine, rgb, "blur")
    attr, passes, _, _ = gradients.integrated_gradients(lite_engine, x, base, c, 12, points="even")
    alphas, w = gradients.trapezoid(12)
    mean = sum(wi * lite_engine.input_gradient(base + np.float32(a) * (x - base), c)[0].astype(np.float64)
               for a, wi in zip(alphas, w))
    assert passes == 2
    assert_same_map(attr, (x - base)[0] * mean)


def test_smoothgrad_is_seeded_batched_and_zero_noise_is_the_plain_gradient(lite_engine, photos):
    rgb = photos["cat.jpg"].rgb
    res = lite_engine.run(rgb)
    c, x = res.class_index, lite_engine.prepare(rgb)
    seen = []
    g, passes = gradients.smoothgrad(lite_engine, x, c, samples=10, noise=15, seed=7, progress=seen.append)
    assert passes == 2 and seen == [0.8, 1.0]
    sigma = 0.15 * 255 / 128
    one_by_one = np.mean([lite_engine.input_gradient(x + n, c)[0] for n in gradients.noise_draws(7, 10, x.shape[1:],
                                                                                                  sigma)], axis=0)
    assert_same_map(g, one_by_one)
    again, _ = gradients.smoothgrad(lite_engine, x, c, samples=10, noise=15, seed=7)
    np.testing.assert_array_equal(again, g)
    other, _ = gradients.smoothgrad(lite_engine, x, c, samples=10, noise=15, seed=8)
    assert np.corrcoef(other.ravel(), g.ravel())[0, 1] < 0.99
    plain, _ = gradients.smoothgrad(lite_engine, x, c, samples=3, noise=0)
    np.testing.assert_allclose(plain, lite_engine.input_gradient(x, c)[0], rtol=1e-5, atol=1e-8)


def test_smooth_gradcam_batched_equals_one_copy_at_a_time(lite_engine, photos):
    rgb = photos["coffee.jpg"].rgb
    res = lite_engine.run(rgb)
    c, x, layer = res.class_index, lite_engine.prepare(rgb), "block5c_add"
    m, passes = gradients.smooth_gradcam(lite_engine, x, c, layer, samples=3, noise=20, seed=1)
    sigma = 0.20 * 255 / 128
    copies = [lite_engine.run_input(x + n, c) for n in gradients.noise_draws(1, 3, x.shape[1:], sigma)]
    expected = np.mean([methods.gradcam(r.acts[layer], r.grads[layer]) for r in copies], axis=0)
    assert passes == 1 and m.shape == (14, 14) and m.max() > 0
    assert_same_map(m, expected)
    still, _ = gradients.smooth_gradcam(lite_engine, x, c, layer, samples=2, noise=0)
    np.testing.assert_allclose(still, methods.gradcam(res.acts[layer], res.grads[layer]), rtol=1e-4,
                               atol=1e-6 * still.max())


def _zoo_engine(name):
    spec = models.get_spec(name)
    if spec.weights_cached():
        return Engine(spec, *models.load_inference(name))
    return Engine(spec, models.load_model(name, weights=None))


@pytest.mark.parametrize("name", list(models.REGISTRY))
def test_every_new_method_on_every_zoo_model(name):
    engine = _zoo_engine(name)
    spec = engine.spec
    rgb = images.load_path(ASSETS / "cat_and_dog.jpg").rgb
    res = engine.run(rgb)
    small = {"steps": 4, "samples": 2}
    for method in NEW:
        entry = methods.get(method)
        seen = []
        m = methods.compute(method, res, spec.default_layer, engine=engine, rgb=rgb, progress=seen.append, **small)
        size = spec.input_size if entry.pixels else engine.layer_shape(spec.default_layer)[0]
        assert m.shape == (size, size) and np.isfinite(m).all() and m.min() >= 0, (name, method)
        assert m.max() > m.min() or render.is_empty(m), (name, method)  # non-constant, or empty and said so
        assert seen and seen[-1] == 1.0
    assert not render.is_empty(methods.compute("guidedbackprop", res, "input", engine=engine, rgb=rgb))
    x = engine.prepare(rgb)
    guided, plain = engine.guided_gradient(x, res.class_index), engine.input_gradient(x, res.class_index)
    same = np.allclose(guided, plain, rtol=1e-4, atol=1e-4 * np.abs(plain).max())
    assert same == (name == "efficientnet_b0")  # B0's swish has no gate; every other zoo model has ReLU or ReLU6


def test_explain_cli_takes_the_new_flags(tmp_path, capsys, lite_engine):
    photo = str(ASSETS / "dog.jpg")
    rc = main(["explain", photo, "--method", "integratedgradients", "--steps", "4", "--baseline", "blur", "--json",
               "--out", str(tmp_path)])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["method"] == "integratedgradients" and r["layer"] == "input"
    rgb = images.load_path(photo).rgb
    x, base = lite_engine.prepare(rgb), gradients.baseline_input(lite_engine, rgb, "blur")
    ig = gradients.integrated_gradients(lite_engine, x, base, r["class_index"], 4)
    assert r["notes"] == [gradients.completeness_note(ig)] and f"({ig.gap:.1%} off with 4 points" in r["notes"][0]
    for points, steps in (("even", "16"), ("adaptive", "16")):
        main(["explain", photo, "--method", "integratedgradients", "--steps", steps, "--points", points])
        out = capsys.readouterr().out
        ig = gradients.integrated_gradients(lite_engine, lite_engine.prepare(rgb),
                                            gradients.baseline_input(lite_engine, rgb, "black"), r["class_index"], 16,
                                            points=points)
        assert "  Completeness: " in out and f"({ig.gap:.1%} off with 16 points" in out, (points, out)
    assert np.array(r["cam"]).shape == (224, 224) and np.array(r["cam"]).max() > 0
    assert (tmp_path / "dog_integratedgradients_input.png").stat().st_size > 1000
    rc = main(["explain", photo, "--method", "smoothgrad", "--samples", "2", "--noise", "10", "--seed", "3", "--json"])
    a = np.array(json.loads(capsys.readouterr().out)["cam"])
    main(["explain", photo, "--method", "smoothgrad", "--samples", "2", "--noise", "10", "--seed", "4", "--json"])
    b = np.array(json.loads(capsys.readouterr().out)["cam"])
    assert rc == 0 and a.shape == (224, 224) and not np.allclose(a, b)
    rc = main(["explain", photo, "--method", "guidedgradcam", "--layer", "block5c_add", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["layer"] == "block5c_add" and np.array(r["cam"]).shape == (224, 224)
    for args, msg in ((["--steps", "1"], "--steps must be at least 2"), (["--samples", "0"], "at least 1")):
        rc = main(["explain", photo, "--method", "integratedgradients", *args])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["explain", photo, "--baseline", "gray"])
    assert "invalid choice" in capsys.readouterr().err
