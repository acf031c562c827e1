"""Fold inference-mode BatchNorm into the convolution before it, for the engine's compiled pass.

A BatchNormalization at inference is an affine map per channel, y = γ(x − μ)/√(σ² + ε) + β, so a
convolution followed by it is one convolution with scaled kernel and a bias. The folded network
computes the same function in fewer ops (no BatchNorm forward, no BatchNorm gradient), which makes
the explain pass about a fifth faster on a CPU.

:func:`fold_batchnorm` works on any Keras functional model: every BatchNormalization whose only
input is a Conv2D, DepthwiseConv2D or SeparableConv2D that feeds nothing else is folded into it, and
is replaced by an identity layer **with the same name**, so an explainable layer called
``block2a_project_bn`` or ``conv3_block4_out`` reads exactly the values it read before. The original
model is neither changed nor kept; the copy is for inference only (``training=False``).
"""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Callable

import numpy as np

from .. import compat

_CONVS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")


def _producers(node) -> list[str]:
    """Names of the layers whose outputs appear in a layer config's ``inbound_nodes`` entry."""
    if isinstance(node, dict):
        history = node.get("config", {}).get("keras_history") if node.get("class_name") == "__keras_tensor__" else None
        if history:
            return [history[0]]
        return [p for v in node.values() for p in _producers(v)]
    if isinstance(node, (list, tuple)):
        return [p for v in node for p in _producers(v)]
    return []


def _output_names(spec) -> list[str]:
    """Layer names in a config's ``output_layers``: ``[name, node, tensor]`` or a list of them."""
    if isinstance(spec, (list, tuple)) and len(spec) == 3 and isinstance(spec[0], str):
        return [spec[0]]
    if isinstance(spec, (list, tuple)):
        return [n for s in spec for n in _output_names(s)]
    if isinstance(spec, dict):
        return [n for s in spec.values() for n in _output_names(s)]
    return []


def foldable_pairs(model) -> dict[str, str]:
    """{BatchNorm layer name: conv layer name} for every BatchNorm that can be folded."""
    config = model.get_config()
    inputs_of = {}
    consumers = defaultdict(int)
    for layer in config["layers"]:
        producers = _producers(layer.get("inbound_nodes", []))
        inputs_of[layer["name"]] = producers
        for p in producers:
            consumers[p] += 1
    for out in _output_names(config.get("output_layers", [])):
        consumers[out] += 1  # a model output is a consumer too
    pairs = {}
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        axis = layer.axis if isinstance(layer.axis, int) else None
        if axis not in (-1, len(layer.input.shape) - 1):
            continue
        producers = inputs_of.get(layer.name, [])
        if len(producers) != 1:
            continue
        conv = model.get_layer(producers[0])
        if type(conv).__name__ in _CONVS and consumers[conv.name] == 1:
            pairs[layer.name] = conv.name
    return pairs


