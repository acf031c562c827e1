"""BatchNorm folding, VGG16 with float16 dense layers, the engine pool and the result cache's bounds."""
from pathlib import Path

import numpy as np
import pytest

from core import fold, models, vgg16
from core.engine import Engine, PassResult
from core.pool import EnginePool


def _outputs(model, names, x):
    import keras

    multi = keras.Model(model.inputs, [model.get_layer(n).output for n in names] + [model.output])
    return [np.asarray(o) for o in multi(x, training=False)]


@pytest.mark.parametrize("name", ["efficientnet_b0", "resnet50", "mobilenet_v2", "xception"])
def test_folding_keeps_every_explainable_layer_and_the_logits(name):
    spec = models.get_spec(name)
    model = models.load_model(name, weights=None)
    rng = np.random.default_rng(1)
    n_bn = 0
    for layer in model.layers:  # BatchNorm statistics far from the identity, so folding has work to do
        if type(layer).__name__ == "BatchNormalization":
            n_bn += 1
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if i in (0, 3)
                               else rng.normal(0, 0.3, w.shape).astype(np.float32)
                               for i, w in enumerate(layer.get_weights())])
        elif type(layer).__name__ == "Normalization":  # EfficientNetB0's input statistics
            layer.set_weights([np.array([0.5, 0.4, 0.3], np.float32), np.array([0.05, 0.04, 0.06], np.float32),
                               np.array(0)])
            layer.finalize_state()
    before = [w.copy() for w in model.get_weights()]
    folded = fold.fold_batchnorm(model)
    assert n_bn > 30
    assert not [la for la in folded.layers if type(la).__name__ == "BatchNormalization"]
    x = rng.normal(0, 1, (2, spec.input_size, spec.input_size, 3)).astype(np.float32)
    for a, b in zip(_outputs(model, spec.layers, x), _outputs(folded, spec.layers, x)):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=2e-5 * float(np.abs(a).max()) + 1e-6)
    for w0, w1 in zip(before, model.get_weights()):  # the model handed in is left as it was
        np.testing.assert_array_equal(w0, w1)


def test_folding_leaves_a_batchnorm_whose_convolution_output_is_used_elsewhere():
    import keras
    from keras import layers

    inp = keras.Input((8, 8, 3))
    c = layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    b = layers.BatchNormalization(name="bn")(c)
    out = layers.Add(name="add")([b, c])  # the raw convolution is needed too: folding would change it
    model = keras.Model(inp, out)
    assert fold.foldable_pairs(model) == {}
    assert fold.fold_batchnorm(model) is model


def test_lite0_engine_runs_on_the_folded_network(lite_engine):
    assert not [la for la in lite_engine.model.layers if type(la).__name__ == "BatchNormalization"]
    assert lite_engine.model.get_layer("block2a_project_bn") is not None  # the names survive


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A VGG16 weights file in Keras's legacy layout (random values: the real file is 528 MB online)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    reference = keras.applications.VGG16(weights=None, classifier_activation=None)
    path = tmp_path_factory.mktemp("vgg") / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    return reference, path


def test_vgg16_matches_keras_applications_with_float16_dense_layers(vgg_file):
    reference, path = vgg_file
    ours = vgg16.load(str(path))
    assert [la.name for la in ours.layers[1:]] == [la.name for la in reference.layers[1:]]  # after the input
    assert sum(la.count_params() for la in ours.layers) == reference.count_params() == 138_357_544
    import h5py

    with h5py.File(path, "r") as f:  # fc1/fc2 are float16 block files next to the weights file
        for name in ("fc1", "fc2"):
            layer, stored = ours.get_layer(name), f[name][f[name].attrs["weight_names"][0]]
            assert layer.kernel_f16 is None and len(layer.block_files) == stored.shape[0] // 256
            assert all(Path(b).parent == vgg16.blocks_dir(path) / name for b in layer.block_files)
            last = np.fromfile(layer.block_files[-1], "<f2").reshape(-1, stored.shape[1])
            np.testing.assert_array_equal(last, stored[-256:].astype(np.float16))
    x = np.random.default_rng(2).uniform(-120, 130, (2, 224, 224, 3)).astype(np.float32)
    names = models.get_spec("vgg16").layers
    ref_out, our_out = _outputs(reference, names, x), _outputs(ours, names, x)
    for a, b in zip(ref_out[:-1], our_out[:-1]):  # the convolutions are float32 and read unchanged
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)
    a, b = ref_out[-1], our_out[-1]
    tol = 1e-3 * (a.max() - a.min())
    assert np.abs(a - b).max() <= tol  # float16 dense kernels move the logits a little
    assert list(a.argmax(axis=1)) == list(b.argmax(axis=1))


