"""A model's weights held in NumPy, outside TensorFlow's allocator, and read in place by its passes.

TensorFlow's CPU allocator keeps every region it has grown to for the life of the process and
grows in regions of doubling size. A model's variables live there, and so do a pass's activations
and gradients, so after the app had visited every model the allocator held about the largest
weights-plus-pass of any of them (Xception: 93 + 103 MB in use, in 254 MB of regions), for good.

:class:`HeldWeights` keeps a model's weights in one aligned NumPy buffer instead: a block of its
own that goes back to the system when the model goes. The model's Keras variables are never made
(Keras defers them inside a ``StatelessScope``); each pass runs inside a ``StatelessScope`` that
maps every variable to a zero-copy DLPack view of its slice of the buffer, so the compiled pass
reads the weights where they are. What TensorFlow's allocator then holds is a pass's activations.

The Keras internals this needs are in :mod:`core.compat` (``keras_deferred``); without them models
load the public way (:func:`core.models.fold.load_folded`).
"""
from __future__ import annotations

import numpy as np

from .. import compat

ALIGN = 64  # TensorFlow's CPU kernels assume 64-byte aligned tensors


def aligned_empty(shape, dtype, align: int = ALIGN) -> np.ndarray:
    """An uninitialised array whose data starts on an ``align``-byte boundary."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + size].view(dtype).reshape(shape)


class DetachedWeightError(RuntimeError):
    """A model whose weights an engine holds was used outside that engine's passes."""


def _refuse(shape, dtype=None):
    raise DetachedWeightError("this model's weights are held by its engine; run it through the engine "
                              "(Engine.run, predict, logits), not directly")


def _aligned_size(nbytes: int) -> int:
    return -(-max(int(nbytes), 1) // ALIGN) * ALIGN


def slots(variables) -> dict:
    """id(variable) → an aligned, uninitialised array of its shape and dtype, all in one buffer."""
    specs = [(id(v), tuple(int(d) for d in v.shape), np.dtype(v.dtype)) for v in variables]
    sizes = [_aligned_size(int(np.prod(shape)) * dtype.itemsize) for _, shape, dtype in specs]
    buffer = aligned_empty((sum(sizes),), np.uint8)
    out, start = {}, 0
    for (key, shape, dtype), size in zip(specs, sizes):
        out[key] = buffer[start:start + int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)
        start += size
    return out


def _ready(value: np.ndarray) -> bool:
    """Whether TensorFlow can read this array where it is (aligned, contiguous, writeable memory)."""
    return value.flags.c_contiguous and value.flags.writeable and value.ctypes.data % ALIGN == 0


class HeldWeights:
    """Values for a model's (deferred) Keras variables, in one NumPy buffer that TensorFlow reads in place.

    Args:
        pairs: (Keras variable, value) for every variable the model reads. A value that is already a
            64-byte aligned, contiguous, writeable array (a loader's slot, see :func:`slots`) is used
            where it is; the others are copied into one buffer of their own.
    """

    def __init__(self, pairs):
        import tensorflow as tf

        pairs = [(var, np.asarray(value, dtype=np.dtype(var.dtype))) for var, value in pairs]
        for var, value in pairs:
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(f"{var.path}: a value of shape {value.shape} for a variable of shape {tuple(var.shape)}")
        copied = slots([var for var, value in pairs if not _ready(value)])
        self._arrays: dict[int, np.ndarray] = {}
        self.mapping = []
        for var, value in pairs:
            view = copied.get(id(var))
            if view is None:
                view = value
            else:
                view[...] = value
            self._arrays[id(var)] = view
            self.mapping.append((var, tf.experimental.dlpack.from_dlpack(view.__dlpack__())))
        self.nbytes = int(sum(v.nbytes for v in self._arrays.values()))

    def scope(self):
        """A context in which the model's variables read these values (enter it inside the traced pass)."""
        import keras

        return keras.StatelessScope(state_mapping=self.mapping, initialize_variables=False)

    def value(self, variable) -> np.ndarray:
        """The held value of one of the model's variables (a read-only view)."""
        view = self._arrays[id(variable)].view()
        view.flags.writeable = False
        return view


def detach(created, values: dict):
    """Hold the values of variables made inside ``StatelessScope(initialize_variables=False)``.

    Args:
        created: the deferred Keras variables to hold (every one the model reads).
        values: id(variable) → value; a variable without one gets its own initial value.

    Returns:
        A :class:`HeldWeights`. The variables stay deferred for good: they leave Keras's list of
        variables to initialise, and reading one outside :meth:`HeldWeights.scope` raises
        :class:`DetachedWeightError` instead of silently using an initial value.
    """
    pairs = []
    for var in created:
        value = values.get(id(var))
        pairs.append((var, initial_value(var) if value is None else value))
    held = HeldWeights(pairs)
    forget(created)
    return held


def forget(variables) -> None:
    """Take deferred variables off Keras's list of variables to initialise, for good: Keras would
    otherwise make them (random values, in TensorFlow's memory) when a ``StatelessScope`` next
    closes; reading one now raises :class:`DetachedWeightError`."""
    compat.drop_deferred(variables)
    for var in variables:
        compat.set_initializer(var, _refuse)


def initial_value(variable) -> np.ndarray:
    """A deferred variable's own initial value (its initializer's), as NumPy."""
    return np.asarray(compat.initializer(variable)(variable.shape, dtype=variable.dtype))


def deferred_ids() -> set:
    """Which variables are deferred now (ids), to tell later which ones a step deferred."""
    return {id(v) for v in compat.deferred_variables()}


def deferred_since(before: set) -> list:
    """The variables deferred since ``deferred_ids()`` gave ``before``."""
    return [v for v in compat.deferred_variables() if id(v) not in before]
