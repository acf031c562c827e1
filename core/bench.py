"""``python -m core bench``: speed and memory figures measured in one run (medians)."""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


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
    from . import images, methods, models, occlusion, render
    from .engine import Engine

    spec = models.get_spec(model_name)
    model = models.load_model(model_name)
    engine = Engine(spec, model)
    img = images.load_path(ASSETS / "cat_and_dog.jpg")
    rng = np.random.default_rng(0)
    x = engine.prepare(img.rgb)
    # warm-up: trace every compiled function once
    engine.predict(x), engine.input_gradient(x), engine.run_input(x)

    forward_ms = _median_ms(lambda: engine.predict(x), repeats)
    floor_ms = _median_ms(lambda: engine.input_gradient(x), repeats)

    # distinct photos made before timing, so every timed call is a cache miss on new pixels
    pool = iter([np.clip(img.rgb.astype(np.int16) + rng.integers(-2, 3, img.rgb.shape), 0, 255).astype(np.uint8)
                 for _ in range(repeats)])

    def maps_at_every_layer(res):
        for layer in engine.layers:
            methods.gradcam(res.acts[layer], res.grads[layer])

    explain_ms = _median_ms(lambda: maps_at_every_layer(engine.run(next(pool))), repeats)

    res0 = engine.run(img.rgb)
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

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about input structure in the example's grad model
        keras_example_gradcam(model, x, spec.default_layer)
        keras_example_ms = _median_ms(lambda: keras_example_gradcam(model, x, spec.default_layer),
                                      max(3, repeats // 3))

    # a new mask (as the canvas returns it) → mapped to the photo, filled, re-predicted, maps at all layers
    h, w = img.rgb.shape[:2]
    cw, ch = 640, round(640 * h / w)
    masks = []
    for i in range(repeats):
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
        maps_at_every_layer(res)
    mask_ms = _median_ms(new_mask, repeats)

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

    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
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
                    "rerender_ms": "< 50", "peak_rss_mb": "<= 1200", "mask_over_explain": "<= 1.3"},
    }