def test_vgg16_engine_holds_no_weights_in_tensorflows_allocator(vgg_file):
    """fc1/fc2 (238 MB in float16) are read from their block files at each pass and the other weights
    (75 MB) are held in NumPy (core.held): after a pass TensorFlow's allocator, which keeps the memory
    it grew to, holds nothing of the engine, and the logits are the directly built model's."""
    import tensorflow as tf

    from core.pool import release_memory

    _, path = vgg_file
    release_memory()
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    engine = Engine(models.get_spec("vgg16"), *fold.load_folded(lambda: vgg16.load(str(path))))
    x = np.random.default_rng(6).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)
    logits = engine.run_input(x).logits
    info = tf.config.experimental.get_memory_info("CPU:0")
    assert (info["current"] - before) / 2**20 < 2
    assert (info["peak"] - before) / 2**20 < 100  # a pass's activations, a block of rows; loading made no copy
    assert engine.held.nbytes / 2**20 > 70  # the convolutions and the last layer, in NumPy
    np.testing.assert_allclose(logits, np.asarray(vgg16.load(str(path))(x))[0], rtol=1e-5, atol=1e-4)


def test_held_weights_leave_tensorflow_alone_and_go_with_the_engine(photos):
    """Lite0 through load_inference (the app's path): its weights are in one NumPy buffer that the
    passes read in place, the model cannot be run around the engine with made-up weights, Keras's
    list of variables to initialise does not grow, and dropping the engine frees the buffer."""
    import gc
    import weakref

    import tensorflow as tf

    from core import held
    from core.pool import release_memory

    release_memory()
    pending = len(held.deferred_variables())
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    spec = models.get_spec("efficientnet_lite0")
    engine = Engine(spec, *models.load_inference(spec.name))
    res = engine.run(photos["cat.jpg"].rgb)
    assert 281 <= res.class_index <= 285  # a cat: the held weights are the real ones
    assert (tf.config.experimental.get_memory_info("CPU:0")["current"] - before) / 2**20 < 2
    assert 15 < engine.held.nbytes / 2**20 < 25
    assert len(held.deferred_variables()) == pending
    with pytest.raises(held.DetachedWeightError):
        engine.model(np.zeros((1, 224, 224, 3), np.float32))
    kernel = engine.layer_weights("predictions")[0]
    root = kernel
    while root.base is not None:
        root = root.base
    buffer = weakref.ref(root)
    del engine, res, kernel, root
    gc.collect()
    assert buffer() is None


def test_vgg16_blocks_follow_their_weights_file(vgg_file, tmp_path):
    """A changed weights file (a new download) gets new blocks, and the old ones (238 MB) go."""
    import os
    import shutil

    _, path = vgg_file
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    vgg16.load(str(copy))
    first = vgg16.blocks_dir(copy)
    assert len(list((first / "fc1").glob("*.f16"))) == 98
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    vgg16.load(str(copy))
    second = vgg16.blocks_dir(copy)
    assert second != first and len(list((second / "fc2").glob("*.f16"))) == 16 and not first.exists()


