"""Our CAM family against pytorch-grad-cam (PyPI grad-cam 1.5.7) on the PyTorch EfficientNet-Lite0 with the
same weights: stored maps (tests/fixtures/pgc), computed on identical 224×224 PNG pixels.

The fixture keeps the library's output (min–max scaled, 224×224) pooled 2×2 to 112×112 as float16. We scale
and upsample our raw maps the same way and require a correlation ≥ 0.999 (all are ≥ 0.9999 today), at the head (7×7×1280) and at the
end of the 14×14×112 stage (`block5c_add`, lukemelas block 10), where the methods really differ. Score-CAM at the head
is stored for one photo (it takes pytorch-grad-cam about 3 minutes a photo there).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from core.cam import methods
from core.imaging import images, render

FIX = Path(__file__).parent / "fixtures" / "pgc"
META = json.loads((FIX / "pgc_maps.json").read_text())
LAYERS = {"head": "top_activation", "block10": "block5c_add"}


def scaled(cam):
    c = np.maximum(cam, 0)
    c = c - c.min()
    return c / (c.max() + 1e-7)


def as_fixture(cam):
    return render.upsample(scaled(cam), 224, 224).reshape(112, 2, 112, 2).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def reference():
    with np.load(FIX / "pgc_maps.npz") as z:
        return {k: z[k].astype(np.float64) for k in z.files}


@pytest.mark.parametrize("entry", META, ids=[m["key"] for m in META])
def test_maps_agree_with_pytorch_grad_cam(lite_engine, reference, entry):
    img = images.load_path(FIX / entry["image"])
    assert img.rgb.shape == (224, 224, 3)  # identical pixels: nothing resizes on either side
    res = lite_engine.run(img.rgb, entry["class_index"])
    assert res.class_index == int(np.argmax(lite_engine.run(img.rgb).probs)) == entry["class_index"]
    layer = LAYERS[entry["layer"]]
    ref = reference[entry["key"]]
    if entry["method"] == "eigencam":
        # pytorch-grad-cam leaves the SVD's sign to LAPACK; we orient it by the mean activation
        proj = methods.principal_projection(res.acts[layer])
        corr = max(np.corrcoef(as_fixture(s * proj).ravel(), ref.ravel())[0, 1] for s in (1, -1))
    else:
        ours = methods.compute(entry["method"], res, layer, engine=lite_engine, rgb=img.rgb)
        corr = np.corrcoef(as_fixture(ours).ravel(), ref.ravel())[0, 1]
    assert corr >= 0.999, f"{entry['key']}: correlation {corr:.3f}"


def test_fixture_covers_every_method_at_both_layers():
    seen = {(m["method"], m["layer"]) for m in META}
    for m in ("gradcam", "gradcampp", "layercam", "hirescam", "xgradcam", "eigencam"):
        assert {(m, "head"), (m, "block10")} <= seen
    assert {("scorecam", "block10"), ("scorecam", "head")} <= seen
