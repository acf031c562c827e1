"""RISE and Ablation-CAM (core/cam/perturbation.py) and the network's tail from a layer (core/engine/tail.py):
the masks as the paper's code makes them, RISE on a toy whose class lives in a known region, Ablation-CAM where
its weights are known in closed form, the tail against the full network, and both methods on every zoo model.
pytorch-grad-cam's Ablation-CAM on the same Lite0 weights is in tests/test_perturbation_peer.py."""
import numpy as np
import pytest

from core.cam import methods, perturbation
from core.cam.interface import NotApplicable
from core.engine import Engine
from core.engine.tail import NoTail, tail_of
from tests import toy_region
from tests.toys import gap_dense_model, toy_spec


@pytest.fixture(scope="module")
def toy():
    """An untrained GAP → Dense CNN on 32×32 inputs (five classes)."""
    return Engine(toy_spec(["conv1", "last"], 32), gap_dense_model(32, 5, seed=0))


def test_masks_are_the_papers_upsampled_shifted_grids():
    from scipy import ndimage

    # the upsampling: skimage.transform.resize(order=1, mode="reflect") as the paper's code calls it, which is
    # ndimage.zoom with grid_mode=True and mirrored edges
    grid = np.random.default_rng(0).random((7, 7))
    up = perturbation.resize_matrix(7, 256)
    want = ndimage.zoom(grid, 256 / 7, order=1, mode="mirror", grid_mode=True)
    np.testing.assert_allclose(up @ grid @ up.T, want, atol=1e-5)
    masks = perturbation.Masks(100, 224, seed=3)
    m = masks.take(0, 100)
    assert m.shape == (100, 224, 224) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1 + 1e-6
    assert abs(masks.grids.mean() - 0.5) < 0.03 and abs(m.mean() - 0.5) < 0.04
    assert set(np.unique(masks.shifts)) <= set(range(32)) and len(np.unique(masks.shifts)) > 20  # cell = 32 px
    i = 7  # one mask: its grid, upsampled to 8 cells, cropped at its shift
    dy, dx = masks.shifts[i]
    full = ndimage.zoom(masks.grids[i], 256 / 7, order=1, mode="mirror", grid_mode=True)
    np.testing.assert_allclose(m[i], full[dy:dy + 224, dx:dx + 224], atol=1e-5)
    # made a batch at a time, the same masks
    np.testing.assert_array_equal(np.concatenate([masks.take(s, s + 16) for s in range(0, 100, 16)]), m)
    np.testing.assert_array_equal(perturbation.Masks(100, 224, seed=3).take(0, 100), m)
    assert not np.array_equal(perturbation.Masks(100, 224, seed=4).take(0, 100), m)
    with pytest.raises(ValueError, match="at least one mask"):
        perturbation.Masks(0, 224)


def test_a_hidden_pixel_is_gray_and_for_lite0_the_input_times_the_mask(toy):
    from core import models

    m = perturbation.Masks(8, 32, seed=0).take(0, 8)
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    x = toy.prepare(rgb)
    out = perturbation.masked_inputs(x, perturbation.gray_input(toy), m)  # raw 0..255 pixels: gray, not black
    np.testing.assert_allclose(out, m[..., None] * x + (1 - m[..., None]) * 127.0, atol=1e-3)
    lite = models.get_spec("efficientnet_lite0")
    x = lite.preprocess(np.random.default_rng(2).uniform(0, 255, (1, 32, 32, 3)))
    gray = lite.preprocess(np.full((1, 1, 1, 3), 127.0))
    assert np.all(gray == 0)
    np.testing.assert_allclose(perturbation.masked_inputs(x, gray, m), m[..., None] * x, atol=1e-6)


