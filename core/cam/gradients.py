"""Gradient methods at the model input: guided backpropagation, Guided Grad-CAM, integrated gradients and
SmoothGrad (of the input gradient and of Grad-CAM). Their registry entries are :data:`ENTRIES` (listed by
:data:`core.cam.methods.EVERY`).

Every map here but SmoothGrad-CAM has the model input's resolution (S×S) and is a magnitude: the vector of
three colour channels at a pixel becomes one number (:func:`magnitude` or :func:`sum_magnitude`). The class is
the one of the cached pass (``ctx.result.class_index``); the class score is the pre-softmax logit. Passes run
in batches of up to 8 inputs (:data:`CHUNK`); ``ctx.passes`` counts those batches.
"""
from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import numpy as np

from ..engine.passes import BATCH_SIZES
from .interface import SEED, Context, Method, Tunable

CHUNK = BATCH_SIZES[-1]  # inputs per batched pass; progress is reported after each
BASELINES = ("black", "blur")
POINT_RULES = ("adaptive", "even")
ADAPTIVE_MOST = 128  # integrated gradients: the most points placed adaptively

Progress = Callable[[float], None] | None


def magnitude(g: np.ndarray) -> np.ndarray:
    """(S, S, 3) → (S, S): the largest absolute value over the colour channels (Simonyan et al.'s saliency)."""
    return np.abs(np.asarray(g, np.float64)).max(axis=-1)


def sum_magnitude(a: np.ndarray) -> np.ndarray:
    """(S, S, 3) → (S, S): the absolute value of the channels' sum (a pixel's total attribution; Captum's
    ``visualize_image_attr`` with ``sign="absolute_value"`` draws the same)."""
    return np.abs(np.asarray(a, np.float64).sum(axis=-1))


def input_range(spec) -> float:
    """The model input's range: how far apart pixel values 0 and 255 lie after preprocessing (the widest channel)."""
    lo = spec.preprocess(np.zeros((1, 1, 3), np.float32))
    hi = spec.preprocess(np.full((1, 1, 3), 255.0, np.float32))
    return float(np.max(np.asarray(hi, np.float64) - np.asarray(lo, np.float64)))


def _check(value, low: int, what: str) -> int:
    value = int(value)
    if value < low:
        raise ValueError(f"{what} must be at least {low}, not {value}")
    return value


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, CHUNK):
        yield start, min(n, start + CHUNK)


# --- guided backpropagation and Guided Grad-CAM ----------------------------------------------------------------

def guided_backprop(engine, rgb: np.ndarray, class_index: int) -> np.ndarray:
    """The signed guided gradient (S, S, 3) of the class logit at the model input (kept by the engine per photo
    and class, so Guided Grad-CAM at another layer costs no pass)."""
    return engine.guided(rgb, class_index)


def guided_gradcam(engine, rgb: np.ndarray, result, layer: str) -> np.ndarray:
    """Guided Grad-CAM (Selvaraju et al. 2017, §3), signed, (S, S, 3): the guided gradient times the layer's
    Grad-CAM upsampled bilinearly to the model input (pixel centres aligned, as the overlays draw it)."""
    from ..imaging.render import upsample
    from .methods import gradcam

    size = engine.spec.input_size
    cam = upsample(gradcam(result.acts[layer], result.grads[layer]), size, size).astype(np.float64)
    return guided_backprop(engine, rgb, result.class_index) * cam[:, :, None]


def _guided_map(ctx: Context, product: Callable[[], np.ndarray]) -> np.ndarray:
    ctx.passes = int(not ctx.engine.guided_cached(ctx.rgb, ctx.result.class_index))
    out = magnitude(product())
    if ctx.progress:
        ctx.progress(1.0)
    return out


def _guidedbackprop(ctx: Context) -> np.ndarray:
    return _guided_map(ctx, lambda: guided_backprop(ctx.engine, ctx.rgb, ctx.result.class_index))


def _guidedgradcam(ctx: Context) -> np.ndarray:
    return _guided_map(ctx, lambda: guided_gradcam(ctx.engine, ctx.rgb, ctx.result, ctx.layer))


# --- integrated gradients -------------------------------------------------------------------------------------

