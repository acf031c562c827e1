"""``python -m core bench``: speed and memory figures measured in one run (medians).

Three parts: the engine in this process (:func:`run_bench`), a cold start in a fresh process
(:func:`cold_start`), and the app on a real Streamlit server driven by Chromium (:func:`run_app`).
"""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import numpy as np

from ..cam import methods

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def _median_ms(fn, repeats: int) -> float:
    return _interleaved_ms({"fn": fn}, repeats)["fn"]


def _interleaved_ms(fns: dict, repeats: int) -> dict:
    """Median milliseconds of each function, taking turns, round after round.

    Figures whose ratio is a target are timed this way, so that both sides of a ratio see the
    same load on a noisy machine instead of one of them catching a slow minute. In its turn each
    function runs twice and the second call is timed, so no function is timed on the caches the
    previous one left (the first call of a turn is not counted).
    """
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if len(fns) > 1:
                fn()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: round(statistics.median(ts) * 1000, 2) for name, ts in times.items()}


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _maps_at_every_layer(engine, res) -> None:
    for layer in engine.layers:
        methods.gradcam(res.acts[layer], res.grads[layer])


def keras_example_gradcam(model, img_array, layer_name, pred_index=None):
    """The eager Grad-CAM of the Keras code example, as the seed apps copied it: ``model.predict``
    for the top-k, then a grad model built on each call, one layer per call, in eager mode."""
    import keras
    import tensorflow as tf

    model.predict(img_array, verbose=0)  # the example's prediction step (top-k for the page)
    grad_model = keras.models.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = tf.argmax(preds[0])
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = last_conv_layer_output[0] @ pooled_grads[..., tf.newaxis]
    heatmap = tf.squeeze(heatmap)
    heatmap = tf.maximum(heatmap, 0) / (tf.math.reduce_max(heatmap) + 1e-12)
    return heatmap.numpy()


