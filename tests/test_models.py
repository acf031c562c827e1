"""The registry, offline: Keras architectures with weights=None, a cached-weights fixture, refusals."""
import dataclasses

import numpy as np
import pytest

from core import models
from core.engine import Engine


@pytest.mark.parametrize("name", [n for n, s in models.REGISTRY.items() if s.family == "keras"])
def test_keras_models_build_offline_with_their_layers(name):
    spec = models.get_spec(name)
    model = models.load_model(name, weights=None)
    assert model.output.shape[-1] == 1000
    assert model.layers[-1].activation.__name__ == "linear"  # logits, built that way (never mutated)
    shapes = models.layer_shapes(spec, model)
    sides = [s["shape"][0] for s in shapes]
    assert sides == sorted(sides, reverse=True), "layers must go early → late"
    assert model.input.shape[1] == spec.input_size


def test_engine_on_a_keras_architecture_gives_every_layer():
    spec = models.get_spec("mobilenet_v2")
    engine = Engine(spec, models.load_model(spec.name, weights=None))
    rgb = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    res = engine.run(rgb, 7)
    assert res.class_index == 7 and abs(res.probs.sum() - 1) < 1e-4
    for name in spec.layers:
        assert res.acts[name].shape == res.grads[name].shape == engine.layer_shape(name)


def test_cached_weights_file_loads_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = dataclasses.replace(models.REGISTRY["mobilenet_v2"], weights_url="http://127.0.0.1:9/unreachable.h5")
    monkeypatch.setitem(models.REGISTRY, "mobilenet_v2", spec)
    reference = models.load_model("mobilenet_v2", weights=None)
    (tmp_path / "models").mkdir()
    spec.weights_path().write_bytes(b"")  # an empty cached file counts as missing
    assert not spec.weights_cached()
    # Keras's legacy h5 layout, as its download cache holds it
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(spec.weights_path(), "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    assert spec.weights_cached()
    loaded = models.load_model("mobilenet_v2")  # weights="imagenet" → the cached file, no download
    for a, b in zip(reference.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_missing_weights_offline_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = dataclasses.replace(models.REGISTRY["resnet50"], weights_url="http://127.0.0.1:9/unreachable.h5")
    monkeypatch.setitem(models.REGISTRY, "resnet50", spec)
    seen = []
    with pytest.raises(models.WeightsUnavailable) as err:
        models.load_model("resnet50", progress=seen.append)
    msg = str(err.value)
    assert "\n" not in msg and "prefetch" in msg and models.DEFAULT_MODEL in msg


def test_unknown_model():
    with pytest.raises(models.UnknownModel, match="choose one of"):
        models.get_spec("alexnet")


def test_preprocess_modes():
    x = np.full((2, 2, 3), 255.0, np.float32)
    assert np.allclose(models.get_spec("efficientnet_lite0").preprocess(x), (255 - 127) / 128)
    assert np.allclose(models.get_spec("mobilenet_v2").preprocess(x), 1.0)
    caffe = models.get_spec("resnet50").preprocess(np.zeros((1, 1, 3), np.float32))
    assert np.allclose(caffe[0, 0], [-103.939, -116.779, -123.68])
    assert np.allclose(models.get_spec("efficientnet_b0").preprocess(x), 255.0)