def baseline_input(engine, rgb: np.ndarray, baseline: str) -> np.ndarray:
    """The baseline x' (1, S, S, 3), preprocessed: ``black`` (every pixel 0) or ``blur`` (the photo blurred as
    :func:`core.cam.occlusion.apply_fill` blurs, then resized like the photo)."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    if baseline == "black":
        return engine.prepare(np.zeros_like(np.asarray(rgb, np.uint8)))
    from .occlusion import apply_fill

    return engine.prepare(apply_fill(rgb, np.ones(np.shape(rgb)[:2], bool), "blur"))


def trapezoid(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The path's points α (``steps`` of them, 0 and 1 included, evenly spaced) and their weights (the trapezoid
    rule: 1/(steps−1) each, half at both ends; they add up to 1). Captum's ``method="riemann_trapezoid"``."""
    steps = _check(steps, 2, "the number of steps")
    alphas = np.linspace(0.0, 1.0, steps)
    return alphas, trapezoid_weights(alphas)


def trapezoid_weights(alphas: np.ndarray) -> np.ndarray:
    """The composite trapezoid rule's weights on sorted points from 0 to 1: half of each neighbouring gap."""
    gaps = np.diff(np.asarray(alphas, np.float64))
    weights = np.zeros(len(alphas))
    weights[1:] += gaps / 2
    weights[:-1] += gaps / 2
    return weights


def refine(alphas: np.ndarray, errors: np.ndarray, count: int) -> np.ndarray:
    """``count`` new points between sorted ``alphas``: one at a time to the segment whose known trapezoid error,
    divided by the square of (its new points + 1), is largest (the trapezoid rule's error falls with the square of
    the step); each chosen segment is split evenly."""
    split = np.zeros(len(errors), int)
    for _ in range(count):
        split[np.argmax(np.abs(errors) / (split + 1) ** 2)] += 1
    return np.concatenate([alphas[j] + (alphas[j + 1] - alphas[j]) * np.arange(1, k + 1) / (k + 1)
                           for j, k in enumerate(split) if k])


class Integrated(NamedTuple):
    """Integrated gradients of one photo.

    Attributes:
        attributions: (S, S, 3) signed.
        passes: the batched passes run.
        change: logit(x) − logit(x'), read from the path's two ends (no pass of its own).
        alphas: the points used, sorted.
    """

    attributions: np.ndarray
    passes: int
    change: float
    alphas: np.ndarray

    @property
    def gap(self) -> float:
        """Completeness: |Σ attributions − change| / |change| (0 where the change is 0 and the sum too)."""
        off = abs(float(self.attributions.sum()) - self.change)
        return off / abs(self.change) if self.change else (0.0 if off == 0 else float("inf"))


def integrated_gradients(engine, x: np.ndarray, baseline: np.ndarray, class_index: int, steps: int = 32,
                         progress: Progress = None, points: str = "adaptive") -> Integrated:
    """Integrated gradients (Sundararajan et al. 2017): (x − x') times the class logit's gradient averaged along
    the straight path from x' to x by the composite trapezoid rule, (S, S, 3), signed; their sum approximates
    logit(x) − logit(x') (completeness).

    ``points``: ``even`` — ``steps`` evenly spaced points (:func:`trapezoid`); ``adaptive`` — a first batch of
    :data:`CHUNK` evenly spaced points, then each further batch placed where the rule is known to be off
    (:func:`refine`): every pass gives the logit at its points too, and on a segment [a, b] the trapezoid of the
    gradient along the path, (b − a)/2 · (∇(a) + ∇(b))·(x − x'), should equal logit(b) − logit(a). The same
    number of passes; above :data:`ADAPTIVE_MOST` points evenly spaced (the gradients of every point are kept
    until the end: 0.6 MB each for a 224×224 input).

    Args:
        x, baseline: (1, S, S, 3) preprocessed inputs.
    """
    steps = _check(steps, 2, "the number of steps")
    if points not in POINT_RULES:
        raise ValueError(f"unknown point placement {points!r}; choose one of {', '.join(POINT_RULES)}")
    x = np.asarray(x, np.float32)[0]
    base = np.asarray(baseline, np.float32)[0]
    delta = x - base
    adaptive = points == "adaptive" and CHUNK < steps <= ADAPTIVE_MOST
    alphas = np.linspace(0.0, 1.0, CHUNK if adaptive else steps)
    weights = trapezoid_weights(alphas)
    # α → the logit; α → the gradient (adaptive: every weight may change until the last batch)
    scores, kept, passes, placed = {}, {}, 0, 0
    total = np.zeros(x.shape, np.float64)
    while True:
        for start, stop in _chunks(len(alphas)):
            a = alphas[start:stop]
            logit, grads = engine.scores_and_input_gradient(
                base[None] + a.astype(np.float32)[:, None, None, None] * delta[None], class_index)
            passes += 1
            scores.update(zip(a, logit))
            if adaptive:
                kept.update(zip(a, grads))
            else:  # einsum, not tensordot: a BLAS call here leaves OpenBLAS's threads spinning into the next pass
                total += np.einsum("i,i...->...", weights[start:stop], grads)
            placed += len(a)
            if progress:
                progress(placed / steps)
        if not adaptive or placed >= steps:  # (counted, not len(scores): a split too fine for floats repeats a point)
            break
        order = np.array(sorted(scores))
        along = np.array([np.einsum("ijk,ijk->", kept[a], delta, dtype=np.float64) for a in order])
        errors = np.diff(order) / 2 * (along[1:] + along[:-1]) - np.diff([scores[a] for a in order])
        alphas = refine(order, errors, min(CHUNK, steps - placed))
    order = np.array(sorted(scores))
    for w, a in zip(trapezoid_weights(order), order if adaptive else ()):
        total += w * kept[a]
    return Integrated(delta.astype(np.float64) * total, passes, float(scores[1.0] - scores[0.0]), order)


