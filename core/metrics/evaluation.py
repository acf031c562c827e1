"""Measuring maps on one photo and on a dataset of photos with boxes (``python -m core evaluate``).

:func:`measure_photo` computes, for each method (or baseline), the record

    correct, iou, located, pointing, energy, deletion_auc, insertion_auc, avg_drop, increase,
    road_morf, road_lerf, road

- ``correct``: the model's top-1 is the box's class. ``iou``: the best IoU of the map's box at the threshold
  (:func:`.localisation.best_iou`); ``located``: correct and iou ≥ 0.5 (the top-1 localisation hit).
- ``pointing``, ``energy``: :mod:`.localisation`.
- ``deletion_auc``, ``insertion_auc``, ``avg_drop``, ``increase``: :mod:`.faithfulness`.
- ``road_morf``, ``road_lerf``, ``road``: :mod:`.road` (mean MoRF and LeRF change of the class probability over
  the percentiles 10..90, and ROADCombined); asked for only by name (``road``), never by default: each costs
  18 imputations.

Every map is the map **for the box's class** (the ground truth); where the top-1 is that class it is also the
top-1's map. :func:`summarise` averages the records: ``loc_error`` over all photos (1 − located share, the
ILSVRC top-1 localisation error), ``iou_mean``, ``pointing`` and ``energy`` over the correctly classified
photos only, the faithfulness figures over all photos. :func:`evaluate_dataset` runs a folder, in this
process or spread over worker processes (each with its own engine; the records do not depend on which).
"""
from __future__ import annotations

import math
import multiprocessing as mp
from pathlib import Path
from typing import Callable

import numpy as np

from ..cam import methods as cam_methods
from ..imaging import images, render
from . import baselines, faithfulness, localisation, road
from .boxes import read_boxes

METRICS = ("localisation", "pointing", "energy", "deletion", "insertion", "drop", "road")
DEFAULT_METRICS = METRICS[:-1]  # ROAD only when asked for
FIELDS = ("loc_error", "iou_mean", "pointing", "energy", "deletion_auc", "insertion_auc", "avg_drop", "increase",
          "road_morf", "road_lerf", "road")
THRESHOLD = 0.2


def method_names() -> list[str]:
    """Every name ``--methods`` accepts: every method ``explain`` takes (occlusion included) and the baselines."""
    return cam_methods.names(every=True) + list(baselines.BASELINES)


def check(methods: list[str], metrics: list[str]) -> None:
    """ValueError (one sentence) for an unknown method or metric."""
    for m in methods:
        if m not in method_names():
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(method_names())}")
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r}; choose from {', '.join(METRICS)}")
    if not methods or not metrics:
        raise ValueError("choose at least one method and one metric")


def raw_map(engine, rgb: np.ndarray, res, method: str, layer: str, seed: int = 0) -> np.ndarray:
    """The raw map of a method (at the layer's grid) or a baseline (random: the layer's grid; centre: the
    photo's size; edges: the model input's size, the photo as the model sees it)."""
    if method == "random":
        h, w = res.acts[layer].shape[:2]
        return baselines.random_map(h, w, seed)
    if method == "centre":
        return baselines.centre_map(*rgb.shape[:2])
    if method == "edges":
        size = engine.spec.input_size
        return baselines.edges_map(rgb, size, size)
    return cam_methods.compute(method, res, layer, engine=engine, rgb=rgb)


def measure_photo(engine, rgb: np.ndarray, class_index: int, boxes, methods=("gradcam",), metrics=DEFAULT_METRICS,
                  layer: str | None = None, threshold: float = THRESHOLD, steps: int = faithfulness.STEPS,
                  seed: int = 0) -> dict[str, dict]:
    """method → the record of the module's notes, for one photo, its class and its boxes (photo pixels).

    Fields of metrics not asked for are left out; ``correct`` is always there.
    """
    layer = layer or engine.spec.default_layer
    res = engine.run(rgb, class_index)
    correct = int(np.argmax(res.probs)) == int(class_index)
    h, w = rgb.shape[:2]
    out = {}
    for method in methods:
        cam = raw_map(engine, rgb, res, method, layer, seed)
        rec: dict = {"correct": correct}
        if {"localisation", "pointing", "energy"} & set(metrics):
            cam_up = render.upsample(cam, w, h)
            if "localisation" in metrics:
                rec["iou"] = localisation.best_iou(cam_up, boxes, threshold)
                rec["located"] = correct and rec["iou"] >= 0.5
            if "pointing" in metrics:
                rec["pointing"] = localisation.pointing(cam_up, boxes)
            if "energy" in metrics:
                rec["energy"] = localisation.energy(cam_up, boxes)
        if "deletion" in metrics or "insertion" in metrics:
            d, i = faithfulness.curves(engine, rgb, cam, class_index, steps)
            if "deletion" in metrics:
                rec["deletion_auc"] = d.auc
            if "insertion" in metrics:
                rec["insertion_auc"] = i.auc
        if "drop" in metrics:
            rec["avg_drop"], rec["increase"], _y, _o = faithfulness.confidence_change(engine, rgb, cam, class_index)
        if "road" in metrics:
            r = road.road(engine, rgb, cam, class_index, seed=seed)
            rec["road_morf"], rec["road_lerf"], rec["road"] = r.morf_mean, r.lerf_mean, r.combined
        out[method] = rec
    return out