def test_rise_is_seeded_batching_changes_nothing_and_a_stopped_run_leaves_nothing(toy):
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    seen = []
    a, passes = perturbation.rise(toy, rgb, 2, n=40, seed=5, progress=seen.append)
    assert passes == 5 and seen == [8 / 40, 16 / 40, 24 / 40, 32 / 40, 1.0]
    np.testing.assert_array_equal(perturbation.rise(toy, rgb, 2, n=40, seed=5)[0], a)
    one, passes = perturbation.rise(toy, rgb, 2, n=40, seed=5, batch=1)
    assert passes == 40
    np.testing.assert_allclose(one, a, atol=1e-6)
    assert np.abs(perturbation.rise(toy, rgb, 2, n=40, seed=6)[0] - a).max() > 0.2 * np.abs(a).max()
    # the drawn map is the paper's minus its floor: p̄ × each pixel's mask density
    raw, _ = perturbation.rise(toy, rgb, 2, n=40, seed=5, centred=False)
    masks = perturbation.Masks(40, 32, seed=5).take(0, 40)
    probs = toy.predict(perturbation.masked_inputs(toy.prepare(rgb), perturbation.gray_input(toy), masks))[:, 2]
    np.testing.assert_allclose(raw, np.tensordot(probs, masks, axes=1) / (40 * 0.5), rtol=1e-5)
    np.testing.assert_allclose(a, raw - probs.mean() * masks.sum(axis=0, dtype=np.float64) / (40 * 0.5), atol=1e-9)

    class Stop(Exception):
        pass

    def stop(f):
        if f > 0.3:
            raise Stop

    with pytest.raises(Stop):
        perturbation.rise(toy, rgb, 2, n=40, seed=5, progress=stop)
    np.testing.assert_array_equal(perturbation.rise(toy, rgb, 2, n=40, seed=5)[0], a)


@pytest.mark.slow  # trains the toy (about 10 s)
def test_rise_puts_its_mass_on_the_region_the_class_lives_in():
    """The known-region toy: the class is the colour of rows/columns 8..16 (1/16 of the picture); a distractor
    square of either colour sits elsewhere. RISE's positive mass inside the region, over the held-back pictures the
    model gets right, is ≥ 3× its area share on average (measured 5.3×) and ≥ 2.5× on each (measured ≥ 3.1×: where
    the softmax saturates, hiding part of the region costs little and the map spreads around it)."""
    engine, _model, held = toy_region.train()
    region = toy_region.region_mask()
    share = region.mean()
    fractions = []
    for rgb, cls in held[:8]:
        if engine.run(rgb).class_index != cls:
            continue
        cam = methods.compute("rise", engine.run(rgb, cls), "input", engine=engine, rgb=rgb, seed=0)
        assert cam.shape == (32, 32)
        pos = np.maximum(cam, 0)
        fractions.append(pos[region].sum() / pos.sum())
    assert len(fractions) >= 6
    assert np.mean(fractions) >= 3 * share and min(fractions) >= 2.5 * share, [round(f, 3) for f in fractions]


def _residual_toy():
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    b = layers.Conv2D(4, 3, padding="same", name="b")(a)
    s = layers.Add(name="sum")([a, b])  # a skip connection past b
    out = layers.Dense(3, name="head")(layers.GlobalAveragePooling2D()(s))
    return Engine(toy_spec(["a", "b", "sum"], 16), keras.Model(inp, out))


def test_the_tail_is_the_network_after_the_layer_and_is_refused_past_a_skip_connection():
    engine = _residual_toy()
    res = engine.run(np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8))
    for layer in ("a", "sum"):
        np.testing.assert_allclose(tail_of(engine, layer).logits(res.acts[layer][None])[0], res.logits, atol=1e-5)
    assert tail_of(engine, "a") is tail_of(engine, "a")  # built once per engine and layer
    with pytest.raises(NoTail, match="^in toy the network after b also reads layers before it"):
        tail_of(engine, "b")
    with pytest.raises(NotApplicable, match=r"^Ablation-CAM runs the network on from the chosen layer, but in toy "
                                            r"the network after b .* from that layer alone\.$"):
        methods.compute("ablationcam", res, "b", engine=engine)
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        tail_of(engine, "nope")
    with pytest.raises(ValueError, match="activations of shape"):
        tail_of(engine, "a").logits(np.zeros((1, 8, 8, 4)))


def test_an_engine_goes_with_its_tails_and_each_keeps_a_few(monkeypatch):
    import gc
    import weakref

    from core.engine import tail

    engine = _residual_toy()
    x = np.zeros((1, 16, 16, 4), np.float32)
    first = tail_of(engine, "a")
    first.logits(x)
    for layer in ("sum", "a", "sum"):
        tail_of(engine, layer)
    assert list(tail._TAILS[engine]) == ["a", "sum"]
    monkeypatch.setattr(tail, "KEPT", 1)
    with pytest.raises(NoTail):
        tail_of(engine, "b")
    tail_of(engine, "a")  # the least recently used tail goes; a refusal stays (it holds nothing)
    assert list(tail._TAILS[engine]) == ["b", "a"] and tail_of(engine, "a") is not first
    gone = weakref.ref(engine)
    del engine
    gc.collect()
    assert gone() is None and first.logits(x).shape == (1, 3)  # the tail still runs: it holds no engine


