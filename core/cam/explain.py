"""The explain use case shared by the CLI and the pages: photo + model + class → maps and top-k."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import methods
from ..engine import Engine, PassResult
from ..models import ModelSpec


@dataclass(frozen=True)
class Explanation:
    """One explained photo: the pass, the map at one layer, and what it took."""

    result: PassResult
    spec: ModelSpec
    layer: str
    method: str
    cam: np.ndarray
    seconds: float
    notes: tuple = ()

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
    """Every method ``explain`` accepts: those at the chosen layer and those whose map has a place of its own."""
    return methods.names(every=True)


def explain(engine: Engine, rgb: np.ndarray, class_index: int | None = None, layer: str | None = None,
            method: str = "gradcam", progress=None, **options) -> Explanation:
    """Run (or reuse) the engine pass and compute ``method`` at ``layer`` (default: the last).

    A method whose map has a place of its own (occlusion: the model input) ignores ``layer`` and reports that
    place. ``options`` are the method's tunables by name (occlusion's ``patch`` and ``stride``, Score-CAM's
    ``top_n``; others' are ignored); ``progress(fraction)`` is called by the methods that run passes of their own.

    Raises:
        ValueError: an unknown layer or method; methods.NotApplicable: CAM where it does not apply.
    """
    entry = methods.get(method)
    layer = entry.layer or layer or engine.spec.default_layer
    if entry.layer is None and layer not in engine.layers:
        raise ValueError(f"unknown layer {layer!r} for {engine.spec.name}; choose one of {', '.join(engine.layers)}")
    t = time.perf_counter()
    res = engine.run(rgb, class_index)
    job = methods.Context(res, layer, engine, rgb, progress, options)
    cam = entry.run(job)
    return Explanation(result=res, spec=engine.spec, layer=layer, method=method, cam=cam,
                       seconds=time.perf_counter() - t, notes=tuple(job.notes))


def spread_layers(layers, n: int = 3) -> list[str]:
    """``n`` layers spread from early to late, the last always among them (Compare's default rows)."""
    layers = list(layers)
    picks = {len(layers) - 1} | {len(layers) * i // n for i in range(1, n)}
    return [layers[i] for i in sorted(picks)]
