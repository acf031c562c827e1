"""The training CLI contract: python -m core train DATA_DIR …, and a trained file wherever a zoo name goes."""
import json
import shutil

import numpy as np
import pytest

from core.cli import main
from test_cli import ASSETS, run_cli


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, dog_bird_other, eval_set):
    """12 images per class (copied into a temporary folder only), plus a hidden file and a text file."""
    root = tmp_path_factory.mktemp("own")
    d = dog_bird_other
    for c, name in enumerate(d["classes"]):
        (root / name).mkdir()
        for f in [f for f, y in zip(d["files"], d["labels"]) if y == c][:12]:
            shutil.copy(eval_set / "images" / f, root / name / f)
    (root / "dog" / ".DS_Store").write_bytes(b"\0\0")
    (root / "bird" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def trained_file(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "pets.keras"
    p = run_cli("train", str(data_dir), "--out", str(out), "--json", "--seed", "3")
    return p, out


def test_train_json_strengths_then_a_summary(trained_file):
    p, out = trained_file
    assert p.returncode == 0, p.stderr
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    *strengths, last = lines
    # one line per regularisation strength, strongest first, each its 5-fold cross-validation over all 36 images
    assert [s["l2"] for s in strengths] == [1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5]
    for s in strengths:
        assert s["phase"] == "regularisation" and s["images"] == 36 and 0 <= s["right"] <= 36
        assert s["accuracy"] == s["right"] / 36 and np.isfinite(s["loss"]) and s["iterations"] > 0
    assert last["classes"] == ["bird", "dog", "other"]  # index order: the folders sorted by name
    assert last["mode"] == "head only" and last["evaluation"] == "cross-validation" and last["folds"] == 5
    assert last["train_images"] == 36 and last["val_images"] == 0 and last["accuracy_images"] == 36
    best = min(strengths, key=lambda s: s["loss"])  # the strength of lowest held-out loss is chosen
    assert last["l2"] == best["l2"] and last["accuracy"] == last["cv_accuracy"] == best["accuracy"]
    lo, hi = last["accuracy_interval"]
    assert lo < last["accuracy"] < hi and last["val_accuracy"] is None and last["epochs"] == 0
    assert last["features_seconds"] > 0 and last["train_seconds"] > 0 and last["out"] == str(out) and out.exists()
    assert last["model"].startswith("trained-")
    # hidden files and non-images: one warning line each, on stderr
    warnings = [l for l in p.stderr.splitlines() if l.startswith("warning:")]
    assert any(".DS_Store" in w and "hidden" in w for w in warnings)
    assert any("notes.txt" in w and "not an image" in w for w in warnings)
    assert "Traceback" not in p.stderr


def test_explain_and_models_take_the_trained_file(trained_file, data_dir, capsys):
    p, out = trained_file
    dog = sorted((data_dir / "dog").glob("*.JPEG"))[0]
    assert main(["explain", str(dog), str(ASSETS / "cat.jpg"), "--model", str(out), "--json", "--method", "cam"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["model"].startswith("trained-") and r["method"] == "cam" for r in recs)
    assert all(0 <= r["class_index"] < 3 for r in recs)
    assert {t["label"] for t in recs[0]["top_k"]} == {"bird", "dog", "other"}  # top-5 clipped to its 3 classes
    assert recs[0]["class_label"] == "dog" and np.array(recs[0]["cam"]).shape == (7, 7)
    assert main(["models", "--model", str(out), "--json"]) == 0
    desc = next(iter(json.loads(capsys.readouterr().out).values()))
    assert desc["classes"] == ["bird", "dog", "other"] and desc["input_size"] == 224
    assert desc["layers"][-1] == {"name": "top_activation", "shape": [7, 7, 1280]}
    assert main(["explain", str(dog), "--model", str(out), "--class", "3"]) == 2
    assert capsys.readouterr().err.strip() == "error: --class 3 is outside 0..2"


def test_too_few_classes_or_images_and_foreign_files_are_one_line_errors(tmp_path, data_dir, capsys):
    one = tmp_path / "one"
    shutil.copytree(data_dir / "dog", one / "dog")
    assert main(["train", str(one)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: Training needs at least 2 classes")
    few = tmp_path / "few"
    shutil.copytree(data_dir / "dog", few / "dog")
    (few / "cat").mkdir()
    shutil.copy(ASSETS / "cat.jpg", few / "cat" / "cat.jpg")
    assert main(["train", str(few)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: Every class needs at least 2 images; 'cat' has 1."
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"\x80\x04\x95 a pickle")
    assert main(["explain", str(ASSETS / "cat.jpg"), "--model", str(fake)]) == 2
    err = capsys.readouterr().err
    assert "not a model saved by Grad-CAM Studio" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_train_text_output_says_what_the_accuracy_was_measured_on(data_dir, tmp_path):
    out = tmp_path / "text.keras"
    p = run_cli("train", str(data_dir), "--out", str(out), "--seed", "3")
    assert p.returncode == 0 and out.exists(), p.stderr
    lines = p.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:6]] == ["λ 1", "λ 0.1", "λ 0.01", "λ 0.001", "λ 1e-4", "λ 1e-5"]
    assert all("of 36 images" in line and "held-out loss" in line for line in lines[:6])
    assert lines[-1].startswith("3 classes (bird, dog, other), 36 images, λ ")
    assert "5-fold cross-validation on 36 images: accuracy " in lines[-1] and "95 % interval" in lines[-1]
