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
from typing import Callable

import numpy as np

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


def _bn_affine(bn) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of an inference-mode BatchNorm, in float64."""
    mean = np.asarray(bn.moving_mean, np.float64)
    var = np.asarray(bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.gamma is not None else np.ones_like(mean)
    beta = np.asarray(bn.beta, np.float64) if bn.beta is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """The conv's weights with ``bn`` folded in: kernel(s) scaled per output channel, plus a bias."""
    scale, shift = _bn_affine(bn)
    kind = type(conv).__name__
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else 0.0
    new_bias = (bias * scale + shift).astype(np.float32)
    if kind == "Conv2D":
        kernel = np.asarray(conv.kernel, np.float64) * scale  # (kh, kw, cin, cout): cout last
        return [kernel.astype(np.float32), new_bias]
    if kind == "DepthwiseConv2D":
        kernel = np.asarray(conv.kernel, np.float64)  # (kh, kw, cin, mult): output channel = c·mult + m
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        return [kernel.astype(np.float32), new_bias]
    depthwise = np.asarray(conv.depthwise_kernel, np.float32)  # SeparableConv2D: the pointwise part scales
    pointwise = np.asarray(conv.pointwise_kernel, np.float64) * scale
    return [depthwise, pointwise.astype(np.float32), new_bias]


def _folded_clone(model, pairs: dict):
    """A copy of ``model``'s graph with the convolutions of ``pairs`` given a bias and their BatchNorms
    replaced by identities of the same name (new variables, made under the current Keras scope)."""
    import keras

    convs = {conv: bn for bn, conv in pairs.items()}

    class FoldedBatchNorm(keras.layers.Layer):
        """Where a BatchNorm was: its scale and shift now live in the convolution before it."""

        def call(self, inputs, training=None, mask=None):
            return inputs

    def clone(layer):
        if layer.name in pairs:
            return FoldedBatchNorm(name=layer.name)
        config = layer.get_config()
        if layer.name in convs:
            config["use_bias"] = True
        return type(layer).from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _folded_values(model, pairs: dict) -> dict:
    """Layer name → the weights (NumPy) of that layer in the folded copy."""
    convs = {conv: bn for bn, conv in pairs.items()}
    values = {}
    for layer in model.layers:
        if layer.name in convs:
            values[layer.name] = _folded_weights(layer, model.get_layer(convs[layer.name]))
        elif layer.name not in pairs and layer.weights:
            values[layer.name] = layer.get_weights()
    return values


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
    _set(folded, _folded_values(model, pairs))
    return folded


def load_folded(build: Callable):
    """``fold_batchnorm(build())``, with the weights in TensorFlow only once at any time.

    :func:`fold_batchnorm` makes the copy's variables while the original's still exist: two copies of
    the weights in TensorFlow's allocator (ResNet50: 2 × 98 MB), which never gives back the memory it
    grew to. Here the copy is made with no variables yet (Keras defers them inside a
    ``StatelessScope``), the folded weights are computed in NumPy, the original is dropped, and only
    then are the copy's variables made, straight from those values (no random initial weights).
    """
    import gc

    import keras

    model = build()
    pairs = foldable_pairs(model)
    if not pairs:
        return model
    try:
        from keras.src.backend.common.variables import initialize_all_variables
    except ImportError:  # another Keras layout: the plain copy
        return fold_batchnorm(model)
    with keras.StatelessScope(initialize_variables=False):  # made at the end, from the folded values
        folded = _folded_clone(model, pairs)
    values = _folded_values(model, pairs)
    del model
    gc.collect()
    for layer in folded.layers:
        for variable, value in zip(layer.weights, values.get(layer.name, ())):
            variable._initializer = _Given(value)
    initialize_all_variables()  # every deferred variable: these values, or its own initializer
    for layer in folded.layers:
        if layer.name in values and hasattr(layer, "finalize_state"):
            layer.finalize_state()
    return folded


class _Given:
    """A Keras initializer that returns a given array (checked against the variable's shape)."""

    def __init__(self, value):
        self.value = np.asarray(value)

    def __call__(self, shape, dtype=None):
        if tuple(self.value.shape) != tuple(shape):
            raise ValueError(f"folded weight of shape {self.value.shape} for a variable of shape {tuple(shape)}")
        value, self.value = self.value, None  # used once
        return value
