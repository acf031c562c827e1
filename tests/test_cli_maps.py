"""The command line colours a map as the pages do (``explain --out``: RISE's and occlusion's negative half on the
diverging scale, a map at the model input scaled to its 99.5th percentile), names the one flag that is out of range,
and takes occlusion wherever ``explain`` does (``sanity``, ``evaluate``)."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import ASSETS
from core.cam import methods
from core.cli import main
from core.imaging import images, render
from core.metrics import evaluation

PHOTO = str(ASSETS / "cat_and_dog.jpg")


@pytest.mark.parametrize("method,extra", [("rise", ["--masks", "64"]), ("guidedbackprop", []),
                                          ("occlusion", ["--patch", "56", "--stride", "56"]), ("gradcam", [])])
def test_the_overlay_file_is_the_pages_picture_of_the_map(method, extra, tmp_path, capsys):
    rc = main(["explain", PHOTO, "--method", method, *extra, "--out", str(tmp_path), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0
    cam = np.array(r["cam"])
    entry = methods.get(method)
    how = entry.display(cam)
    assert how["signed"] == (method in ("rise", "occlusion")) and (how["vmax"] is not None) == entry.pixels
    if method in ("rise", "occlusion"):
        assert cam.min() < 0 < cam.max()  # both signs: the diverging scale has something to show
    base = render.display_base(images.load_path(PHOTO).rgb, 1024)
    want = render.overlay(base, cam, 0.5, "jet", **how)
    got = np.asarray(Image.open(r["overlay"]).convert("RGB"))
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    if method != "gradcam":  # and not the picture the file had before: the map's own extremes, no sign
        plain = render.overlay(base, cam, 0.5, "jet")
        assert np.abs(got.astype(int) - plain).mean() > 2


@pytest.mark.parametrize("args,msg", [(["--method", "scorecam", "--top-n", "0"], "--top-n must be at least 1"),
                                      (["--method", "smoothgrad", "--samples", "0"], "--samples must be at least 1"),
                                      (["--method", "rise", "--masks", "-3"], "--masks must be at least 1"),
                                      (["--method", "occlusion", "--stride", "0"], "--stride must be at least 1")])
def test_a_flag_out_of_range_is_named_alone(args, msg, capsys):
    rc = main(["explain", PHOTO, *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"error: {msg}"


def test_sanity_and_evaluate_take_occlusion(capsys):
    rc = main(["sanity", PHOTO, "--method", "occlusion", "--final", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    r = json.loads(out.out)
    assert r["method"] == "occlusion" and len(r["steps"]) == 1
    evaluation.check(["occlusion", "gradcam", "edges"], ["localisation"])  # accepted (an unknown one raises)
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        evaluation.check(["magic"], ["localisation"])
