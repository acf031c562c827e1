"""A trained model's file: save → load gives identical logits, and anything else is refused in one sentence
without running code."""
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from core.engine import Engine
from core.models import ModelFileError, TrainedModel, load_file
from core.models.trained import HEAD_LOGITS
from core.training import DatasetError, read_zip


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 0.05, (1280, 3)).astype(np.float32)
    return TrainedModel(title="mugs", backbone="efficientnet_lite0", classes=("mine", "yours", "nobody's"),
                        weights={HEAD_LOGITS: [kernel, np.array([0.1, -0.2, 0.0], np.float32)]},
                        info={"mode": "head only"})


@pytest.fixture(scope="module")
def saved(model):
    return model.to_bytes()


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


def test_save_then_load_gives_identical_logits_and_names(model, saved, photos):
    back = load_file(saved, "mugs.keras")
    assert back.name == model.name and back.classes == model.classes and back.title == "mugs"
    assert set(back.weights) == {HEAD_LOGITS}  # the backbone is Lite0's own: only the head is kept in memory
    a, b = Engine(model.spec, model.keras_model()), Engine(back.spec, back.keras_model())
    x = np.concatenate([a.prepare(p.rgb) for p in photos.values()])
    assert np.array_equal(a.logits(x), b.logits(x))
    assert b.spec.label(2) == "nobody's" and b.spec.num_classes == 3


def test_the_file_is_a_standard_keras_file(saved, tmp_path):
    import keras

    p = tmp_path / "m.keras"
    p.write_bytes(saved)
    plain = keras.saving.load_model(p, compile=False, safe_mode=True)
    assert plain.output_shape == (None, 3)


