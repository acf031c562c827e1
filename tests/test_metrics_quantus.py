"""Our metrics against Quantus 0.6.0 (an independent implementation) on the same maps and photos: the
figures in tests/fixtures/quantus_reference.json, made by tools/quantus_reference.py (its docstring says how,
and where the definitions differ)."""
import json
from pathlib import Path

import numpy as np
import pytest

from core.imaging import images, render
from core.metrics import faithfulness, localisation, similarity

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "quantus_reference.json").read_text())
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-val-loc"


def test_deletion_insertion_pointing_and_energy_match_quantus(lite_engine):
    boxes = localisation.read_boxes(DATA / "annotations.csv")
    steps = FIXTURE["steps"]
    assert len(FIXTURE["images"]) == 3
    for ref in FIXTURE["images"]:
        img = images.load_path(DATA / "images" / ref["file"])
        cls, gt = boxes[ref["file"]]
        assert cls == ref["class_index"]
        cam = np.array(ref["cam"], np.float32)
        d, i = faithfulness.curves(lite_engine, img.rgb, cam, cls, steps)
        # Quantus's curve starts after the first step; ours has the point at 0 too
        assert np.allclose(d.probs[1:], ref["deletion_curve"], atol=1e-3)
        assert np.allclose(i.probs[1:], ref["insertion_curve"], atol=1e-3)
        assert d.auc == pytest.approx(np.trapezoid([d.probs[0], *ref["deletion_curve"]]) / steps, abs=1e-3)
        assert i.auc == pytest.approx(np.trapezoid([i.probs[0], *ref["insertion_curve"]]) / steps, abs=1e-3)
        w, h = img.size
        cam_up = render.upsample(cam, w, h)
        assert localisation.pointing(cam_up, gt) == ref["pointing"]
        assert localisation.energy(cam_up, gt) == pytest.approx(ref["energy"], abs=1e-3)


def test_spearman_matches_quantus_and_ssim_matches_scikit_image():
    for pair in FIXTURE["similarity"]:
        a = render.upsample(np.array(pair["original"], np.float32), 224, 224).astype(np.float64)
        b = render.upsample(np.array(pair["cam"], np.float32), 224, 224).astype(np.float64)
        assert similarity.spearman(a, b) == pytest.approx(pair["quantus_spearman"], abs=1e-3)
        ours = similarity.ssim(similarity.unit(a), similarity.unit(b))
        assert ours == pytest.approx(pair["skimage_gaussian_ssim"], abs=1e-3)
        # Quantus's own SSIM (scikit-image defaults: a 7×7 uniform window) is another definition: same sign,
        # not the same number
        assert abs(ours - pair["quantus_ssim"]) < 0.1
