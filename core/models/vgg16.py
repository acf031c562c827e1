"""VGG16 from Keras applications, with its two hidden dense layers in float16 and outside TensorFlow.

VGG16 has 138 M parameters and 119 M of them sit in ``fc1`` (25088 × 4096) and ``fc2``
(4096 × 4096): 477 MB in float32. TensorFlow alone takes about 600 MB of memory here, so a float32
VGG16 cannot be explained within the app's 1.2 GB. And ``keras.applications.VGG16(weights=...)``
first fills all 138 M parameters with random numbers and then overwrites them, which peaks at about
2.7 GB.

This module builds the same network — the layers, names and order of ``keras.applications.VGG16``
(checked against it in the tests) — from the same Keras weights file (Keras's own download and
cache), initialising every layer straight from the file, so no random weights are made first.
``fc1`` and ``fc2`` are :class:`HalfDense` layers: their kernels are rounded to float16 once, as
blocks of 256 rows, and used in float32 one block at a time, in the forward and in the backward
pass. Rounding to float16 (11 significant bits) moves the logits by about 1e-4 of their range
(tested against the float32 network).

Where the kernels are kept:

- Loaded from a weights file, each block is written once as a small float16 file in a folder next
  to the weights file (``<weights>.float16-blocks``), and every pass *reads* the blocks it needs
  (TensorFlow's ``read_file``): the 238 MB live in the operating system's file cache, which is
  shared and which the system can take back, not in this process. TensorFlow's CPU allocator never
  returns memory it has grown to, and the app's memory peak was VGG16's kernels on top of what the
  other models had left there. The reads make a VGG16 pass slower: medians of 12 passes here were
  510-600 ms, against 340-380 ms with the kernels in memory.
- With random weights, or where that folder cannot be written, the kernel is a NumPy array that
  TensorFlow reads in place (DLPack, no copy), and that goes when the model goes.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .held import aligned_empty

INPUT_SIZE = 224
ROWS_PER_BLOCK = 256  # 256 × 4096 float32 = 4 MB cast at a time


class WeightsFileError(ValueError):
    """The weights file does not hold VGG16's weights; ``str(err)`` is one sentence."""


def _half_dense_class():
    import keras
    import tensorflow as tf

    class HalfDense(keras.layers.Layer):
        """A dense layer with a float16 kernel outside TensorFlow's memory, used in float32 one block of rows at a time.

        Args:
            units: output width.
            activation: applied after the bias.
            source: the (in, units) kernel as an array-like (an HDF5 dataset), read at ``build``;
                None for random (Glorot-uniform) weights.
            blocks_dir: where to keep the float16 blocks as files (see the module's docstring);
                None, or a folder that cannot be written: in memory.
        """

        def __init__(self, units: int, activation=None, source=None, blocks_dir=None, **kwargs):
            super().__init__(**kwargs)
            self.units = int(units)
            self.activation = keras.activations.get(activation)
            self._source, self._blocks_dir = source, blocks_dir
            self.block_files: list[str] | None = None  # the kernel streamed from these files ...
            self.kernel_f16: np.ndarray | None = None  # ... or held here

        def build(self, input_shape):
            rows = int(input_shape[-1])
            source, self._source = self._source, None  # read once, then let go of the file
            if source is not None and tuple(source.shape) != (rows, self.units):
                raise WeightsFileError(f"{self.name} has the wrong shape in the weights file.")
            self._spans = [(a, min(a + ROWS_PER_BLOCK, rows)) for a in range(0, rows, ROWS_PER_BLOCK)]
            if source is not None and self._blocks_dir is not None:
                self.block_files = _block_files(Path(self._blocks_dir) / self.name, source, self._spans)
            if self.block_files is not None:
                # the names as a variable, not constants: Grappler would otherwise read the files
                # while optimising the graph and fold the whole kernel into it as float32 constants
                self._file_names = tf.Variable(self.block_files, trainable=False, dtype=tf.string)
            else:
                limit = float(np.sqrt(6.0 / (rows + self.units)))
                kernel = aligned_empty((rows, self.units), np.float16)
                for a, b in self._spans:
                    kernel[a:b] = (np.random.uniform(-limit, limit, (b - a, self.units)) if source is None
                                   else np.asarray(source[a:b], np.float32))
                self.kernel_f16 = kernel
                # zero-copy views of the NumPy kernel (DLPack): TensorFlow never holds a copy of it
                self._blocks = [tf.experimental.dlpack.from_dlpack(kernel[a:b].__dlpack__())
                                for a, b in self._spans]
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros",
                                        dtype="float32", trainable=False)

        def count_params(self):
            return self._spans[-1][1] * self.units + self.units

        def _block(self, i: int):
            """Block ``i`` of the kernel, float32, made where it is used (one block at a time)."""
            if self.block_files is None:
                half = self._blocks[i]
            else:
                a, b = self._spans[i]
                half = tf.reshape(tf.io.decode_raw(tf.io.read_file(self._file_names[i]), tf.float16,
                                                   little_endian=True), (b - a, self.units))
            return tf.cast(half, tf.float32)

        def call(self, inputs):
            @tf.custom_gradient
            def matmul(x):
                # each block is made after the previous block's product, so one is in memory at a time
                y = None
                for i, (a, b) in enumerate(self._spans):
                    with tf.control_dependencies([] if y is None else [y]):
                        part = tf.matmul(x[:, a:b], self._block(i))
                    y = part if y is None else y + part

                def grad(dy):  # the blocks are made again, not kept from the forward pass
                    parts = []
                    for i in range(len(self._spans)):
                        with tf.control_dependencies(parts[-1:]):
                            parts.append(tf.matmul(dy, self._block(i), transpose_b=True))
                    return tf.concat(parts, axis=1)  # the kernel is never trained: no kernel gradient

                return y, grad

            return self.activation(matmul(tf.cast(inputs, tf.float32)) + self.bias.value)

        def compute_output_shape(self, input_shape):
            return tuple(input_shape[:-1]) + (self.units,)

        def get_config(self):
            return {**super().get_config(), "units": self.units,
                    "activation": keras.activations.serialize(self.activation)}

    return HalfDense


