"""The CLI contract: python -m core models | explain | prefetch | evaluate (bench: tests/test_bench.py)."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import models
from core.cli import main

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_explain_batch_json_lines_with_bad_inputs_goes_on(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    p = run_cli("explain", str(ASSETS / "cat.jpg"), str(bad), str(tmp_path / "missing.jpg"), str(ASSETS / "dog.jpg"),
                "--json", "--top-k", "3")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr + p.stdout
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert [Path(r["image"]).name for r in lines] == ["cat.jpg", "notes.png", "missing.jpg", "dog.jpg"]
    good = lines[0]
    assert set(good) >= {"image", "model", "layer", "method", "class_index", "top_k", "cam", "seconds", "class_prob"}
    assert good["model"] == "efficientnet_lite0" and good["layer"] == "top_activation" and good["method"] == "gradcam"
    assert np.array(good["cam"]).shape == (7, 7) and np.isfinite(good["cam"]).all()
    assert len(good["top_k"]) == 3 and good["top_k"][0]["index"] == good["class_index"]
    assert good["class_prob"] == pytest.approx(good["top_k"][0]["prob"])
    for r in lines[1:3]:
        assert set(r) == {"image", "error"} and "\n" not in r["error"]
    assert lines[3]["class_index"] == 235


def test_explain_targets_layer_and_overlays(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    csv.write_text("file,class_index\ncat_and_dog.jpg,235\ncat.jpg,281\n")
    rc = main(["explain", str(ASSETS / "cat_and_dog.jpg"), str(ASSETS / "cat.jpg"), "--targets", str(csv),
               "--layer", "block5c_add", "--json", "--out", str(tmp_path / "out")])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0
    assert [r["class_index"] for r in out] == [235, 281]
    assert all(np.array(r["cam"]).shape == (14, 14) for r in out)
    assert all(Path(r["overlay"]).stat().st_size > 1000 for r in out)


@pytest.mark.parametrize("args,msg", [
    (["--class", "1000"], "outside 0..999"),
    (["--layer", "nope"], "unknown layer"),
    (["--model", "alexnet"], "unknown model"),
    (["--method", "magic"], "unknown method"),
    (["--top-k", "0"], "--top-k"),
])
def test_explain_bad_options_one_line(args, msg, capsys):
    rc = main(["explain", str(ASSETS / "cat.jpg"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_bad_targets_file(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    csv.write_text("name,label\nx,1\n")
    assert main(["explain", str(ASSETS / "cat.jpg"), "--targets", str(csv)]) == 2
    assert "file,class_index" in capsys.readouterr().err


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == set(models.REGISTRY)
    lite = d["efficientnet_lite0"]
    assert lite["input_size"] == 224 and lite["weights"] == "cached"
    assert lite["layers"][-1] == {"name": "top_activation", "shape": [7, 7, 1280]}
    assert d["xception"]["input_size"] == 299
    assert len(d["efficientnet_b0"]["layers"]) == 18


def test_prefetch_without_network_is_one_sentence(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = dataclasses.replace(models.REGISTRY["mobilenet_v2"], weights_url="http://127.0.0.1:9/none.h5")
    monkeypatch.setitem(models.REGISTRY, "mobilenet_v2", spec)
    assert main(["prefetch", "--model", "mobilenet_v2", "--model", "efficientnet_lite0"]) == 1
    cap = capsys.readouterr()
    assert "cannot be reached" in cap.err and "Traceback" not in cap.err
    assert "efficientnet_lite0: ready" in cap.out
    assert not list((tmp_path / "models").glob("*"))  # nothing half-downloaded left behind


def test_explain_with_a_mask_and_occlusion_method(tmp_path, capsys):
    from PIL import Image

    mask = Image.new("L", (94, 40), 0)
    mask.paste(255, (61, 0, 94, 40))  # the dog's side of the cat-and-dog photo, at a tenth of its size
    mask.save(tmp_path / "dog.png")
    photo = str(ASSETS / "cat_and_dog.jpg")
    rc = main(["explain", photo, "--class", "235", "--mask", str(tmp_path / "dog.png"), "--fill", "blur", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["fill"] == "blur" and 0.3 < r["mask_fraction"] < 0.4
    assert r["class_prob"] < 0.1 * r["original_class_prob"]
    assert np.array(r["cam"]).shape == (7, 7)
    rc = main(["explain", photo, "--method", "occlusion", "--patch", "56", "--stride", "28", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["method"] == "occlusion" and r["layer"] == "input"
    assert np.array(r["cam"]).shape == (224, 224)
    rc = main(["explain", photo, "--mask", str(tmp_path / "missing.png")])
    assert rc == 2 and "cannot read mask" in capsys.readouterr().err
    (tmp_path / "bad.png").write_text("nope")
    rc = main(["explain", photo, "--mask", str(tmp_path / "bad.png"), "--json"])
    assert rc == 1 and "error" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("layer,shape", [("top_activation", (7, 7)), ("block5c_add", (14, 14))])
def test_every_method_through_the_cli(layer, shape, capsys):
    from core.cam import methods

    for name in methods.names():
        if methods.get(name).layer is not None and layer != "top_activation":
            continue  # a map with a place of its own (the input) ignores the layer: once is enough
        # small settings for the methods with passes of their own (their defaults: bench --json and their own tests)
        args = ["explain", str(ASSETS / "cat_and_dog.jpg"), "--method", name, "--layer", layer, "--json",
                "--top-n", "16", "--masks", "200", "--steps", "8", "--samples", "4"]
        rc = main(args)
        r = json.loads(capsys.readouterr().out)
        if name == "cam" and layer != "top_activation":
            assert rc == 1 and "feeds the classifier" in r["error"]
            continue
        entry = methods.get(name)  # a map at the input: the input's place and size (Guided Grad-CAM: the layer's)
        assert rc == 0 and r["method"] == name and r["layer"] == (entry.layer or layer), name
        cam = np.array(r["cam"])
        assert cam.shape == ((224, 224) if entry.pixels else shape), name
        assert np.isfinite(cam).all() and (cam.min() >= 0 or entry.signed) and cam.max() > 0, name


def test_help_and_readme_describe_every_part_of_core(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    packages = sorted(p.name for p in (ROOT / "core").iterdir() if (p / "__init__.py").exists())
    modules = sorted(p.stem for p in (ROOT / "core").glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert packages == ["cam", "cli", "engine", "imaging", "lessons", "live", "metrics", "models", "store", "training"]
    assert modules == ["compat", "safetext", "view"]
    for part in packages + modules:
        assert f"core.{part} " in out, part
        assert f"  {part}/ " in layout or f"  {part}.py " in layout, part


def test_the_library_imports_no_browser_and_no_streamlit_and_bench_lives_outside_it():
    for path in (ROOT / "core").rglob("*.py"):
        text = path.read_text()
        assert "playwright" not in text and "import streamlit" not in text, path
    assert not list((ROOT / "core").rglob("*bench*.py"))
    import bench

    assert Path(bench.__file__).parent == ROOT / "bench"