def test_ablation_cam_at_a_gap_dense_layer_is_the_closed_form(toy):
    """Before GAP → Dense the logit is linear in each channel's mean, so zeroing channel k lowers y_c by
    W_kc · mean(A^k): w_k = W_kc · mean(A^k) / y_c exactly."""
    rgb = np.random.default_rng(3).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    res = toy.run(rgb, 1)
    A = res.acts["last"].astype(np.float64)
    W = methods.dense_head(toy, "last")[:, 1]
    score, ablated, calls = perturbation.ablation_scores(toy, "last", res.acts["last"], 1)
    assert calls == 3  # 16 channels + the untouched activations, 8 a call
    np.testing.assert_allclose(score, res.logits[1], rtol=1e-5)
    np.testing.assert_allclose(score - ablated, W * A.mean(axis=(0, 1)), atol=1e-5)
    seen = []
    cam = methods.compute("ablationcam", res, "last", engine=toy, rgb=rgb, progress=seen.append)
    want = np.maximum(methods.weighted_sum(A, W * A.mean(axis=(0, 1)) / res.logits[1]), 0)
    np.testing.assert_allclose(cam, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    assert seen == [8 / 17, 16 / 17, 1.0]


def test_the_tail_reproduces_lite0s_logits(lite_engine, photos):
    res = lite_engine.run(photos["dog.jpg"].rgb)
    for layer in ("stem_activation", "block4a_project_bn", "block5c_add", "top_activation"):
        np.testing.assert_allclose(tail_of(lite_engine, layer).logits(res.acts[layer][None])[0], res.logits,
                                   atol=1e-4, err_msg=layer)


def test_the_entries_are_slow_methods_with_a_bar_and_their_own_numbers():
    rise, ablation = methods.get("rise"), methods.get("ablationcam")
    for m in (rise, ablation):
        assert m.extra_passes and m.progress and not m.live and m.needs_model and m.pages
    assert rise.layer == "input" and rise.pixels and rise.reading and "\n" not in rise.reading
    assert ablation.layer is None and not ablation.pixels
    assert [(t.name, t.default, t.flag) for t in rise.tunables] == [("masks", 1000, "--masks"), ("seed", 0, "--seed")]
    assert ablation.tunables == ()


ZOO = ["efficientnet_lite0", "efficientnet_b0", "resnet50", "mobilenet_v2", "xception", "vgg16"]


def _random_zoo_engine(name):
    """A Keras zoo model with random weights (ImageNet's are not downloaded here) through the engine. Its
    BatchNorm statistics are drawn far from Keras's initial ones too: with those, MobileNetV2's random network
    gives every input the same logits (its last activations are ~1e-11), so no map could differ anywhere."""
    from core import models

    model = models.load_model(name, weights=None)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if i in (0, 3)
                               else rng.normal(0, 0.3, w.shape).astype(np.float32)
                               for i, w in enumerate(layer.get_weights())])
    return Engine(models.get_spec(name), model)


@pytest.mark.parametrize("name", [ZOO[0]] + [pytest.param(n, marks=pytest.mark.slow) for n in ZOO[1:]])  # 15-80 s each
def test_both_methods_on_every_zoo_models_default_layer(name, lite_engine, photos):
    """Through the engine: Lite0 as the app loads it (ImageNet weights, held outside TensorFlow), the Keras zoo
    with random weights: finite maps that are not constant."""
    engine = lite_engine if name == "efficientnet_lite0" else _random_zoo_engine(name)
    rgb = photos["cat_and_dog.jpg"].rgb
    res = engine.run(rgb)
    layer = engine.spec.default_layer
    size = engine.spec.input_size
    ab = methods.compute("ablationcam", res, layer, engine=engine, rgb=rgb)
    assert ab.shape == res.acts[layer].shape[:2]
    rise = methods.compute("rise", res, layer, engine=engine, rgb=rgb, masks=64)
    assert rise.shape == (size, size)
    for cam in (ab, rise):
        assert np.isfinite(cam).all() and cam.max() > cam.min()
