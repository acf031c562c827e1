"""The sanity check: cascading model-parameter randomisation (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018).

Re-initialise the model's weights from the top block downward, one block at a time, recompute the map after
each step (for the class the intact model chose) and compare it to the original map. A method whose map
survives the destruction of the model explains the photo (edges, contrast), not the model.

How it is done here:

- The randomised model is always a **separate copy**: :func:`cascade` clones the Keras model it is given and
  builds its own :class:`core.engine.Engine` on the copy; a cached engine or the app's pool is never touched.
- The engine runs the model with every BatchNorm folded into its convolution (:mod:`core.models.fold`), so a
  "layer" here is a convolution (or dense layer) together with its BatchNorm.
- Blocks: consecutive layers with weights that share a name prefix (:func:`block_of`): Lite0's ``predictions``,
  ``top``, ``block7a`` … ``block1a``, ``stem``; ResNet50's ``conv5_block3`` …; VGG16's ``fc2`` … ``block1``.
- Re-initialisation draws what a freshly built layer would hold: kernels Glorot-uniform (Keras's default
  initialiser, with Keras's fan-in/fan-out), biases zero (a fresh BatchNorm folded into a zero bias), from a
  seeded NumPy generator (:func:`fresh_weights`, the default). Both are parameters of :func:`cascade`:
  ``reinit`` is any ``(layer, rng) -> new weights``, e.g. :func:`permuting`, the randomisation of Quantus's
  ``MPRT`` (each weight array's first axis permuted, the legacy NumPy generator re-seeded per layer), and
  ``per_layer=True`` makes every layer with weights its own step (Quantus's granularity) instead of a block.
  tools/quantus_reference.py runs Quantus's ``MPRT`` end to end and tests/test_metrics_quantus.py checks
  that the cascade, so configured, gives its Spearman correlations.
- Both maps are upsampled (bilinear) to the model's input size before comparing. Spearman's rank
  correlation is taken on the raw values; SSIM on each map divided by its maximum (:mod:`.similarity`).
- After every re-initialisation the engine's result caches are emptied (:func:`randomise`): a method that keeps
  a result per photo and class (guided backpropagation's gradient) recomputes it with the new weights.
- ``final_only=True`` computes the map of the fully randomised model alone: every block re-initialised at once,
  in the cascade's order and from the same generator, so the weights, and the map, are exactly those of the
  full cascade's last step (one map instead of one per block). Many photos and methods on one randomised
  model: :func:`private_engine`, :func:`map_of` and :func:`randomise` (``tools/sanity_table.py``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..cam import methods
from ..imaging import render
from . import baselines, similarity


@dataclass(frozen=True)
class Step:
    """One step of the cascade: every block from the top down to ``randomised_from`` is random now; ``cam`` is
    the raw map (the layer's grid)."""

    randomised_from: str
    layers: tuple[str, ...]
    spearman: float
    ssim: float
    cam: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Cascade:
    """The whole cascade: the intact raw map and one :class:`Step` per block, top first."""

    method: str
    layer: str
    class_index: int
    original: np.ndarray
    steps: tuple[Step, ...]

    def records(self) -> list[dict]:
        """``[{randomised_from, spearman, ssim, empty}, ...]`` (the CLI's ``steps``); ``empty``: the map has no
        positive value left (its Spearman correlation is then 0 by convention)."""
        return [{"randomised_from": s.randomised_from, "spearman": round(s.spearman, 6), "ssim": round(s.ssim, 6),
                 "empty": bool(render.is_empty(s.cam))} for s in self.steps]


PREPROCESSING = ("Normalization", "Rescaling")  # layers with weights that prepare the input (EfficientNetB0)


def block_of(layer_name: str) -> str:
    """The block a layer belongs to, from its name: ``block6d_expand_conv`` → ``block6d``,
    ``conv5_block3_1_conv`` → ``conv5_block3``, ``block_16_project`` → ``block_16``, ``top_conv`` → ``top``."""
    parts = layer_name.split("_")
    head = parts[0]
    if len(parts) > 1 and (parts[1].isdigit() or re.fullmatch(r"block\d+\w*", parts[1])):
        head += "_" + parts[1]
    return head


def blocks(model, per_layer: bool = False) -> list[tuple[str, list]]:
    """(block name, [layers with weights]) of a Keras model, from the top (output) block down; with
    ``per_layer``, every layer with weights is a block of its own, named as the layer."""
    out: list[tuple[str, list]] = []
    for layer in model.layers:
        if not layer.weights or layer.__class__.__name__ in PREPROCESSING:
            continue  # input normalisation is not a model parameter: zeroing its variance would scale inputs by 1e7
        name = layer.name if per_layer else block_of(layer.name)
        if out and out[-1][0] == name:
            out[-1][1].append(layer)
        else:
            out.append((name, [layer]))
    return out[::-1]


def fresh_weights(layer, rng: np.random.Generator) -> list[np.ndarray]:
    """New values for a layer's weights, as a freshly built layer would hold them (see the module's notes)."""
    new = []
    for w in layer.get_weights():
        if w.ndim >= 2:
            receptive = int(np.prod(w.shape[:-2])) if w.ndim > 2 else 1
            fan_in, fan_out = w.shape[-2] * receptive, w.shape[-1] * receptive
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            new.append(rng.uniform(-limit, limit, w.shape).astype(w.dtype))
        else:
            new.append(np.zeros_like(w))
    return new


Reinit = Callable[[object, np.random.Generator], list[np.ndarray]]
"""New weights for one Keras layer: ``reinit(layer, rng)``, a list like ``layer.get_weights()``; ``rng`` is
the cascade's generator (seeded by its ``seed``)."""


def permuting(seed: int = 42) -> Reinit:
    """The randomisation of Quantus's ``MPRT`` (0.6.0, ``TensorFlowModel.get_random_layer_generator``):
    ``np.random.seed(seed + 1)`` before each layer, then ``np.random.permutation`` of each of its weight
    arrays in turn (a permutation of the first axis: a convolution kernel's rows, a dense kernel's inputs, a
    bias's entries). The values stay, their places change; layers of one shape get the same permutation.
    A private ``RandomState`` gives the same numbers without touching NumPy's global generator.
    """
    def reinit(layer, rng: np.random.Generator) -> list[np.ndarray]:
        state = np.random.RandomState(seed + 1)
        return [state.permutation(w) for w in layer.get_weights()]

    return reinit


def map_of(engine, rgb, method: str, layer: str, class_index: int, seed: int = 0,
           options: dict | None = None) -> np.ndarray:
    """The raw map (the layer's grid, or the method's own resolution) of ``method`` with the engine's current
    weights; a baseline's map ignores them. ``options``: the method's tunables by name (Score-CAM's ``top_n``)."""
    if method in baselines.BASELINES:  # the same map at every step: it never reads the weights
        if method == "edges":  # the photo's edges at the model input's size, as evaluation draws them
            h = w = engine.spec.input_size
        else:
            h, w = engine.layer_shape(layer)[:2]
        return baselines.baseline(method, h, w, seed, rgb)
    res = engine.run_input(engine.prepare(rgb), class_index)
    return methods.compute(method, res, layer, engine=engine, rgb=rgb, **(options or {}))


def private_engine(spec, model):
    """An :class:`core.engine.Engine` on a clone of the Keras ``model`` (its weights copied): the copy the
    cascade re-initialises; ``model`` and every other engine are left alone."""
    import keras

    from ..engine import Engine

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return Engine(spec, copy)


def _reinit(engine, layers: list, reinit: Reinit, rng: np.random.Generator) -> None:
    for lay in layers:
        lay.set_weights(reinit(lay, rng))
    engine.cache.clear()  # results kept per photo and class were computed with the old weights
    engine.input_cache.clear()


def randomise(engine, seed: int = 0, reinit: Reinit = fresh_weights, per_layer: bool = False) -> list[str]:
    """Re-initialise every block of ``engine``'s model in place, top block first, from
    ``numpy.random.default_rng(seed)``: the weights the full cascade ends with (for a private engine only,
    :func:`private_engine`). Returns the blocks' names, top first."""
    rng = np.random.default_rng(seed)
    parts = blocks(engine.model, per_layer)
    _reinit(engine, [lay for _, layers in parts for lay in layers], reinit, rng)
    return [name for name, _ in parts]


def compare(original: np.ndarray, cam: np.ndarray, size: int) -> tuple[float, float]:
    """(Spearman, SSIM) of a raw map against the original raw map, both upsampled (bilinear) to size×size."""
    a = np.asarray(render.upsample(original, size, size), np.float64)
    b = np.asarray(render.upsample(cam, size, size), np.float64)
    return similarity.spearman(a, b), similarity.ssim(similarity.unit(a), similarity.unit(b))


def cascade(spec, model, rgb: np.ndarray, method: str = "gradcam", layer: str | None = None,
            class_index: int | None = None, seed: int = 0,
            progress: Callable[[float], None] | None = None, reinit: Reinit = fresh_weights,
            per_layer: bool = False, final_only: bool = False, options: dict | None = None) -> Cascade:
    """Cascading randomisation of ``model`` (a Keras model, left as it is) for one photo.

    Args:
        spec: the model's :class:`core.models.ModelSpec`.
        model: a Keras model with its trained weights (e.g. ``core.models.load_model(spec.name)``); it is
            cloned, never modified.
        rgb: (H, W, 3) uint8 photo.
        method: a method name, or a baseline ('random', 'centre', 'edges': maps that ignore the model, so
            every step gives the original map back: Spearman 1, SSIM 1).
        layer: the explained layer (default: the model's last explainable one).
        class_index: the class to explain (default: the intact model's top-1), kept through the cascade.
        seed: for the re-initialisation (and the random baseline).
        progress: called with the fraction done, 0..1.
        reinit: the new weights of a layer (:data:`Reinit`); default :func:`fresh_weights` (Glorot-uniform
            kernels, zero biases); :func:`permuting` is Quantus's permutation.
        per_layer: one step per layer with weights (named as the layer) instead of one per block.
        final_only: one step only, the fully randomised model (named as the last block, every layer in it):
            the same weights and map as the full cascade's last step.
        options: the method's tunables by name (e.g. ``{"top_n": 256}`` for Score-CAM).
    """
    layer = layer or spec.default_layer
    if layer not in spec.layers:
        raise ValueError(f"unknown layer {layer!r} for {spec.name}; choose one of {', '.join(spec.layers)}")
    if method not in baselines.BASELINES:
        methods.get(method)
    engine = private_engine(spec, model)  # its own (folded) copy: the pool's engines are never touched
    if class_index is None:
        class_index = engine.run_input(engine.prepare(rgb)).class_index
    class_index = spec.check_class(class_index)
    original = map_of(engine, rgb, method, layer, class_index, seed, options)
    rng = np.random.default_rng(seed)
    parts = blocks(engine.model, per_layer)
    if final_only:  # every block at once, in the same order from the same generator: the last step's weights
        parts = [(parts[-1][0], [lay for _, layers in parts for lay in layers])]
    steps = []
    for i, (name, layers) in enumerate(parts):
        _reinit(engine, layers, reinit, rng)
        cam = map_of(engine, rgb, method, layer, class_index, seed, options)
        rho, s = compare(original, cam, spec.input_size)
        steps.append(Step(name, tuple(l.name for l in layers), rho, s, cam))
        if progress:
            progress((i + 1) / len(parts))
    return Cascade(method, layer, class_index, original, tuple(steps))
