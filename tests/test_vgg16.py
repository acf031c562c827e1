"""VGG16 with float16 dense layers: the same network as Keras's, its kernels streamed from files or held in NumPy."""
from pathlib import Path

import numpy as np
import pytest

from core import models
from core.models import fold, vgg16
from core.engine import Engine
from tests.toys import layer_outputs


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
    ref_out, our_out = layer_outputs(reference, names, x), layer_outputs(ours, names, x)
    for a, b in zip(ref_out[:-1], our_out[:-1]):  # the convolutions are float32 and read unchanged
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)
    a, b = ref_out[-1], our_out[-1]
    tol = 1e-3 * (a.max() - a.min())
    assert np.abs(a - b).max() <= tol  # float16 dense kernels move the logits a little
    assert list(a.argmax(axis=1)) == list(b.argmax(axis=1))


def test_vgg16_engine_holds_no_weights_in_tensorflows_allocator(vgg_file):
    """fc1/fc2 (238 MB in float16) are read from their block files at each pass and the other weights
    (75 MB) are held in NumPy (core.models.held): after a pass TensorFlow's allocator, which keeps the memory
    it grew to, holds nothing of the engine, and the logits are the directly built model's."""
    import tensorflow as tf

    from core.engine.pool import release_memory

    _, path = vgg_file
    release_memory()
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    engine = Engine(models.get_spec("vgg16"), *fold.load_folded(lambda: vgg16.load(str(path))))
    x = np.random.default_rng(6).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)
    logits = engine.run_input(x).logits
    info = tf.config.experimental.get_memory_info("CPU:0")
    assert (info["current"] - before) / 2**20 < 2
    load_and_pass = (info["peak"] - before) / 2**20
    # the same pass again, on other pixels: its peak is a pass's activations, gradients and a block of rows alone
    # (146 MB here on a 2-core AVX2 machine, less where other tests ran first); loading adds nothing to it
    tf.config.experimental.reset_memory_stats("CPU:0")
    again = tf.config.experimental.get_memory_info("CPU:0")["current"]
    engine.run_input(x[:, ::-1])
    one_pass = (tf.config.experimental.get_memory_info("CPU:0")["peak"] - again) / 2**20
    assert one_pass < 250, one_pass
    assert load_and_pass < one_pass + 10, (load_and_pass, one_pass)  # loading made no copy (held: 75 MB)
    assert engine.held.nbytes / 2**20 > 70  # the convolutions and the last layer, in NumPy
    np.testing.assert_allclose(logits, np.asarray(vgg16.load(str(path))(x))[0], rtol=1e-5, atol=1e-4)


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

        from core.cam import methods

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

    from core import compat

    _, path = vgg_file
    bad = tmp_path / path.name
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as f:
        group = f["block5_conv3"]
        name = group.attrs["weight_names"][0]
        del group[name]
        group.create_dataset(name, data=np.zeros((3, 3, 512, 8), np.float32))
    pending = len(compat.deferred_variables())
    with pytest.raises(models.WeightsUnavailable) as err:
        models.load_inference("vgg16", weights=str(bad))
    assert "\n" not in str(err.value) and "wrong shape" in str(err.value)
    assert len(compat.deferred_variables()) == pending