def _bn_affine(bn, get=np.asarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of an inference-mode BatchNorm, in float64 (``get``: variable → its value)."""
    mean = np.asarray(get(bn.moving_mean), np.float64)
    var = np.asarray(get(bn.moving_variance), np.float64)
    gamma = np.asarray(get(bn.gamma), np.float64) if bn.gamma is not None else np.ones_like(mean)
    beta = np.asarray(get(bn.beta), np.float64) if bn.beta is not None else np.zeros_like(mean)
    return bn_affine(gamma, beta, mean, var, bn.epsilon)


def bn_affine(gamma, beta, mean, var, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of an inference-mode BatchNorm from its four vectors, in float64."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + epsilon)
    return scale, np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale


def fold_kernel(kind: str, kernel, bias, scale, shift) -> list[np.ndarray]:
    """A Conv2D's or DepthwiseConv2D's [kernel, bias] (Keras layouts; ``bias`` None without one) with the
    BatchNorm (``scale``, ``shift``) after it folded in, in float32."""
    new_bias = ((0.0 if bias is None else np.asarray(bias, np.float64)) * scale + shift).astype(np.float32)
    kernel = np.asarray(kernel, np.float64)
    if kind == "Conv2D":
        return [(kernel * scale).astype(np.float32), new_bias]  # (kh, kw, cin, cout): cout last
    if kind == "DepthwiseConv2D":  # (kh, kw, cin, mult): output channel = c·mult + m
        return [(kernel * scale.reshape(kernel.shape[2], kernel.shape[3])).astype(np.float32), new_bias]
    raise ValueError(f"cannot fold a BatchNorm into a {kind}")


def _folded_weights(conv, bn, get=np.asarray) -> list[np.ndarray]:
    """The conv's weights with ``bn`` folded in: kernel(s) scaled per output channel, plus a bias."""
    scale, shift = _bn_affine(bn, get)
    kind = type(conv).__name__
    if kind in ("Conv2D", "DepthwiseConv2D"):
        return fold_kernel(kind, get(conv.kernel), get(conv.bias) if conv.use_bias else None, scale, shift)
    bias = np.asarray(get(conv.bias), np.float64) if conv.use_bias else 0.0
    new_bias = (bias * scale + shift).astype(np.float32)
    depthwise = np.asarray(get(conv.depthwise_kernel), np.float32)  # SeparableConv2D: the pointwise part scales
    pointwise = np.asarray(get(conv.pointwise_kernel), np.float64) * scale
    return [depthwise, pointwise.astype(np.float32), new_bias]


@lru_cache(maxsize=None)
def folded_batchnorm_class():
    """The identity layer that stands where a folded BatchNorm was (same name, no weights)."""
    import keras

    class FoldedBatchNorm(keras.layers.Layer):
        """Where a BatchNorm was: its scale and shift now live in the convolution before it."""

        def call(self, inputs, training=None, mask=None):
            return inputs

    return FoldedBatchNorm


def _folded_clone(model, pairs: dict):
    """A copy of ``model``'s graph with the convolutions of ``pairs`` given a bias and their BatchNorms
    replaced by identities of the same name (new variables, made under the current Keras scope)."""
    import keras

    convs = {conv: bn for bn, conv in pairs.items()}
    identity = folded_batchnorm_class()

    def clone(layer):
        if layer.name in pairs:
            return identity(name=layer.name)
        config = layer.get_config()
        if layer.name in convs:
            config["use_bias"] = True
        return type(layer).from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _folded_layers(model, pairs: dict, get=None):
    """(layer, its weights in the folded copy) for every layer of ``model`` that keeps weights
    (``get``: variable → its value; by default the layer's own weights)."""
    convs = {conv: bn for bn, conv in pairs.items()}
    for layer in model.layers:
        if layer.name in convs:
            yield layer, _folded_weights(layer, model.get_layer(convs[layer.name]), get or np.asarray)
        elif layer.name not in pairs and layer.weights:
            yield layer, [get(v) for v in layer.weights] if get else layer.get_weights()


def _set(folded, values: dict) -> None:
    for layer in folded.layers:
        if layer.name in values:
            layer.set_weights(values[layer.name])
            if hasattr(layer, "finalize_state"):  # e.g. Normalization: its mean and variance are read here
                layer.finalize_state()


def fold_batchnorm(model):
    """A copy of ``model`` with every foldable BatchNorm folded into its convolution.

    Layer names, outputs and the function computed are unchanged (up to float rounding); the copy
    has no BatchNorm left where a convolution could absorb it. Returns ``model`` itself when there
    is nothing to fold (VGG16), so no weights are duplicated.
    """
    pairs = foldable_pairs(model)
    if not pairs:
        return model
    folded = _folded_clone(model, pairs)
    _set(folded, {layer.name: values for layer, values in _folded_layers(model, pairs)})
    return folded


def load_folded(build: Callable):
    """The model ``build()`` makes, folded, with its weights held outside TensorFlow (:mod:`core.models.held`).

    TensorFlow's CPU allocator keeps the memory it grew to, so no copy of the weights is made there
    at all: ``build()`` runs in a scope where Keras defers making variables and where each value the
    weights loader assigns goes straight into one NumPy buffer (``Collect``, below); each BatchNorm
    is folded into its convolution's kernel in that buffer, in place; the folded copy of the graph
    is made with deferred variables too; and the buffer becomes the
    :class:`~core.models.held.HeldWeights` that the engine's passes read. So the weights are in memory
    once, also while loading. A model with nothing to fold (VGG16) is held as it was built.

    Returns:
        (model, held): the folded model, whose variables only have values inside ``held.scope()``,
        and its :class:`~core.models.held.HeldWeights`; ``held`` is None on core.compat's public path (no
        ``keras_deferred``): then the model is an ordinary folded copy.
    """
    from . import held as held_mod

    if not compat.available("keras_deferred"):  # the public path: an ordinary folded copy
        return fold_batchnorm(build()), None
    before = held_mod.deferred_ids()
    try:
        return _load_held(build, held_mod)
    except BaseException:  # nothing of a failed load may stay on Keras's list to be made later
        held_mod.forget(held_mod.deferred_since(before))
        raise


def _load_held(build: Callable, held_mod):
    loading = _Loading()
    with loading.scope:
        model = build()
    built = loading.created()
    pairs = foldable_pairs(model)
    if not pairs:
        held = held_mod.detach(built, loading.values)
        _finalize(model, held)
        return model, held
    import keras

    def value_of(variable):
        value = loading.values.get(id(variable))
        return value if value is not None else held_mod.initial_value(variable)

    before = held_mod.deferred_ids()
    with keras.StatelessScope(initialize_variables=False):  # no variable is made in here
        folded = _folded_clone(model, pairs)
    created = held_mod.deferred_since(before)
    by_var = {}
    for layer, values in _folded_layers(model, pairs, value_of):
        # a folded kernel goes back into its own slot of the buffer (same shape), not into a new array
        for i, variable in enumerate(layer.weights[:len(values)]):
            slot = loading.values.get(id(variable))
            if slot is not None and slot is not values[i] and slot.shape == values[i].shape:
                slot[...] = values[i]
                values[i] = slot
        for variable, value in zip(folded.get_layer(layer.name).weights, values):
            by_var[id(variable)] = value
    held_mod.forget(built)  # the original's variables are never made
    del model, loading
    held = held_mod.detach(created, by_var)
    _finalize(folded, held)
    return folded, held


def _finalize(model, held) -> None:
    with held.scope():
        for layer in model.layers:
            if hasattr(layer, "finalize_state"):  # e.g. Normalization: makes tensors from its variables
                layer.finalize_state()


class _Loading:
    """While a model is built and its weights loaded: variables are deferred (not made), and each value
    assigned to one is copied at once into its slot of one NumPy buffer laid out for all the variables
    made in the scope (``values``: id(variable) → its slot), so TensorFlow holds one variable's value at a
    time; reading a variable gives what was assigned to it. ``scope`` is the context to build in."""

    def __init__(self):
        from . import held as held_mod

        self._held = held_mod
        self.values: dict = {}
        self._before = held_mod.deferred_ids()
        self._slots = None
        self.scope = compat.recording_scope(self._assign, lambda variable: self.values.get(id(variable)))

    def created(self) -> list:
        return self._held.deferred_since(self._before)

    def _assign(self, variable, value) -> None:
        if self._slots is None:  # the first assignment: the model is built, its variables known
            self._slots = self._held.slots(self.created())
        slot = self._slots.get(id(variable))
        if slot is None:  # a variable made after the first assignment
            self.values[id(variable)] = np.array(value)
        else:
            slot[...] = np.asarray(value)
            self.values[id(variable)] = slot