def test_vgg16_kernels_in_memory_where_no_block_file_can_be_written(vgg_file, tmp_path, monkeypatch):
    """A cache folder that cannot be written: the same network, its kernels a NumPy array that
    TensorFlow reads in place and that goes with the engine."""
    import gc
    import weakref

    reference, path = vgg_file
    streamed = vgg16.load(str(path))
    monkeypatch.setattr(vgg16, "blocks_dir", lambda weights: Path("/proc/no-such-folder"))
    model = vgg16.load(str(path))
    layer = model.get_layer("fc1")
    assert layer.block_files is None and layer.kernel_f16.dtype == np.float16
    assert layer.kernel_f16.ctypes.data % 64 == 0
    x = np.random.default_rng(5).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(streamed(x)))
    engine = Engine(models.get_spec("vgg16"), model)
    engine.run_input(x)
    kernel = weakref.ref(layer.kernel_f16)
    del model, layer, engine
    gc.collect()
    assert kernel() is None  # the compiled pass held the kernel's views; dropping the engine frees it


def test_vgg16_gradients_flow_through_the_float16_layers(vgg_file):
    import tensorflow as tf

    reference, path = vgg_file
    ours = vgg16.load(str(path))
    x = np.random.default_rng(3).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)

    def grad_and_cam(model):
        import keras

        from core import methods

        multi = keras.Model(model.inputs, [model.get_layer("block5_conv3").output, model.output])
        with tf.GradientTape() as tape:
            a, logits = multi(x, training=False)
            score = logits[:, 281]
        g = tape.gradient(score, a).numpy()
        return g, methods.gradcam(a.numpy()[0], g[0])

    (g_ref, cam_ref), (g_ours, cam_ours) = grad_and_cam(reference), grad_and_cam(ours)
    assert np.abs(g_ref).max() > 0 and cam_ref.max() > 0
    # a ReLU gate in fc1/fc2 near zero may flip, so gradients can move by a few per cent (3e-4 to 3.4e-2
    # in L2 over three random-weight seeds); the Grad-CAM map hardly does (correlation 0.9985 to 1.0)
    assert np.linalg.norm(g_ours - g_ref) <= 5e-2 * np.linalg.norm(g_ref)
    assert np.corrcoef(cam_ref.ravel(), cam_ours.ravel())[0, 1] >= 0.995


def test_damaged_vgg16_file_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = models.get_spec("vgg16")
    spec.weights_path().parent.mkdir(parents=True)
    spec.weights_path().write_bytes(b"not an HDF5 file at all")
    with pytest.raises(models.WeightsUnavailable) as err:
        models.load_model("vgg16")
    assert "\n" not in str(err.value) and "VGG16" in str(err.value)


def test_a_vgg16_file_with_a_wrong_layer_fails_in_one_sentence_and_leaves_nothing_behind(vgg_file, tmp_path):
    """The layer's values are only taken after the model is built (load_inference holds them outside
    TensorFlow): the error is still one sentence, and no deferred variable of the failed load stays
    on Keras's list, where the next StatelessScope would make it (random values in TensorFlow)."""
    import shutil

    import h5py

    from core import held

    _, path = vgg_file
    bad = tmp_path / path.name
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as f:
        group = f["block5_conv3"]
        name = group.attrs["weight_names"][0]
        del group[name]
        group.create_dataset(name, data=np.zeros((3, 3, 512, 8), np.float32))
    pending = len(held.deferred_variables())
    with pytest.raises(models.WeightsUnavailable) as err:
        models.load_inference("vgg16", weights=str(bad))
    assert "\n" not in str(err.value) and "wrong shape" in str(err.value)
    assert len(held.deferred_variables()) == pending


