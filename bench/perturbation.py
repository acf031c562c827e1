"""RISE's and Ablation-CAM's figures for ``python -m core bench`` (:func:`speed`): RISE at its default 1,000
masks against 1,000 plain forward passes in the same batch size, and Ablation-CAM at the model's default layer."""
from __future__ import annotations

import statistics
import time

import numpy as np

from core.cam import perturbation

from .timing import ASSETS


def speed(model_name: str = "efficientnet_lite0", repeats: int = 3, engine=None) -> dict:
    """Medians of ``repeats`` rounds, each timing RISE, the plain forward passes and Ablation-CAM in turn (so the
    ratio's two sides see the same load; each takes seconds, so no call is run untimed before its turn).

    Args:
        model_name: the model measured (loaded as the app loads it unless ``engine`` is given).
        engine: an engine to reuse.

    Returns:
        ``rise_ms`` (RISE, 1,000 masks), ``rise_forward_ms`` (1,000 forward passes of the unmasked photo in
        batches of the same size), ``rise_ratio``, ``rise_masks``, ``ablationcam_ms``, ``ablationcam_layer``,
        ``ablationcam_channels``.
    """
    from core import models
    from core.engine import Engine
    from core.imaging import images

    if engine is None:
        engine = Engine(models.get_spec(model_name), *models.load_inference(model_name))
    rgb = images.load_path(ASSETS / "cat_and_dog.jpg").rgb
    res = engine.run(rgb)
    layer = engine.spec.default_layer
    masks = perturbation.MASKS.default
    batch = np.repeat(engine.prepare(rgb), perturbation.BATCH, axis=0)

    def rise():
        perturbation.rise(engine, rgb, res.class_index, masks)

    def forward():
        for start in range(0, masks, perturbation.BATCH):
            engine.predict(batch[:min(perturbation.BATCH, masks - start)])

    def ablation():
        perturbation.ablationcam(engine, layer, res.acts[layer], res.class_index)

    engine.predict(batch), ablation()  # trace the forward pass and the tail
    fns = {"rise_ms": rise, "rise_forward_ms": forward, "ablationcam_ms": ablation}
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    out = {name: round(statistics.median(ts) * 1000, 1) for name, ts in times.items()}
    out["rise_ratio"] = round(out["rise_ms"] / out["rise_forward_ms"], 3)
    out.update(rise_masks=masks, ablationcam_layer=layer, ablationcam_channels=int(res.acts[layer].shape[-1]))
    return out