def _mean(values) -> float | None:
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else None


def summarise(records: list[dict]) -> dict:
    """The dataset figures of one method from its per-photo records (see the module's notes); a figure with no
    photo to average over (e.g. pointing when no photo is correctly classified) is None, never NaN."""
    right = [r for r in records if r["correct"]]
    out = {}
    if records and "located" in records[0]:
        out["loc_error"] = 1.0 - sum(bool(r["located"]) for r in records) / len(records)
        out["iou_mean"] = _mean(r["iou"] for r in right)
    for key in ("pointing", "energy"):
        if records and key in records[0]:
            out[key] = _mean(r[key] for r in right)
    for key in ("deletion_auc", "insertion_auc", "avg_drop", "increase", "road_morf", "road_lerf", "road"):
        if records and key in records[0]:
            out[key] = _mean(r[key] for r in records)
    return out


# --- a folder of photos ---------------------------------------------------------------------------
_WORKER: dict = {}


def _load_engine(model: str):
    from ..engine.sources import engine_for

    return engine_for(model)  # a zoo name or a trained model's file


def _init_worker(model: str) -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ..engine.warmup import import_tensorflow_quietly

    import_tensorflow_quietly()
    try:
        _WORKER["engine"] = _load_engine(model)
    except Exception as exc:  # noqa: BLE001 - given to the parent with the first job: a pool would start it again
        _WORKER["error"] = (type(exc), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _one(engine, folder, name, cls, boxes, opts) -> dict:
    """{'file', 'class_index', 'methods': {...}} or {'file', 'error'} for one photo."""
    try:
        img = images.load_path(Path(folder) / name)
        recs = measure_photo(engine, img.rgb, cls, boxes, seed=baselines.seed_for(name, opts["seed"]),
                             **{k: v for k, v in opts.items() if k != "seed"})
    except (images.ImageError, ValueError) as exc:
        msg = str(exc) if isinstance(exc, images.ImageError) else f"{name}: {exc}"
        return {"file": name, "error": msg.splitlines()[0]}
    return {"file": name, "class_index": cls, "methods": recs}


def _again(kind, message: str) -> Exception:
    """A worker's exception, made again in the parent from its class and first line (RuntimeError where that
    class cannot be made from a message)."""
    try:
        return kind(message)
    except Exception:  # noqa: BLE001
        return RuntimeError(message)


def _worker_one(job) -> dict:
    if "engine" not in _WORKER:  # the model could not be loaded here: the parent says why and stops
        return {"fatal": _WORKER.get("error", (RuntimeError, "the worker has no engine"))}
    return _one(_WORKER["engine"], *job)


def evaluate_dataset(folder, csv_path, engine=None, model: str | None = None, methods=("gradcam",),
                     metrics=DEFAULT_METRICS, layer: str | None = None, threshold: float = THRESHOLD,
                     steps: int = faithfulness.STEPS, limit: int | None = None, workers: int = 1, seed: int = 0,
                     on_error: Callable[[str], None] | None = None, on_record: Callable[[dict], None] | None = None,
                     progress: Callable[[float], None] | None = None) -> dict:
    """Measure ``methods`` on every photo of ``folder`` listed in the boxes CSV (sorted by name).

    Args:
        engine: the engine to use in this process (``workers`` = 1); else one is loaded for ``model``.
        model: a registry name or a trained model's file (needed for ``workers`` > 1: each worker loads its own
            engine), or, with one worker, a :class:`~core.models.TrainedModel` already read.
        workers: processes (spawned); the records are the same whatever the number.
        on_error: told one line per bad CSV row and per photo that cannot be measured; the run goes on.
        on_record: given each photo's record, in name order.
        progress: the fraction of photos done.

    Returns:
        {images, top1, layer, threshold, steps, methods: {method: figures}} — ``images`` counts the photos
        measured (bad ones are left out).
    """
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    if engine is None and model is None:
        raise ValueError("give an engine or a model name")
    if engine is None and workers == 1:
        engine = _load_engine(model)  # the one engine of this run; its spec checks the options (a file read once)
    if engine is not None:
        spec = engine.spec
    else:
        from ..engine.sources import spec_for

        spec = spec_for(model)
    methods = list(methods)
    layer, jobs = plan(folder, csv_path, spec, methods, metrics, layer, threshold, steps, limit, seed, on_error)
    tally = Tally(methods, len(jobs), on_error, on_record, progress)
    take = tally.take

    if workers == 1 or len(jobs) <= 1:
        engine = engine if engine is not None else _load_engine(model or spec.name)
        for job in jobs:
            take(_one(engine, *job))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(model or spec.name,)) as pool:
            for rec in pool.imap(_worker_one, jobs, chunksize=1):
                if "fatal" in rec:  # as one process would have raised it (WeightsUnavailable, a bad model file …)
                    raise _again(*rec["fatal"])
                take(rec)
    return tally.result(layer, threshold, steps)


