"""BatchNorm folding, the engine against Keras's own ImageNet models, and weights held outside TensorFlow."""
import numpy as np
import pytest

from core import models
from core.models import fold
from core.engine import Engine
from tests.toys import layer_outputs


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
    for a, b in zip(layer_outputs(model, spec.layers, x), layer_outputs(folded, spec.layers, x)):
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


@pytest.mark.parametrize("built", ["folded", "then folded in the buffer"])
def test_held_weights_leave_tensorflow_alone_and_go_with_the_engine(photos, built):
    """Lite0 through load_inference (the app's path: built with its BatchNorms folded), and built with them and
    folded in the weights buffer in place (what the Keras zoo's models go through): its weights are in one NumPy
    buffer that the passes read in place, the model cannot be run around the engine with made-up weights,
    Keras's list of variables to initialise does not grow, and dropping the engine frees the buffer."""
    import gc
    import weakref

    import tensorflow as tf

    from core import compat
    from core.models import held
    from core.engine.pool import release_memory

    release_memory()
    pending = len(compat.deferred_variables())
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    from core.models import lite

    spec = models.get_spec("efficientnet_lite0")
    if built == "folded":
        engine = Engine(spec, *models.load_inference(spec.name))
    else:
        engine = Engine(spec, *fold.load_folded(lambda: lite.load("imagenet")))
    res = engine.run(photos["cat.jpg"].rgb)
    assert 281 <= res.class_index <= 285  # a cat: the held weights are the real ones
    assert (tf.config.experimental.get_memory_info("CPU:0")["current"] - before) / 2**20 < 2
    assert 15 < engine.held.nbytes / 2**20 < 25
    assert len(compat.deferred_variables()) == pending
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
    expected = layer_outputs(reference, spec.layers, spec.preprocess(x))
    ours = engine.run_input(spec.preprocess(x))
    for layer, want in zip(spec.layers, expected[:-1]):
        np.testing.assert_allclose(ours.acts[layer], want[0], atol=1e-4 * float(np.abs(want).max()) + 1e-6)
    np.testing.assert_allclose(ours.logits, expected[-1][0], atol=1e-4 * float(np.abs(expected[-1]).max()))


def test_lite0_built_folded_is_bitwise_the_folded_copy_of_the_built_model(lite_engine, photos):
    """load_inference builds Lite0 with its BatchNorms already folded (a faster cold start): the same weights,
    bit for bit, and the same pass as folding the model built with BatchNorms."""
    from core.models import lite

    spec = lite_engine.spec
    assert spec.folded_builder is not None
    copy = Engine(spec, *fold.load_folded(lambda: lite.load("imagenet")))  # built, then folded
    assert [la.name for la in copy.model.layers] == [la.name for la in lite_engine.model.layers]
    for layer in copy.model.layers:
        for a, b in zip(copy.layer_weights(layer.name), lite_engine.layer_weights(layer.name)):
            np.testing.assert_array_equal(a, b)
    a, b = copy.run(photos["cat.jpg"].rgb), lite_engine.run(photos["cat.jpg"].rgb)
    np.testing.assert_array_equal(a.probs, b.probs)
    np.testing.assert_array_equal(a.grads[spec.default_layer], b.grads[spec.default_layer])
