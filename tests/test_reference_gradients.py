"""The gradient methods at the input against Captum 0.9.0 and pytorch-grad-cam 1.5.7 on the PyTorch
EfficientNet-Lite0 with the same weights: stored maps (tests/fixtures/gradients, made by
tools/reference_gradients.py), on the identical 224×224 PNGs of tests/fixtures/pgc.

The fixture keeps each peer's map as the same magnitude we draw (largest |·| over channels; |channel sum| for
integrated gradients), pooled 2×2 to 112×112 in float16. We pool ours the same way and require a correlation
≥ 0.99 (all are ≥ 0.9999 today); for integrated gradients also the sum of the attributions, which differs from
Captum's by its trapezoid weights only (31/32 at 32 steps, docs/methods.md).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from core.cam import gradients, methods
from core.imaging import images

FIX = Path(__file__).parent / "fixtures" / "gradients"
PNGS = Path(__file__).parent / "fixtures" / "pgc"
META = json.loads((FIX / "gradients_maps.json").read_text())


@pytest.fixture(scope="module")
def reference():
    with np.load(FIX / "gradients_maps.npz") as z:
        return {k: z[k].astype(np.float64) for k in z.files}


def pooled(m):
    return np.asarray(m, np.float64).reshape(112, 2, 112, 2).mean(axis=(1, 3))


@pytest.mark.parametrize("entry", META["maps"], ids=[m["key"] for m in META["maps"]])
def test_maps_agree_with_captum_and_pytorch_grad_cam(lite_engine, reference, entry):
    rgb = images.load_path(PNGS / entry["image"]).rgb
    assert rgb.shape == (224, 224, 3)  # identical pixels: nothing resizes on either side
    c = entry["class_index"]
    res = lite_engine.run(rgb)
    assert res.class_index == c
    method = entry["method"]
    if method.startswith("ig_"):
        x, base = lite_engine.prepare(rgb), gradients.baseline_input(lite_engine, rgb, entry["baseline"])
        attr = gradients.integrated_gradients(lite_engine, x, base, c, entry["steps"], points="even").attributions
        ours = gradients.sum_magnitude(attr)
        steps = entry["steps"]
        assert attr.sum() * (steps - 1) / steps == pytest.approx(entry["attribution_sum"], rel=2e-3)
        diff = lite_engine.logits(x)[0, c] - lite_engine.logits(base)[0, c]
        assert diff == pytest.approx(entry["score_difference"], rel=1e-3, abs=1e-3)
    elif method == "smoothgrad":
        ours = methods.compute("smoothgrad", res, "input", engine=lite_engine, rgb=rgb, samples=entry["samples"],
                               noise=entry["noise_percent"], seed=entry["seed"])
    elif method.startswith("gbp_"):
        ours = methods.compute("guidedbackprop", res, "input", engine=lite_engine, rgb=rgb)
    else:
        ours = methods.compute("guidedgradcam", res, entry["layer"], engine=lite_engine, rgb=rgb)
    ref = reference[entry["key"]]
    corr = np.corrcoef(pooled(ours).ravel(), ref.ravel())[0, 1]
    assert corr >= 0.99, f"{entry['key']}: correlation {corr:.4f}"


def test_fixture_covers_every_method_on_every_photo():
    seen = {(m["image"], m["method"]) for m in META["maps"]}
    for image in ("cat_and_dog.png", "coffee.png", "dog.png"):
        for method in ("ig_black", "ig_blur", "smoothgrad", "gbp_captum", "gbp_pgc", "ggc_captum"):
            assert (image, method) in seen