def plan(folder, csv_path, spec, methods, metrics, layer, threshold, steps, limit, seed, on_error=None):
    """Check the options against ``spec`` and list one job per photo of the boxes CSV, sorted by name (bad
    rows go to ``on_error``). Returns (layer, jobs); every way of running the jobs takes these."""
    methods, metrics = list(methods), list(metrics)
    check(methods, metrics)
    if steps < 1:
        raise ValueError("--steps must be at least 1")
    if not 0 < threshold <= 1:
        raise ValueError("the threshold is a fraction of the map's maximum, in (0, 1]")
    layer = layer or spec.default_layer
    if layer not in spec.layers:
        raise ValueError(f"unknown layer {layer!r} for {spec.name}; choose one of {', '.join(spec.layers)}")
    boxes = read_boxes(csv_path, on_error or (lambda _msg: None))
    names = sorted(boxes)[:limit] if limit else sorted(boxes)
    opts = {"methods": methods, "metrics": metrics, "layer": layer, "threshold": threshold, "steps": steps,
            "seed": seed}
    return layer, [(folder, n, boxes[n][0], boxes[n][1], opts) for n in names]


class Tally:
    """Photo records, taken in name order, → the dataset's figures: the same whichever way (one process,
    workers, Ray) the photos were measured. ``on_error``/``on_record``/``progress`` hear of each in that order."""

    def __init__(self, methods, n_jobs: int, on_error=None, on_record=None, progress=None):
        self.methods = list(methods)
        self.per_method: dict[str, list] = {m: [] for m in self.methods}
        self.n_jobs, self.correct, self.done = n_jobs, 0, 0
        self.on_error, self.on_record, self.progress = on_error, on_record, progress

    def take(self, rec: dict) -> None:
        self.done += 1
        if "error" in rec:
            if self.on_error:
                self.on_error(rec["error"])
        else:
            self.correct += next(iter(rec["methods"].values()))["correct"]
            for m in self.methods:
                self.per_method[m].append(rec["methods"][m])
            if self.on_record:
                self.on_record(rec)
        if self.progress:
            self.progress(self.done / max(1, self.n_jobs))

    def result(self, layer: str, threshold: float, steps: int) -> dict:
        n = len(self.per_method[self.methods[0]])
        return {"images": n, "top1": self.correct / n if n else 0.0, "layer": layer, "threshold": threshold,
                "steps": steps, "methods": {m: summarise(self.per_method[m]) for m in self.methods}}


def flat_record(rec: dict, method: str) -> dict:
    """One ``--per-image`` line: the photo, the method, and its fields (``loc_error`` 0/1, ``iou``, ``pointing``
    0/1, ``energy``, the faithfulness figures; booleans as 0/1)."""
    r = rec["methods"][method]
    out = {"file": rec["file"], "class_index": rec["class_index"], "method": method, "correct": int(r["correct"])}
    for k, v in r.items():
        if k == "located":
            out["loc_error"] = 0 if v else 1
        elif k != "correct":
            out[k] = int(v) if isinstance(v, (bool, np.bool_)) else (round(float(v), 6) if math.isfinite(v) else None)
    return out