def test_pool_keeps_models_within_its_budget_and_a_big_one_alone():
    loads = []

    def load(name):
        loads.append(name)
        return f"engine:{name}"

    pool = EnginePool(220, load=load)  # each engine counts as its weights + 50 MB
    for name in ("efficientnet_lite0", "resnet50"):  # 68 + 148 MB fit
        assert pool.get(name) == f"engine:{name}"
    assert pool.names() == ["efficientnet_lite0", "resnet50"]
    pool.get("efficientnet_lite0")  # a hit: no load, now most recent
    assert loads.count("efficientnet_lite0") == 1
    pool.get("xception")  # 137 MB more: the least recently used (ResNet50) goes first
    assert pool.names() == ["efficientnet_lite0", "xception"]
    pool.get("mobilenet_v2")  # 64 MB more: Lite0 goes
    assert pool.names() == ["xception", "mobilenet_v2"]
    for name in ("efficientnet_lite0", "efficientnet_b0", "mobilenet_v2"):  # 68 + 70 + 64 MB fit
        pool.get(name)
    assert pool.names() == ["efficientnet_lite0", "efficientnet_b0", "mobilenet_v2"]
    pool.get("vgg16")  # 350 MB: alone
    assert pool.names() == ["vgg16"]
    pool.get("mobilenet_v2")
    assert pool.names() == ["mobilenet_v2"]
    assert pool.fits(["efficientnet_lite0", "xception"]) and not pool.fits(["resnet50", "xception"])
    assert not pool.fits(["vgg16", "mobilenet_v2"]) and pool.fits(["vgg16"])


def test_pool_reports_a_failed_load_and_stays_usable():
    def load(name):
        if name == "resnet50":
            raise models.WeightsUnavailable("no weights.")
        return name

    pool = EnginePool(220, load=load)
    pool.get("efficientnet_lite0")
    with pytest.raises(models.WeightsUnavailable):
        pool.get("resnet50")
    assert pool.names() == ["efficientnet_lite0"] and pool.get("efficientnet_lite0") == "efficientnet_lite0"


def test_result_cache_is_bounded_by_bytes_but_keeps_two(lite_engine):
    eng = Engine.__new__(Engine)  # only the cache's bookkeeping, no model
    from collections import OrderedDict

    eng._cache, eng.cache_size, eng.cache_bytes = OrderedDict(), 8, 100

    def result(nbytes):
        a = np.zeros(nbytes // 8, np.float32)
        return PassResult(np.zeros(1), np.zeros(1), 0, {"l": a}, {"l": a.copy()}, 0.0)

    for i in range(5):
        eng._store(("img", i), result(80))  # 80 bytes each: only the last two are kept
    assert list(eng._cache) == [("img", 3), ("img", 4)]
    eng.cache_bytes = 10**6
    for i in range(5, 20):
        eng._store(("img", i), result(80))
    assert len(eng._cache) == 8
    res = lite_engine.run(np.random.default_rng(4).integers(0, 256, (60, 80, 3), dtype=np.uint8))
    assert lite_engine.cache_bytes // res.nbytes >= 7  # Lite0 still keeps about eight photos


def test_room_is_made_before_a_pass_for_what_the_cache_would_drop_after_it(lite_engine):
    eng = Engine.__new__(Engine)
    from collections import OrderedDict

    eng._cache, eng.cache_size, eng.cache_bytes = OrderedDict(), 8, 100

    def result(nbytes):
        a = np.zeros(nbytes // 8, np.float32)
        return PassResult(np.zeros(1), np.zeros(1), 0, {"l": a}, {"l": a.copy()}, 0.0)

    first = result(80)
    eng._store(("img", 0, None), first)
    eng._store(("img", 0, 0), first)  # a top-1 result sits under two keys: it goes as one
    eng._store(("img", 1, None), result(80))
    eng._make_room()  # a third 80-byte result would push the first out: it goes now
    assert list(eng._cache) == [("img", 1, None)]
    eng._make_room()  # one result and the next always fit
    assert list(eng._cache) == [("img", 1, None)]
    eng.cache_bytes = 10**6
    eng._store(("img", 2, None), result(80))
    eng._make_room()
    assert len(eng._cache) == 2
    # the real engine: a third photo's pass still leaves the last two results cached
    rng = np.random.default_rng(5)
    photos = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
    saved = lite_engine.cache_bytes
    try:
        lite_engine.cache_bytes = 1  # only the two-result floor applies
        results = [lite_engine.run(p) for p in photos]
        assert lite_engine.cached(photos[1]) and lite_engine.cached(photos[2]) and not lite_engine.cached(photos[0])
        assert lite_engine.run(photos[2]) is results[2]
    finally:
        lite_engine.cache_bytes = saved


def test_a_dropped_engine_is_freed_although_its_trace_used_custom_gradients():
    """tf.custom_gradient (here behind tf.nn.silu, as in EfficientNetB0) registers each trace's gradient
    in a process-wide registry; the engine drops those registrations, so its graph and weights can go."""
    import gc
    import weakref

    import keras
    import tensorflow as tf
    from tensorflow.python.framework import ops

    from tests.toys import toy_spec

    keras.utils.set_random_seed(3)
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="silu", name="conv1")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="silu", name="last")(x)
    out = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    registered = len(ops._gradient_registry._registry)
    engine = Engine(toy_spec(["conv1", "last"], 24, "silu"), model)
    photo = np.random.default_rng(6).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    res = engine.run(photo, 2)
    engine.predict(engine.prepare(photo))
    assert len(ops._gradient_registry._registry) == registered

    # the gradients are still those of the swish network (eager tape on the same model)
    xin = tf.constant(engine.prepare(photo))
    with tf.GradientTape() as tape:
        multi = keras.Model(model.inputs, [model.get_layer("last").output, model.output])
        act, logits = multi(xin)
        score = logits[:, 2]
    np.testing.assert_allclose(res.grads["last"], tape.gradient(score, act).numpy()[0], rtol=1e-4, atol=1e-7)

    graph = weakref.ref(engine._explain._fn.get_concrete_function().graph)
    del engine, model, multi
    gc.collect()
    assert graph() is None


