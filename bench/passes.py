"""The engine's figures of ``python -m core bench``: passes, maps, rerenders, masks and every method in this
process (:func:`run_bench`), a cold start in a fresh process (:func:`cold_start`), and the peak memory of
switching through the models (:func:`run_switch`)."""
from __future__ import annotations

import time

import numpy as np

from core.cam import methods

from .timing import ASSETS, interleaved_ms, median_ms, peak_rss_mb


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


def _own_place_maps(engine, res, rgb, repeats: int = 3) -> dict:
    """Each method whose map has a place of its own (occlusion: at the model input), at its default settings:
    ``<name>_map_ms`` (median of ``repeats``), its settings (``<name>_<tunable>``) and ``<name>_forward_passes``."""
    out = {}
    for entry in methods.EVERY.values():
        if entry.layer is None:
            continue
        jobs = []

        def once(e=entry):
            engine.input_cache.clear()  # each run from scratch (the guided gradient is kept per photo)
            jobs.append(methods.Context(res, e.layer, engine, rgb))
            e.run(jobs[-1])

        out[f"{entry.name}_map_ms"] = median_ms(once, repeats)
        out.update({f"{entry.name}_{t.name}": t.default for t in entry.tunables})
        out[f"{entry.name}_forward_passes"] = jobs[-1].passes
    return out


def _gradient_paths(engine, res, rgb, repeats: int) -> dict:
    """Integrated gradients (32 steps, black baseline) and SmoothGrad (16 copies) at their defaults, each through
    the registry as a page runs it, against the forward + backward passes they are made of: 32 (16) copies of the
    photo's input through the engine's input gradient, which runs them as 4 (2) batches of 8, the largest batch
    the engine runs (``gradient_batch32_ms``, ``gradient_batch16_ms``). Medians of ``repeats``, taken in turns."""
    x, c = engine.prepare(rgb), res.class_index
    x16, x32 = np.repeat(x, 16, axis=0), np.repeat(x, 32, axis=0)

    def method(name):
        return lambda: methods.compute(name, res, "input", engine=engine, rgb=rgb)

    t = interleaved_ms({"integratedgradients_ms": method("integratedgradients"),
                        "gradient_batch32_ms": lambda: engine.input_gradient(x32, c),
                        "smoothgrad_ms": method("smoothgrad"),
                        "gradient_batch16_ms": lambda: engine.input_gradient(x16, c)}, repeats)
    return {**t, "gradient_batches": "4 × 8 (32 inputs), 2 × 8 (16 inputs)",
            "integratedgradients_over_batch32": round(t["integratedgradients_ms"] / t["gradient_batch32_ms"], 3),
            "smoothgrad_over_batch16": round(t["smoothgrad_ms"] / t["gradient_batch16_ms"], 3)}


