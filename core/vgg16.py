"""VGG16 from Keras applications, with its two hidden dense layers held in float16.

VGG16 has 138 M parameters and 119 M of them sit in ``fc1`` (25088 × 4096) and ``fc2``
(4096 × 4096): 477 MB in float32. TensorFlow alone takes about 600 MB of memory here, so a float32
VGG16 cannot be explained within the app's 1.2 GB. And ``keras.applications.VGG16(weights=...)``
first fills all 138 M parameters with random numbers and then overwrites them, which peaks at about
2.7 GB.

This module builds the same network — the layers, names and order of ``keras.applications.VGG16``
(checked against it in the tests) — from the same Keras weights file (Keras's own download and
cache), initialising every layer straight from the file, so no random weights are made first.
``fc1`` and ``fc2`` are :class:`HalfDense` layers that keep the kernel in float16 (half the memory),
as blocks of rows, and compute in float32, casting one block at a time in the forward and in the
backward pass. The file is read a block at a time too, so no float32 copy of ``fc1`` ever exists. Rounding the kernels to float16 (11 significant bits)
moves the logits by about 1e-4 of their range (tested against the float32 network).
"""
from __future__ import annotations

import numpy as np

INPUT_SIZE = 224
ROWS_PER_BLOCK = 256  # 256 × 4096 float32 = 4 MB cast at a time


class WeightsFileError(ValueError):
    """The weights file does not hold VGG16's weights; ``str(err)`` is one sentence."""


def _half_dense_class():
    import keras
    import tensorflow as tf

    class HalfDense(keras.layers.Layer):
        """A dense layer whose kernel is held in float16, as blocks of rows, and used in float32 one block at a time."""

        def __init__(self, units: int, activation=None, source=None, **kwargs):
            super().__init__(**kwargs)
            self.units = int(units)
            self.activation = keras.activations.get(activation)
            self._source = source  # (in, units) array-like (an HDF5 dataset) to read at build(); None: random

        def build(self, input_shape):
            rows = int(input_shape[-1])
            source, self._source = self._source, None  # read once, then let go of the file
            if source is not None and tuple(source.shape) != (rows, self.units):
                raise WeightsFileError(f"{self.name} has the wrong shape in the weights file.")
            limit = float(np.sqrt(6.0 / (rows + self.units)))
            self.blocks = []
            for a in range(0, rows, ROWS_PER_BLOCK):
                b = min(a + ROWS_PER_BLOCK, rows)

                def initial(shape, dtype=None, a=a, b=b):
                    if source is None:  # Glorot-uniform over the whole (rows, units) kernel
                        return keras.random.uniform(shape, -limit, limit, dtype="float16")
                    return np.asarray(source[a:b], np.float32).astype(np.float16)

                self.blocks.append(self.add_weight(name=f"kernel_rows_{a}", shape=(b - a, self.units),
                                                   initializer=initial, dtype="float16", trainable=False))
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros",
                                        dtype="float32", trainable=False)

        def call(self, inputs):
            blocks = [tf.convert_to_tensor(v.value) for v in self.blocks]
            bounds = np.cumsum([0] + [int(v.shape[0]) for v in self.blocks])

            @tf.custom_gradient
            def matmul(x, *ks):
                # one block cast at a time: each cast waits for the previous block's product
                y = None
                for k, a, b in zip(ks, bounds[:-1], bounds[1:]):
                    with tf.control_dependencies([] if y is None else [y]):
                        part = tf.matmul(x[:, a:b], tf.cast(k, tf.float32))
                    y = part if y is None else y + part

                def grad(dy):
                    parts = []
                    for k in ks:
                        with tf.control_dependencies(parts[-1:]):
                            parts.append(tf.matmul(dy, tf.cast(k, tf.float32), transpose_b=True))
                    return [tf.concat(parts, axis=1)] + [None] * len(ks)  # the kernel is never trained

                return y, grad

            return self.activation(matmul(tf.cast(inputs, tf.float32), *blocks) + self.bias.value)

        def compute_output_shape(self, input_shape):
            return tuple(input_shape[:-1]) + (self.units,)

        def get_config(self):
            return {**super().get_config(), "units": self.units,
                    "activation": keras.activations.serialize(self.activation)}

    return HalfDense


# (block, convolutions, filters): keras.applications.VGG16's layout and layer names
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def _from(source, fallback):
    """A Keras initializer that reads ``source`` (an array-like) or, when it is None, uses ``fallback``."""
    if source is None:
        return fallback

    def initial(shape, dtype=None):
        value = np.asarray(source[()], np.float32)
        if tuple(value.shape) != tuple(shape):
            raise WeightsFileError(f"a VGG16 layer has the wrong shape in the weights file: {value.shape}.")
        return value
    return initial


def build(stored: dict | None = None):
    """VGG16 (logits out) with float16 ``fc1``/``fc2``, the layers and names of ``keras.applications.VGG16``.

    Args:
        stored: layer name → [kernel, bias] array-likes (HDF5 datasets) to initialise from, so no
            random weights are made first; random weights where missing (tests).
    """
    import keras
    from keras import layers

    HalfDense = _half_dense_class()
    stored = stored or {}

    def weights(name, i):
        return stored[name][i] if name in stored else None

    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="input_layer")
    x = inp
    for block, n_convs, filters in BLOCKS:
        for i in range(1, n_convs + 1):
            name = f"block{block}_conv{i}"
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=name,
                              kernel_initializer=_from(weights(name, 0), "glorot_uniform"),
                              bias_initializer=_from(weights(name, 1), "zeros"))(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = HalfDense(4096, activation="relu", source=weights("fc1", 0), name="fc1")(x)
    x = HalfDense(4096, activation="relu", source=weights("fc2", 0), name="fc2")(x)
    x = layers.Dense(1000, name="predictions", kernel_initializer=_from(weights("predictions", 0), "glorot_uniform"),
                     bias_initializer=_from(weights("predictions", 1), "zeros"))(x)  # logits: no softmax
    model = keras.Model(inp, x, name="vgg16")
    for name in ("fc1", "fc2"):
        if name in stored:
            model.get_layer(name).bias.assign(np.asarray(stored[name][1][()], np.float32))
    return model


def _names(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def load(weights: str | None):
    """VGG16 with weights from a Keras HDF5 weights file (legacy layout), or random for ``None``.

    Raises:
        WeightsFileError: the file cannot be read or lacks some of VGG16's weights (one sentence).
    """
    if weights is None:
        return build()
    import h5py

    try:
        with h5py.File(weights, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            stored = {}
            for name in _names(group.attrs["layer_names"]):
                wnames = _names(group[name].attrs["weight_names"])
                if wnames:
                    stored[name] = [group[name][w] for w in wnames]
            expected = [f"block{b}_conv{i}" for b, n, _ in BLOCKS for i in range(1, n + 1)] + ["fc1", "fc2", "predictions"]
            missing = [n for n in expected if len(stored.get(n, ())) != 2]
            if missing:
                raise WeightsFileError(f"{weights} has no weights for {', '.join(missing)}.")
            model = build(stored)
    except WeightsFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsFileError(f"{weights} is not a readable VGG16 weights file ({exc}).") from None
    return model