@pytest.mark.parametrize("name", ["efficientnet_b0", "resnet50", "mobilenet_v2", "xception"])
def test_engine_computes_what_keras_applications_imagenet_model_computes(name, tmp_path, monkeypatch):
    """Our loaded, folded model against ``keras.applications.X(weights="imagenet")`` itself, reading the
    same weights file through Keras's own loader (its download redirected to a local file). The file
    has BatchNorm and input-Normalization statistics far from the identity, so a fold or an input
    scaling that differs from Keras's shows."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format
    from keras.src.utils import file_utils

    spec = models.get_spec(name)
    ctor = getattr(keras.applications, {"efficientnet_b0": "EfficientNetB0", "resnet50": "ResNet50",
                                        "mobilenet_v2": "MobileNetV2", "xception": "Xception"}[name])
    size = (spec.input_size, spec.input_size, 3)
    rng = np.random.default_rng(4)
    source = ctor(weights=None, classifier_activation=None, input_shape=size)
    for layer in source.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if i in (0, 3)
                               else rng.normal(0, 0.3, w.shape).astype(np.float32)
                               for i, w in enumerate(layer.get_weights())])
        elif kind == "Normalization":  # EfficientNetB0's input statistics (ImageNet's, as in its file)
            layer.set_weights([np.array([0.485, 0.456, 0.406], np.float32),
                               np.array([0.229, 0.224, 0.225], np.float32) ** 2, np.array(0)])
    path = tmp_path / spec.weights_file
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    del source
    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: str(path))
    reference = ctor(weights="imagenet", classifier_activation=None, input_shape=size)
    engine = Engine(spec, *models.load_inference(name, weights=str(path)))
    assert not [la for la in engine.model.layers if type(la).__name__ == "BatchNormalization"]
    x = rng.uniform(0, 255, (1, *size)).astype(np.float32)
    expected = _outputs(reference, spec.layers, spec.preprocess(x))
    ours = engine.run_input(spec.preprocess(x))
    for layer, want in zip(spec.layers, expected[:-1]):
        np.testing.assert_allclose(ours.acts[layer], want[0], atol=1e-4 * float(np.abs(want).max()) + 1e-6)
    np.testing.assert_allclose(ours.logits, expected[-1][0], atol=1e-4 * float(np.abs(expected[-1]).max()))