def _integratedgradients(ctx: Context) -> np.ndarray:
    x = ctx.engine.prepare(ctx.rgb)
    base = baseline_input(ctx.engine, ctx.rgb, ctx.options["baseline"])
    out = integrated_gradients(ctx.engine, x, base, ctx.result.class_index, ctx.options["steps"], ctx.progress,
                               ctx.options["points"])
    ctx.passes = out.passes
    ctx.notes.append(completeness_note(out))
    return sum_magnitude(out.attributions)


def completeness_note(ig: Integrated) -> str:
    """One sentence: how far the attributions' sum is from the logit's change (completeness)."""
    return (f"Completeness: the attributions add up to {float(ig.attributions.sum()):.3g}, the class score's change "
            f"from the baseline to the photo is {ig.change:.3g} ({ig.gap:.1%} off with {len(ig.alphas)} points; "
            "more steps bring them closer).")


# --- SmoothGrad -------------------------------------------------------------------------------------------------

def noise_draws(seed: int, samples: int, shape: tuple, sigma: float) -> Iterator[np.ndarray]:
    """The noise of each copy, in order: ``sigma`` × a standard normal draw of ``shape`` (float32) from
    ``numpy.random.default_rng(seed)``, one draw per copy (any other program draws the same noise this way)."""
    rng = np.random.default_rng(_check(seed, 0, "the seed"))
    for _ in range(samples):
        yield rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _noisy_batches(engine, x: np.ndarray, samples: int, noise: int, seed: int):
    """(start, stop, batch of noisy copies of x) in chunks of :data:`CHUNK`."""
    samples = _check(samples, 1, "the number of samples")
    sigma = _check(noise, 0, "the noise level (percent)") / 100.0 * input_range(engine.spec)
    x = np.asarray(x, np.float32)[0]
    draws = noise_draws(seed, samples, x.shape, sigma)
    for start, stop in _chunks(samples):
        yield start, stop, samples, np.stack([x + next(draws) for _ in range(stop - start)])


def smoothgrad(engine, x: np.ndarray, class_index: int, samples: int = 16, noise: int = 15, seed: int = 0,
               progress: Progress = None) -> tuple[np.ndarray, int]:
    """SmoothGrad (Smilkov et al. 2017): the class logit's input gradient averaged over ``samples`` copies of x
    with Gaussian noise added (σ = ``noise`` % of :func:`input_range`, :func:`noise_draws`), (S, S, 3), signed.

    Returns:
        (mean gradient, batched passes).
    """
    total, passes = None, 0
    for _start, stop, n, batch in _noisy_batches(engine, x, samples, noise, seed):
        g = engine.input_gradient(batch, class_index).astype(np.float64).sum(axis=0)
        total = g if total is None else total + g
        passes += 1
        if progress:
            progress(stop / n)
    return total / samples, passes


def smooth_gradcam(engine, x: np.ndarray, class_index: int, layer: str, samples: int = 16, noise: int = 15,
                   seed: int = 0, progress: Progress = None) -> tuple[np.ndarray, int]:
    """Grad-CAM at ``layer`` averaged over the noisy copies of :func:`smoothgrad` (each copy's own activations
    and gradients; the same noise for the same seed), (h, w).

    Returns:
        (map, batched passes).
    """
    from .methods import gradcam

    total, passes = None, 0
    for _start, stop, n, batch in _noisy_batches(engine, x, samples, noise, seed):
        acts, grads = engine.layer_pass(batch, class_index, layer)
        m = sum(gradcam(a, g) for a, g in zip(acts, grads))
        total = m if total is None else total + m
        passes += 1
        if progress:
            progress(stop / n)
    return total / samples, passes