def _rewrite(saved: bytes, change) -> bytes:
    """A copy of the ZIP with ``change(name, data) -> data`` applied to each member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(saved)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, change(info.filename, src.read(info.filename)))
    return out.getvalue()


def _config(saved, edit):
    def change(name, data):
        if name != "config.json":
            return data
        cfg = json.loads(data)
        edit(cfg)
        return json.dumps(cfg).encode()
    return _rewrite(saved, change)


def test_a_lambda_layer_is_refused_before_keras_sees_it(saved):
    def add_lambda(cfg):
        layer = cfg["config"]["layers"][-1]
        layer.update(class_name="Lambda", module="keras.layers",
                     config={"name": layer["config"]["name"], "function": {"class_name": "__lambda__",
                             "config": {"code": "print('owned')"}}})
    with pytest.raises(ModelFileError) as exc:
        load_file(_config(saved, add_lambda), "evil.keras")
    assert "Lambda" in _one_line(exc)


@pytest.mark.parametrize("module", ["os", "keras.utils", "keras.config"])
def test_code_outside_keras_layers_is_refused(saved, module):
    def foreign(cfg):
        cfg["config"]["layers"][-1]["module"] = module
    with pytest.raises(ModelFileError) as exc:
        load_file(_config(saved, foreign), "evil.keras")
    assert "outside Keras" in _one_line(exc)


def test_wrong_input_shape_is_refused(saved):
    def meta(name, data):
        if name != "gradcam_studio.json":
            return data
        m = json.loads(data)
        m["input_size"] = 160
        return json.dumps(m).encode()
    with pytest.raises(ModelFileError) as exc:
        load_file(_rewrite(saved, meta), "small.keras")
    assert "input size" in _one_line(exc)

    def shape(cfg):  # the file's own input layer says 160×160 while its description says 224
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "InputLayer":
                layer["config"]["batch_shape"] = [None, 160, 160, 3]
    with pytest.raises(ModelFileError) as exc:
        load_file(_config(saved, shape), "small.keras")
    _one_line(exc)


def test_class_names_must_match_the_head(saved):
    def meta(name, data):
        if name != "gradcam_studio.json":
            return data
        m = json.loads(data)
        m["classes"] = ["a", "b"]
        return json.dumps(m).encode()
    with pytest.raises(ModelFileError) as exc:
        load_file(_rewrite(saved, meta), "m.keras")
    assert "classes" in _one_line(exc)


@pytest.mark.parametrize("data", [
    pickle.dumps({"weights": np.zeros(3)}),
    np.random.default_rng(1).bytes(4096),
    b"",
])
def test_pickles_random_bytes_and_empty_files_are_refused(data, monkeypatch):
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("a pickle was unpickled"))
    with pytest.raises(ModelFileError) as exc:
        load_file(data, "thing.keras")
    assert "not a model saved by Grad-CAM Studio" in _one_line(exc)


def test_a_plain_keras_model_without_class_names_is_refused(tmp_path):
    import keras

    p = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(p)
    with pytest.raises(ModelFileError) as exc:
        load_file(p)
    assert "plain.keras" in _one_line(exc)


def _zip(files: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def test_dataset_zips_empty_or_with_one_class_are_refused(photos):
    jpg = (next(iter(photos.values())),)
    from core.imaging import render
    img = render.to_png(jpg[0].rgb[:64, :64])
    for data, expect in [(_zip({}), "no class folders"), (_zip({"cats/a.png": img, "cats/b.png": img}), "1 class"),
                         (b"PK\x03\x04 not really", "not a ZIP")]:
        with pytest.raises(DatasetError) as exc:
            read_zip(data)
        assert expect in _one_line(exc)


def test_dataset_zips_with_a_wrapping_folder_a_readme_or_backslashes_give_their_classes(photos):
    from core.imaging import render

    a, b = (render.to_png(p.rgb[:64, :64]) for p in list(photos.values())[:2])
    two = {"cats/1.png": a, "cats/2.png": b, "dogs/1.png": b}
    cases = {
        "plain": two,
        "wrapped": {f"data/{k}": v for k, v in two.items()},
        "wrapped, a README beside the classes": {**{f"data/{k}": v for k, v in two.items()}, "data/README.md": b"hi"},
        "wrapped, a README beside the wrapper": {**{f"data/{k}": v for k, v in two.items()}, "README.md": b"hi"},
        "backslashes (some Windows tools)": {k.replace("/", "\\"): v for k, v in two.items()},
    }
    for what, files in cases.items():
        lines = []
        ds = read_zip(_zip(files), warn=lines.append)
        assert ds.counts() == {"cats": 2, "dogs": 1}, what
        assert all("README.md" in line and "skipped" in line for line in lines), (what, lines)


def test_a_merge_past_the_class_limit_adds_nothing(photos):
    from core.training import Dataset
    from core.training.data import MAX_CLASSES, example_from_rgb

    rgbs = [p.rgb[:64, :64] for p in photos.values()]
    ds, other = Dataset(), Dataset()
    for i in range(MAX_CLASSES - 5):
        ds.add(f"k{i}", example_from_rgb(rgbs[i % len(rgbs)], f"{i}.png"))
    for i in range(8):
        other.add(f"new{i}", example_from_rgb(rgbs[i % len(rgbs)], f"n{i}.png"))
    before = ds.counts()
    with pytest.raises(DatasetError) as exc:
        ds.merge(other, warn=[].append)
    assert ds.counts() == before  # nothing added
    assert _one_line(exc) == (f"These images are in 8 new classes and there are {MAX_CLASSES - 5} already: at most "
                              f"{MAX_CLASSES} classes. Nothing was added; remove some first.")


def test_a_long_title_is_the_same_after_save_and_load(model):
    from core.models.trained import TITLE_MAX

    long = TrainedModel(title="x" * 200, backbone=model.backbone, classes=model.classes, weights=model.weights)
    back = load_file(long.to_bytes(), "long.keras")
    assert len(long.title) == TITLE_MAX and back.title == long.title and back.name == long.name


def test_overlapping_quiet_windows_restore_the_logging_and_warnings_settings():
    """Two sessions opening model files at once: the windows overlap and close in either order."""
    import logging
    import warnings

    from core.models import safefile

    keras_log = logging.getLogger("keras")
    before = (keras_log.level, list(warnings.filters))
    a, b = safefile.quiet(), safefile.quiet()
    a.__enter__()
    b.__enter__()
    assert keras_log.level == logging.CRITICAL
    a.__exit__(None, None, None)  # the first one closes first
    assert keras_log.level == logging.CRITICAL  # the other is still loading
    b.__exit__(None, None, None)
    assert (keras_log.level, list(warnings.filters)) == before
