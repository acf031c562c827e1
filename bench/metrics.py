"""The measuring figures of ``python -m core bench``: a deletion curve against its floor, the sanity cascade, and
dataset evaluation's photos per second against explaining the same photos (:func:`run_measure_bench`)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from core.cam import methods

from . import eval_dir
from .timing import ASSETS, interleaved_ms


def run_measure_bench(model_name: str = "efficientnet_lite0", repeats: int = 10, images_limit: int = 100,
                      data: Path | None = None) -> dict:
    """The measurement figures: one 20-step deletion curve against a forward pass of 20 at the same
    size (its floor), the whole sanity cascade for Grad-CAM at the default layer, and dataset evaluation's
    photos per second (localisation + pointing + energy, Grad-CAM) against explaining the same photos
    (load, one pass, the Grad-CAM map) — both in this process, on the first ``images_limit`` shared photos
    (left out when the shared set is not there)."""
    from core import models
    from core.engine import Engine
    from core.imaging import images
    from core.metrics import evaluation, faithfulness, sanity
    from core.metrics.boxes import read_boxes

    data = eval_dir() if data is None else data
    spec = models.get_spec(model_name)
    engine = Engine(spec, *models.load_inference(model_name))
    img = images.load_path(ASSETS / "cat_and_dog.jpg")
    res = engine.run(img.rgb)
    layer = spec.default_layer
    cam = methods.gradcam(res.acts[layer], res.grads[layer])
    batch20 = np.repeat(engine.prepare(img.rgb), 20, axis=0)
    times = interleaved_ms({
        "deletion": lambda: faithfulness.deletion(engine, img.rgb, cam, res.class_index, 20),
        "forward20": lambda: engine.predict(batch20),
    }, repeats)
    t = time.perf_counter()
    sanity.cascade(spec, models.load_model(model_name), img.rgb, "gradcam", layer, res.class_index)
    out = {"deletion_ms": times["deletion"], "forward20_ms": times["forward20"],
           "deletion_over_forward20": round(times["deletion"] / times["forward20"], 2),
           "sanity_ms": round((time.perf_counter() - t) * 1000, 1),
           "measure_target": {"deletion_over_forward20": "<= 3", "evaluate_over_explain": ">= 0.8"}}
    if (data / "annotations.csv").exists():
        boxes = read_boxes(data / "annotations.csv", lambda _m: None)
        names = sorted(boxes)[:images_limit]
        engine.cache.clear()  # distinct photos: no evaluate pass is answered from the cache either
        explain_s = evaluate_s = 0.0
        for n in names:  # taking turns photo by photo, so both see the same machine (explain never caches)
            t = time.perf_counter()
            photo = images.load_path(data / "images" / n)
            r = engine.run_input(engine.prepare(photo.rgb), boxes[n][0])
            methods.gradcam(r.acts[layer], r.grads[layer])
            explain_s += time.perf_counter() - t
            t = time.perf_counter()
            photo = images.load_path(data / "images" / n)
            evaluation.measure_photo(engine, photo.rgb, boxes[n][0], boxes[n][1], ["gradcam"],
                                     ["localisation", "pointing", "energy"], layer)
            evaluate_s += time.perf_counter() - t
        out.update({"explain_images_per_s": round(len(names) / explain_s, 1),
                    "evaluate_images_per_s": round(len(names) / evaluate_s, 1),
                    "evaluate_over_explain": round(explain_s / evaluate_s, 2)})
    return out