def _smoothgrad(ctx: Context) -> np.ndarray:
    o = ctx.options
    g, ctx.passes = smoothgrad(ctx.engine, ctx.engine.prepare(ctx.rgb), ctx.result.class_index, o["samples"],
                               o["noise"], o["seed"], ctx.progress)
    return magnitude(g)


def _smoothgradcam(ctx: Context) -> np.ndarray:
    o = ctx.options
    out, ctx.passes = smooth_gradcam(ctx.engine, ctx.engine.prepare(ctx.rgb), ctx.result.class_index, ctx.layer,
                                     o["samples"], o["noise"], o["seed"], ctx.progress)
    return out


STEPS = Tunable("steps", "Integration steps", "Points on the path from the baseline to the photo (trapezoid rule); "
                "more steps, closer to the exact integral, one gradient each.",
                "integrated gradients: points on the path (trapezoid rule)", default=32, page_default=32, low=4,
                high=128, step=4, minimum=2)
POINTS = Tunable("points", "Point placement", "Adaptive: after a first batch of evenly spaced points, each batch goes "
                 "where the sum is known to be off (the logit at every point shows it); even: evenly spaced, as "
                 "Captum's trapezoid rule.", "integrated gradients: where the points go (adaptive or even)",
                 default="adaptive", page_default="adaptive", choices=POINT_RULES)
BASELINE = Tunable("baseline", "Baseline image", "Where the path starts: a black image, or the photo blurred.",
                   "integrated gradients: the baseline image", default="black", page_default="black",
                   choices=BASELINES)
SAMPLES = Tunable("samples", "Noisy copies", "How many noisy copies of the photo are averaged.",
                  "SmoothGrad: noisy copies averaged", default=16, page_default=16, low=2, high=64, step=2, minimum=1)
NOISE = Tunable("noise", "Noise (% of the input range)", "The noise's standard deviation, as a percentage of the "
                "range of the model's input values.", "SmoothGrad: noise σ in percent of the input range",
                default=15, page_default=15, low=0, high=50, step=1, minimum=0)

_READ_MAGNITUDE = "brightness: the gradient's magnitude, the largest over the colour channels"
ENTRIES: tuple[Method, ...] = (
    Method("guidedbackprop", "Guided Backprop", "input gradient with every ReLU passing back only positive signals: "
           "sharp, but barely depends on the class or the weights",
           "Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR Workshop 2015",
           "https://arxiv.org/abs/1412.6806", fn=_guidedbackprop, needs_model=True, extra_passes=True, live=False,
           progress=True, layer="input", pixels=True, family="gradients",
           reading=_READ_MAGNITUDE + " (gated at every ReLU/ReLU6; a swish model such as EfficientNetB0 has none, "
           "so there it is the plain gradient)"),
    Method("guidedgradcam", "Guided Grad-CAM", "guided backprop times the layer's upsampled Grad-CAM: pixel-sharp and "
           "class-discriminative (the Grad-CAM paper's own visualisation)",
           "Selvaraju et al., Grad-CAM, ICCV 2017 (section 3)", "https://arxiv.org/abs/1610.02391",
           fn=_guidedgradcam, needs_model=True, extra_passes=True, live=False, progress=True, pixels=True,
           family="gradients",
           reading="brightness: the magnitude of guided backprop × Grad-CAM, the largest over the colour channels"),
    Method("integratedgradients", "Integrated Gradients", "gradients averaged along the path from a baseline image "
           "to the photo, times the difference: they add up to the score's change",
           "Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
           "https://arxiv.org/abs/1703.01365", fn=_integratedgradients, needs_model=True, extra_passes=True,
           live=False, progress=True, layer="input", pixels=True, family="gradients",
           reading="brightness: the size of each pixel's attribution (its colour channels added), either sign",
           tunables=(STEPS, BASELINE, POINTS)),
    Method("smoothgrad", "SmoothGrad", "the input gradient averaged over noisy copies of the photo: less speckle",
           "Smilkov et al., SmoothGrad: removing noise by adding noise, 2017", "https://arxiv.org/abs/1706.03825",
           fn=_smoothgrad, needs_model=True, extra_passes=True, live=False, progress=True, layer="input",
           pixels=True, family="gradients", reading=_READ_MAGNITUDE + " (averaged over the noisy copies first)",
           tunables=(SAMPLES, NOISE, SEED)),
    Method("smoothgradcam", "SmoothGrad-CAM", "Grad-CAM averaged over noisy copies of the photo",
           "Smilkov et al., SmoothGrad, 2017, applied to Grad-CAM", "https://arxiv.org/abs/1706.03825",
           fn=_smoothgradcam, needs_model=True, extra_passes=True, live=False, progress=True,
           tunables=(SAMPLES, NOISE, SEED)),
)
