"""The evaluate and sanity commands (core/cli/metric_commands.py) as a user runs them: JSON keys, bad rows, workers."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "core.cli.metric_commands", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def boxes(tmp_path_factory, eval_set):
    """The first 3 photos' boxes, plus a bad row, a missing photo and a photo that is not an image."""
    d = tmp_path_factory.mktemp("set")
    (d / "images").mkdir()
    lines = (eval_set / "annotations.csv").read_text().splitlines()
    names = sorted({l.split(",")[0] for l in lines[1:]})[:3]
    keep = [lines[0]] + [l for l in lines[1:] if l.split(",")[0] in names]
    for n in names:
        (d / "images" / n).write_bytes((eval_set / "images" / n).read_bytes())
    (d / "images" / "broken.jpg").write_bytes(b"not a photo")
    (d / "boxes.csv").write_text("\n".join(keep + ["broken.jpg,1,0,0,5,5", "gone.jpg,2,0,0,5,5",
                                                    "odd.jpg,three,0,0,5,5"]) + "\n")
    return d


def test_evaluate_json_with_workers_equals_one_process(boxes, tmp_path):
    common = ["evaluate", str(boxes / "images"), "--boxes", str(boxes / "boxes.csv"), "--json",
              "--methods", "gradcam,random,centre", "--steps", "10"]
    one = run(*common, "--per-image", str(tmp_path / "one.jsonl"))
    two = run(*common, "--workers", "2", "--per-image", str(tmp_path / "two.jsonl"))
    assert one.returncode == two.returncode == 1, one.stderr  # bad rows and photos: reported, then exit 1
    errors = [l for l in one.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 3 and "line" in errors[0] and any("broken.jpg" in e for e in errors) \
        and any("gone.jpg" in e for e in errors)
    assert "Traceback" not in one.stderr + two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert a == b  # exactly
    for key in ("images", "top1", "top1_loc_error", "layer", "threshold", "steps", "model", "methods"):
        assert key in a
    assert a["images"] == 3 and a["steps"] == 10 and set(a["methods"]) == {"gradcam", "random", "centre"}
    assert set(a["methods"]["gradcam"]) == {"loc_error", "iou_mean", "pointing", "energy", "deletion_auc",
                                            "insertion_auc", "avg_drop", "increase"}
    assert a["top1_loc_error"] == a["methods"]["gradcam"]["loc_error"]
    rows_one = (tmp_path / "one.jsonl").read_text().splitlines()
    assert rows_one == (tmp_path / "two.jsonl").read_text().splitlines() and len(rows_one) == 9
    assert {"file", "method", "loc_error", "iou", "deletion_auc"} <= set(json.loads(rows_one[0]))


def test_evaluate_with_workers_whose_model_cannot_load_says_so_once_and_ends(boxes, tmp_path):
    """The workers load the model themselves: without its weights (none cached here, no network) the run ends with
    the one line one process gives, not workers started again and again, and stdout stays JSON-only."""
    import os

    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras")}
    for workers in ("1", "2"):
        r = subprocess.run([sys.executable, "-m", "core.cli.metric_commands", "evaluate", str(boxes / "images"),
                            "--boxes", str(boxes / "boxes.csv"), "--model", "efficientnet_b0", "--workers", workers,
                            "--json"], cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
        errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]  # (two workers: the bad row first)
        assert r.returncode == 2 and sum("needs ImageNet weights" in e for e in errors) == 1, (workers, r.stderr)
        assert "needs ImageNet weights" in errors[-1], (workers, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == "", (workers, r.stdout)


def test_evaluate_and_sanity_refuse_in_one_line(tmp_path):
    (tmp_path / "images").mkdir()  # a folder and a boxes file (the refusal comes before any photo is read)
    (tmp_path / "annotations.csv").write_text("file,class_index,x0,y0,x1,y1\n")
    r = run("evaluate", str(tmp_path / "images"), "--methods", "gradcam,nope")
    assert r.returncode == 2 and r.stderr.strip().startswith("error: unknown method 'nope'")
    assert len(r.stderr.strip().splitlines()) == 1
    r = run("sanity", str(ROOT / "assets" / "missing.jpg"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: missing.jpg")


def test_sanity_json_steps_from_the_top_block_down():
    r = run("sanity", str(ROOT / "assets" / "cat.jpg"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["method"] == "gradcam" and out["layer"] == "top_activation" and out["class_index"] == 285
    froms = [s["randomised_from"] for s in out["steps"]]
    assert froms[0] == "predictions" and froms[1] == "top" and froms[-1] == "stem" and len(froms) == 19
    assert all(-1 <= s["spearman"] <= 1 and -1 <= s["ssim"] <= 1 for s in out["steps"])