def _block_files(folder: Path, source, spans) -> list[str] | None:
    """The float16 row blocks of ``source`` as files in ``folder`` (written once, then reused);
    None where they cannot be written (a read-only cache, a full disk)."""
    units = int(source.shape[1])
    files = [folder / f"rows_{a:05d}.f16" for a, _ in spans]

    def complete() -> bool:
        return all(f.is_file() and f.stat().st_size == (b - a) * units * 2 for f, (a, b) in zip(files, spans))

    if complete():
        return [str(f) for f in files]
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:
        shutil.rmtree(folder, ignore_errors=True)
        partial.mkdir(parents=True, exist_ok=True)
        for f, (a, b) in zip(files, spans):
            np.asarray(source[a:b], np.float32).astype("<f2").tofile(partial / f.name)
        os.replace(partial, folder)  # whole or not at all
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not complete():  # another process may have written them meanwhile
            return None
    return [str(f) for f in files]


def _drop_stale_blocks(current: Path) -> None:
    """Remove the blocks made from earlier versions of a weights file (238 MB each)."""
    root = current.parent
    if not root.name.endswith(".float16-blocks") or not root.is_dir():
        return
    for other in root.iterdir():
        if other != current and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def blocks_dir(weights: str | os.PathLike) -> Path:
    """Where the float16 blocks of a weights file's dense kernels go: next to it, under a name that
    changes when the file does (its size and modification time)."""
    path = Path(weights)
    st = path.stat()
    return path.with_name(path.name + ".float16-blocks") / f"{st.st_size}-{st.st_mtime_ns}"


# (block, convolutions, filters): keras.applications.VGG16's layout and layer names
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def _from(source, fallback):
    """A Keras initializer with the values of ``source`` (an array-like, read now: the variable may
    be made after the file is closed) or, when it is None, ``fallback``."""
    if source is None:
        return fallback
    value = np.asarray(source[()], np.float32)

    def initial(shape, dtype=None):
        if tuple(value.shape) != tuple(shape):
            raise WeightsFileError(f"a VGG16 layer has the wrong shape in the weights file: {value.shape}.")
        return value
    return initial


def build(stored: dict | None = None, blocks: Path | None = None):
    """VGG16 (logits out) with float16 ``fc1``/``fc2``, the layers and names of ``keras.applications.VGG16``.

    Args:
        stored: layer name → [kernel, bias] array-likes (HDF5 datasets) to initialise from, so no
            random weights are made first; random weights where missing (tests).
        blocks: the folder for ``fc1``/``fc2``'s float16 block files (:func:`blocks_dir`); None: in memory.
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
    x = HalfDense(4096, activation="relu", source=weights("fc1", 0), blocks_dir=blocks, name="fc1")(x)
    x = HalfDense(4096, activation="relu", source=weights("fc2", 0), blocks_dir=blocks, name="fc2")(x)
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
            blocks = blocks_dir(weights)
            model = build(stored, blocks)
            _drop_stale_blocks(blocks)
    except WeightsFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsFileError(f"{weights} is not a readable VGG16 weights file ({exc}).") from None
    return model
