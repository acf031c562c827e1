"""The explain use case shared by the CLI and the pages: photo + model + class → maps and top-k."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import methods, occlusion
from ..engine import Engine, PassResult
from ..models import ModelSpec

OCCLUSION_LAYER = "input"  # the occlusion-sensitivity map lives at the model input's resolution


@dataclass(frozen=True)
class Explanation:
    """One explained photo: the pass, the map at one layer, and what it took."""

    result: PassResult
    spec: ModelSpec
    layer: str
    method: str
    cam: np.ndarray
    seconds: float

    @property
    def class_index(self) -> int:
        return self.result.class_index

    @property
    def class_label(self) -> str:
        return self.spec.label(self.result.class_index)

    @property
    def class_prob(self) -> float:
        return float(self.result.probs[self.result.class_index])

    def top_k_records(self, k: int) -> list[dict]:
        return [{"index": i, "label": self.spec.label(i), "prob": p} for i, p in self.result.top_k(k)]


def method_names() -> list[str]:
    """Every method ``explain`` accepts (the CAM family plus 'occlusion')."""
    return [*methods.names(), "occlusion"]


def explain(engine: Engine, rgb: np.ndarray, class_index: int | None = None, layer: str | None = None,
            method: str = "gradcam", patch: int = 32, stride: int = 16, top_n: int | None = None,
            progress=None) -> Explanation:
    """Run (or reuse) the engine pass and compute ``method`` at ``layer`` (default: the last).

    ``method="occlusion"`` slides a gray ``patch`` with ``stride`` over the model input instead
    (batched forward passes; the map is at the input resolution). ``progress(fraction)`` is called
    by the methods that run passes of their own (Score-CAM, occlusion).

    Raises:
        ValueError: an unknown layer or method; methods.NotApplicable: CAM where it does not apply.
    """
    if method == "occlusion":
        t = time.perf_counter()
        res = engine.run(rgb, class_index)
        cam, _passes = occlusion.sensitivity(engine, rgb, res.class_index, patch, stride, progress=progress)
        return Explanation(result=res, spec=engine.spec, layer=OCCLUSION_LAYER, method=method, cam=cam,
                           seconds=time.perf_counter() - t)
    layer = layer or engine.spec.default_layer
    if layer not in engine.layers:
        raise ValueError(f"unknown layer {layer!r} for {engine.spec.name}; choose one of {', '.join(engine.layers)}")
    t = time.perf_counter()
    res = engine.run(rgb, class_index)
    cam = methods.compute(method, res, layer, engine=engine, rgb=rgb, top_n=top_n, progress=progress)
    return Explanation(result=res, spec=engine.spec, layer=layer, method=method, cam=cam, seconds=time.perf_counter() - t)


def spread_layers(layers, n: int = 3) -> list[str]:
    """``n`` layers spread from early to late, the last always among them (Compare's default rows)."""
    layers = list(layers)
    picks = {len(layers) - 1} | {len(layers) * i // n for i in range(1, n)}
    return [layers[i] for i in sorted(picks)]