def run_bench(model_name: str = "efficientnet_lite0", repeats: int = 25) -> dict:
    """Measure forward, floor, explain, rerender, Keras-example times and peak RSS on one model."""
    from .. import models
    from ..cam import occlusion
    from ..engine import Engine
    from ..imaging import images, render

    spec = models.get_spec(model_name)
    model = models.load_model(model_name)  # the Keras example's model, as loaded
    engine = Engine(spec, *models.load_inference(model_name))  # the engine as the app and the CLI load it
    img = images.load_path(ASSETS / "cat_and_dog.jpg")
    rng = np.random.default_rng(0)
    x = engine.prepare(img.rgb)
    # warm-up: trace every compiled function once
    engine.predict(x), engine.input_gradient(x), engine.run_input(x)

    # distinct photos made before timing, so every timed explain is a cache miss on new pixels
    pool = iter([np.clip(img.rgb.astype(np.int16) + rng.integers(-2, 3, img.rgb.shape), 0, 255).astype(np.uint8)
                 for _ in range(2 * repeats)])

    res0 = engine.run(img.rgb)
    # a new mask (as the canvas returns it) → mapped to the photo, filled, re-predicted, maps at all layers
    h, w = img.rgb.shape[:2]
    cw, ch = 640, round(640 * h / w)
    masks = []
    for i in range(2 * repeats):
        rgba = np.zeros((ch, cw, 4), np.uint8)
        x0 = int(rng.integers(0, cw // 2))
        y0 = int(rng.integers(0, ch // 2))
        rgba[y0:y0 + ch // 3, x0:x0 + cw // 3, 3] = 115
        masks.append(rgba)
    mask_iter = iter(masks)

    def new_mask():
        mask = occlusion.canvas_mask(next(mask_iter), w, h)
        res = engine.run(occlusion.apply_fill(img.rgb, mask, "gray"), res0.class_index)
        res.top_k(5)
        _maps_at_every_layer(engine, res)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about input structure in the example's grad model
        keras_example_gradcam(model, x, spec.default_layer)  # warm-up: model.predict builds its function
        timed = _interleaved_ms({
            "forward_ms": lambda: engine.predict(x),
            "floor_ms": lambda: engine.input_gradient(x),
            "explain_ms": lambda: _maps_at_every_layer(engine, engine.run(next(pool))),
            # from the same decoded photo as explain: resize + preprocess, then the example
            "keras_example_ms": lambda: keras_example_gradcam(model, engine.prepare(img.rgb), spec.default_layer),
            "mask_ms": new_mask,
        }, repeats)
    forward_ms, floor_ms, explain_ms = timed["forward_ms"], timed["floor_ms"], timed["explain_ms"]
    keras_example_ms, mask_ms = timed["keras_example_ms"], timed["mask_ms"]

    base = render.display_base(img.rgb)
    cmaps = list(render.COLORMAPS)
    state = {"i": 0}

    def rerender():
        i = state["i"] = state["i"] + 1
        layer = engine.layers[i % len(engine.layers)]
        res = engine.run(img.rgb)  # cache hit
        render.overlay(base, methods.gradcam(res.acts[layer], res.grads[layer]), 0.3 + 0.05 * (i % 10),
                       cmaps[i % len(cmaps)])
    rerender_ms = _median_ms(rerender, max(repeats, 20))

    passes = []
    occlusion_map_ms = _median_ms(
        lambda: passes.append(occlusion.sensitivity(engine, img.rgb, res0.class_index, 32, 16)[1]), 3)

    # every CAM method at the default layer, from the cached pass (Score-CAM: its own forward passes)
    layer = spec.default_layer
    methods_ms = {}
    for name in methods.names():
        if name == "scorecam":
            n = 1  # 1280 channels → 80 batched passes; one run is long enough to be steady
        else:
            n = max(repeats, 10)
        methods_ms[name] = _median_ms(lambda m=name: methods.compute(m, res0, layer, engine=engine, rgb=img.rgb), n)

    peak_rss_mb = _peak_rss_mb()
    return {
        "model": model_name, "image": "assets/cat_and_dog.jpg", "repeats": repeats, "statistic": "median",
        "forward_ms": forward_ms, "floor_ms": floor_ms, "explain_ms": explain_ms, "rerender_ms": rerender_ms,
        "keras_example_ms": keras_example_ms, "peak_rss_mb": peak_rss_mb,
        "mask_ms": mask_ms, "mask_over_explain": round(mask_ms / explain_ms, 3),
        "occlusion_map_ms": occlusion_map_ms, "occlusion_patch": 32, "occlusion_stride": 16,
        "occlusion_forward_passes": passes[-1],
        "methods_layer": layer, "methods_ms": methods_ms,
        "explain_over_floor": round(explain_ms / floor_ms, 3),
        "keras_example_over_explain": round(keras_example_ms / explain_ms, 2),
        "targets": {"explain_over_floor": "<= 1.3", "keras_example_over_explain": ">= 10",
                    "rerender_ms": "< 50", "peak_rss_mb": "<= 1200", "mask_over_explain": "<= 1.3",
                    "cold_start_s": "the page in <= 2 s, the first map in <= 7 s (first_paint_s, first_map_s)",
                    "session_cpu_s": "<= 0.3", "rerender_cpu_s": "<= 0.1", "server_peak_mb": "<= 1500"},
    }


_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from core.engine.pool import tune_allocator
tune_allocator()
from core.engine.warmup import import_tensorflow_quietly
import_tensorflow_quietly(freeze=True)  # as the command line and the app's start-up work do
t1 = time.perf_counter()
from core import models
from core.cam import methods
from core.engine import Engine
from core.imaging import images
name, photo = sys.argv[1], sys.argv[2]
spec = models.get_spec(name)
engine = Engine(spec, *models.load_inference(name))
t2 = time.perf_counter()
res = engine.run(images.load_path(photo).rgb)
methods.gradcam(res.acts[spec.default_layer], res.grads[spec.default_layer])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_pass_s": t3 - t2}))
"""


def cold_start(model_name: str = "efficientnet_lite0") -> dict:
    """A fresh process, from its start to the first Grad-CAM of ``model_name`` on the sample photo (seconds),
    and its parts: importing TensorFlow (and the interpreter's start), loading the model, the first (tracing)
    pass with its map."""
    import json
    import subprocess
    import sys

    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _COLD, model_name, str(ASSETS / "cat_and_dog.jpg")],
                         cwd=ASSETS.parent, capture_output=True, text=True, timeout=600, check=True)
    total = time.perf_counter() - t
    parts = json.loads(out.stdout.strip().splitlines()[-1])
    parts["import_s"] = total - parts["load_s"] - parts["first_pass_s"]  # the interpreter's start counts here
    return {"cold_start_s": round(total, 2), "cold_start_parts": {k: round(v, 2) for k, v in parts.items()}}


def run_app(sessions: int = 5, cold_runs: int = 3) -> dict:
    """The app on a real ``streamlit run`` server (:mod:`core.cli.serverbench`): server CPU per new session and
    per rerender, time to the first paint and the first map of a cold server (medians over ``cold_runs`` fresh
    servers), the server's peak memory."""
    from . import serverbench

    return serverbench.run(sessions=sessions, cold_runs=cold_runs)


def run_switch(rounds: int = 2) -> dict:
    """Peak RSS while switching through every model whose weights are available, as the app does.

    Each model is taken from an :class:`~core.engine.pool.EnginePool` with the app's budget, explains two
    photos (all layers) and one occluded copy; this goes round the models ``rounds`` times.
    Run it in its own process: the peak is the process's.
    """
    from .. import models
    from ..cam import occlusion
    from ..engine.pool import BUDGET_MB, EnginePool
    from ..imaging import images, render

    photos = [images.load_path(ASSETS / f).rgb for f in ("cat_and_dog.jpg", "coffee.jpg")]
    available = [n for n, s in models.REGISTRY.items() if s.family == "lite" or s.weights_cached()]
    skipped = [n for n in models.REGISTRY if n not in available]
    pool = EnginePool(BUDGET_MB)
    after = {}
    t = time.perf_counter()
    for r in range(rounds):
        for name in available:
            engine = pool.get(name)
            for rgb in photos:
                res = engine.run(rgb)
                _maps_at_every_layer(engine, res)
            h, w = photos[-1].shape[:2]
            cam = methods.gradcam(res.acts[engine.layers[-1]], res.grads[engine.layers[-1]])
            mask = occlusion.top_fraction_mask(render.upsample(cam, w, h), 30)
            engine.run(occlusion.apply_fill(photos[-1], mask, "gray"), res.class_index)
            after[f"{r + 1}:{name}"] = _peak_rss_mb()
            del engine, res, cam, mask  # as in the app, nothing holds on to a model once another is asked for
    return {
        "models": available, "skipped_no_weights": skipped, "rounds": rounds, "budget_mb": BUDGET_MB,
        "peak_rss_mb_after_model": after, "in_memory_at_end": pool.names(),
        "peak_rss_mb": _peak_rss_mb(),
        "seconds": round(time.perf_counter() - t, 1), "target": {"peak_rss_mb": "<= 1200"},
    }


SHARED_EVAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-val-loc"


def run_measure_bench(model_name: str = "efficientnet_lite0", repeats: int = 10, images_limit: int = 100,
                      data: Path = SHARED_EVAL) -> dict:
    """The measurement figures (issue 13): one 20-step deletion curve against a forward pass of 20 at the same
    size (its floor), the whole sanity cascade for Grad-CAM at the default layer, and dataset evaluation's
    photos per second (localisation + pointing + energy, Grad-CAM) against explaining the same photos
    (load, one pass, the Grad-CAM map) — both in this process, on the first ``images_limit`` shared photos
    (left out when the shared set is not there)."""
    from .. import models
    from ..engine import Engine
    from ..imaging import images
    from ..metrics import evaluation, faithfulness, localisation, sanity

    spec = models.get_spec(model_name)
    engine = Engine(spec, *models.load_inference(model_name))
    img = images.load_path(ASSETS / "cat_and_dog.jpg")
    res = engine.run(img.rgb)
    layer = spec.default_layer
    cam = methods.gradcam(res.acts[layer], res.grads[layer])
    batch20 = np.repeat(engine.prepare(img.rgb), 20, axis=0)
    times = _interleaved_ms({
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
        boxes = localisation.read_boxes(data / "annotations.csv", lambda _m: None)
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
