"""``python -m core evaluate DIR --ray ADDRESS`` (core/metrics/distributed.py) against the local run: a local Ray
with 2 CPUs is started here, the CLI connects to it, and its JSON, --per-image lines and error lines must equal
the local run's exactly. Also: --ray without Ray installed, and an address where no cluster answers."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--methods", "gradcam,random", "--metrics", "localisation,pointing,energy,deletion", "--steps", "5",
        "--json"]


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def address():
    """A local Ray of 2 CPUs for this module; its address for the CLI's --ray (Ray is imported here, not when the
    suite is collected: it takes a second and the fast tier never needs it)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, eval_set):
    """The first 3 shared photos (copied to a temporary folder), a file that is not an image, a missing photo and
    a bad CSV row: 4 jobs, 2 of them bad."""
    d = tmp_path_factory.mktemp("ray_set")
    (d / "images").mkdir()
    lines = (eval_set / "annotations.csv").read_text().splitlines()
    names = sorted({l.split(",")[0] for l in lines[1:]})[:3]
    for n in names:
        (d / "images" / n).write_bytes((eval_set / "images" / n).read_bytes())
    (d / "images" / "broken.jpg").write_bytes(b"not a photo")
    rows = [l for l in lines[1:] if l.split(",")[0] in names]
    (d / "boxes.csv").write_text("\n".join([lines[0], *rows, "broken.jpg,1,0,0,5,5", "gone.jpg,2,0,0,5,5",
                                            "odd.jpg,three,0,0,5,5"]) + "\n")
    return d


def test_ray_equals_the_local_run(photos, address, tmp_path):
    common = ["evaluate", str(photos / "images"), "--boxes", str(photos / "boxes.csv"), *FAST]
    on_ray = start(*common, "--ray", address, "--per-image", str(tmp_path / "ray.jsonl"))
    local = start(*common, "--per-image", str(tmp_path / "local.jsonl"))  # meanwhile (Ray's start-up waits a lot)
    on_ray, local = finish(on_ray), finish(local)
    assert local.returncode == on_ray.returncode == 1, on_ray.stderr  # the bad rows and photos: exit status 1
    assert on_ray.stderr.splitlines() == local.stderr.splitlines(), on_ray.stderr  # no Ray logs, same errors
    errors = on_ray.stderr.splitlines()
    assert len(errors) == 3 and all(e.startswith("error: ") for e in errors)
    assert "line" in errors[0] and "broken.jpg" in errors[1] and "gone.jpg" in errors[2]
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert a == b  # exactly: the same floats
    assert a["images"] == 3 and a["steps"] == 5 and set(a["methods"]) == {"gradcam", "random"}
    assert set(a["methods"]["gradcam"]) == {"loc_error", "iou_mean", "pointing", "energy", "deletion_auc"}
    rows = (tmp_path / "ray.jsonl").read_text().splitlines()
    assert rows == (tmp_path / "local.jsonl").read_text().splitlines() and len(rows) == 6
    assert [json.loads(r)["method"] for r in rows[:2]] == ["gradcam", "random"]


def test_ray_not_installed_is_one_line(monkeypatch, capsys, tmp_path):
    import argparse

    from core.cli import metric_commands

    sub = argparse.ArgumentParser().add_subparsers(dest="cmd")
    metric_commands.add_parsers(sub, "efficientnet_lite0")
    (tmp_path / "images").mkdir()  # a folder and a boxes file (the refusal comes before any photo is read)
    (tmp_path / "annotations.csv").write_text("file,class_index,x0,y0,x1,y1\n")
    args = sub.choices["evaluate"].parse_args([str(tmp_path / "images"), "--limit", "1", "--ray"])
    assert args.ray == ""  # --ray without an address: a local Ray
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed: `import ray` raises ImportError
    assert metric_commands.cmd_evaluate(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == ["error: --ray needs Ray: pip install -r requirements-ray.txt"]


def test_no_cluster_at_the_address_is_one_sentence():
    from core.metrics import distributed

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match=rf"^no Ray cluster answers at 127.0.0.1:{port} .*ray start --head"):
        distributed.check_address(f"127.0.0.1:{port}")
    distributed.check_address("auto")  # left to Ray