def run_bench(model_name: str = "efficientnet_lite0", repeats: int = 25) -> dict:
    """Measure forward, floor, explain, rerender, Keras-example times and peak RSS on one model."""
    from core import models
    from core.cam.occlusion import apply_fill, canvas_mask
    from core.engine import Engine
    from core.imaging import images, render

    spec = models.get_spec(model_name)
    model = models.load_model(model_name)  # the Keras example's model, as loaded
    engine = Engine(spec, *models.load_inference(model_name))  # the engine as the app and the CLI load it
    img = images.load_path(ASSETS / "cat_and_dog.jpg")
    rng = np.random.default_rng(0)
    x = engine.prepare(img.rgb)
    # warm-up: trace every compiled function once
    engine.predict(x), engine.input_gradient(x), engine.run_input(x), engine.guided_gradient(x)

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
        mask = canvas_mask(next(mask_iter), w, h)
        res = engine.run(apply_fill(img.rgb, mask, "gray"), res0.class_index)
        res.top_k(5)
        _maps_at_every_layer(engine, res)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about input structure in the example's grad model
        keras_example_gradcam(model, x, spec.default_layer)  # warm-up: model.predict builds its function
        timed = interleaved_ms({
            "forward_ms": lambda: engine.predict(x),
            "floor_ms": lambda: engine.input_gradient(x),
            "guidedbackprop_ms": lambda: engine.guided_gradient(x),  # the guided pass itself (uncached)
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
    rerender_ms = median_ms(rerender, max(repeats, 20))

    # the methods with passes of their own: a median of 3 (of 5 from 25 repeats), of 1 where repeats is 1 (the tests)
    own_place = _own_place_maps(engine, res0, img.rgb, min(3, repeats))
    paths = _gradient_paths(engine, res0, img.rgb, max(min(3, repeats), repeats // 5))

    # every method at the default layer, from the cached pass (those with passes of their own: one run, steady)
    layer = spec.default_layer
    methods_ms = {}
    for name, entry in methods.REGISTRY.items():
        if f"{name}_map_ms" in own_place:  # a map at the input, timed above at its defaults: not again
            methods_ms[name] = own_place[f"{name}_map_ms"]
            continue
        n = 1 if entry.extra_passes else max(repeats, 10)
        methods_ms[name] = median_ms(lambda m=name: (engine.input_cache.clear(),  # no kept guided gradient
                                                     methods.compute(m, res0, layer, engine=engine, rgb=img.rgb)), n)

    peak = peak_rss_mb()
    return {
        "model": model_name, "image": "assets/cat_and_dog.jpg", "repeats": repeats, "statistic": "median",
        "forward_ms": forward_ms, "floor_ms": floor_ms, "explain_ms": explain_ms, "rerender_ms": rerender_ms,
        "keras_example_ms": keras_example_ms, "peak_rss_mb": peak,
        "mask_ms": mask_ms, "mask_over_explain": round(mask_ms / explain_ms, 3), **own_place,
        "methods_layer": layer, "methods_ms": methods_ms,
        "explain_over_floor": round(explain_ms / floor_ms, 3),
        "guidedbackprop_ms": timed["guidedbackprop_ms"],
        "guidedbackprop_over_floor": round(timed["guidedbackprop_ms"] / floor_ms, 3), **paths,
        "keras_example_over_explain": round(keras_example_ms / explain_ms, 2),
        "targets": {"explain_over_floor": "<= 1.3", "keras_example_over_explain": ">= 10",
                    "rerender_ms": "< 50", "peak_rss_mb": "<= 1200", "mask_over_explain": "<= 1.3",
                    "guidedbackprop_over_floor": "<= 1.3", "integratedgradients_over_batch32": "<= 1.3",
                    "smoothgrad_over_batch16": "<= 1.3",
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


def run_switch(rounds: int = 2) -> dict:
    """Peak RSS while switching through every model whose weights are available, as the app does.

    Each model is taken from an :class:`~core.engine.pool.EnginePool` with the app's budget, explains two
    photos (all layers) and one occluded copy; this goes round the models ``rounds`` times.
    Run it in its own process: the peak is the process's.
    """
    from core import models
    from core.cam.occlusion import apply_fill, top_fraction_mask
    from core.engine.pool import BUDGET_MB, EnginePool
    from core.imaging import images, render

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
            mask = top_fraction_mask(render.upsample(cam, w, h), 30)
            engine.run(apply_fill(photos[-1], mask, "gray"), res.class_index)
            after[f"{r + 1}:{name}"] = peak_rss_mb()
            del engine, res, cam, mask  # as in the app, nothing holds on to a model once another is asked for
    return {
        "models": available, "skipped_no_weights": skipped, "rounds": rounds, "budget_mb": BUDGET_MB,
        "peak_rss_mb_after_model": after, "in_memory_at_end": pool.names(),
        "peak_rss_mb": peak_rss_mb(),
        "seconds": round(time.perf_counter() - t, 1), "target": {"peak_rss_mb": "<= 1200"},
    }
