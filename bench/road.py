"""ROAD's cost in ``python -m core bench``: one ROAD curve (Grad-CAM on the sample photo: 18 imputations and the
forward passes of the photo and its 18 imputed images, in batches of 8 as they are ready) against those 19 forward
passes alone, one batched call (:func:`run_road_bench`). Target: ``road_ratio`` ≤ 3.

Alone: ``python bench/road.py [repeats]`` (or ``python -m bench.road``) prints the figures and the machine's load
average (1 min) before and after, as JSON."""
from __future__ import annotations

import numpy as np

if __package__:
    from .timing import ASSETS, interleaved_ms
else:  # run as a script
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.timing import ASSETS, interleaved_ms


def run_road_bench(model_name: str = "efficientnet_lite0", repeats: int = 3) -> dict:
    """{"road_ms", "road_forward_ms", "road_ratio", "road_target"}: the median of ``repeats`` whole ROAD curves
    and of the forward passes they need (the same 19 images, one batched call), timed in turns."""
    from core import models
    from core.cam import methods
    from core.engine import Engine
    from core.imaging import images
    from core.metrics import faithfulness, road

    spec = models.get_spec(model_name)
    engine = Engine(spec, *models.load_inference(model_name))
    rgb = images.load_path(ASSETS / "cat_and_dog.jpg").rgb
    res = engine.run(rgb)
    cam = methods.gradcam(res.acts[spec.default_layer], res.grads[spec.default_layer])
    photo = faithfulness.model_photo(engine, rgb)
    batch = np.repeat(photo[None], 1 + 2 * len(road.PERCENTILES), axis=0)
    times = interleaved_ms({
        "road": lambda: road.road(engine, rgb, cam, res.class_index),
        "forward": lambda: engine.predict(engine.spec.preprocess(batch)),
    }, repeats)
    return {"road_ms": times["road"], "road_forward_ms": times["forward"],
            "road_ratio": round(times["road"] / times["forward"], 2), "road_target": "<= 3"}


if __name__ == "__main__":
    import json
    import os
    import sys

    before = os.getloadavg()[0]
    out = run_road_bench(repeats=int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    out["load_1min"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out))
