"""The benchmark: the studio's speed and memory figures, measured from outside the library (dev tools).

``python -m core bench`` hands over to :func:`collect`, which gathers, by role:

- :mod:`bench.passes`    the engine in this process (passes, maps, rerenders, masks, every method), a cold start
                         in a fresh process, and the peak memory of switching through the models (``--switch``);
- :mod:`bench.training`  the feature pass, the head's search and fine-tuning;
- :mod:`bench.metrics`   a deletion curve, the sanity cascade and dataset evaluation against explaining;
- :mod:`bench.perturbation` RISE against the forward passes it needs, Ablation-CAM;
- :mod:`bench.road`      a ROAD curve against the forward passes it needs;
- :mod:`bench.server`    the app on a real ``streamlit run`` server, driven by headless Chromium;
- :mod:`bench.browser`   that server and browser (also the real-browser tests' and the tools' driver);
- :mod:`bench.timing`    medians taken in turns, peak memory, the sample photos;
- :mod:`bench.price`     each server adjustment of :mod:`server` measured switched off (``python -m bench.price``).
"""
from __future__ import annotations

import os
from pathlib import Path

EVAL_DIR_ENV = "GRADCAM_STUDIO_EVAL_DIR"


def eval_dir() -> Path:
    """The shared evaluation set (400 ImageNet validation photos with boxes, never shipped): ``$GRADCAM_STUDIO_EVAL_DIR``,
    else ``shared/data/imagenet-val-loc`` beside the checkout. The benchmark, the reference tools and the tests
    read it here."""
    return Path(os.environ.get(EVAL_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data"
                / "imagenet-val-loc")


def collect(model: str, repeats: int = 25, switch: bool = False, app: bool = True, cold_runs: int = 3) -> dict:
    """Every figure of ``python -m core bench`` as one dict (its ``--json`` output).

    Args:
        model: the model measured.
        repeats: timed runs per figure (the training and measuring parts take fewer).
        switch: instead of the rest, the peak memory while switching through every model with weights.
        app: also the app's figures on a real server (needs playwright and chromium; says so without them).
        cold_runs: fresh servers whose first paint and first map are measured (their medians are the figures).
    """
    from .passes import cold_start, run_bench, run_switch

    if switch:
        return run_switch()
    from .classroom import run_classroom_bench
    from .lesson import run_lesson_bench
    from .live import run_live_bench
    from .metrics import run_measure_bench
    from .perturbation import speed as perturbation_speed
    from .road import run_road_bench
    from .training import run_train_bench

    result = run_bench(model, repeats=repeats)
    result.update(perturbation_speed(model, repeats=min(3, repeats)))
    result.update(run_train_bench(model, repeats=min(7, repeats)))
    result.update(run_measure_bench(model, repeats=min(10, repeats), images_limit=min(100, 4 * repeats)))
    result.update(run_road_bench(model, repeats=min(3, repeats)))
    result.update(run_lesson_bench(model, repeats=min(7, repeats)))
    result.update(run_classroom_bench())
    result.update(run_live_bench())
    result.update(cold_start(model))
    if app:
        from .server import run

        result.update(run(cold_runs=max(1, cold_runs)))
    return result
