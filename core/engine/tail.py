"""The network from one explainable layer to the logits, compiled: what a method that changes a layer's activations
and asks for the class score again (Ablation-CAM) runs, instead of the whole network.

:func:`tail_of` gives an engine's :class:`Tail` for a layer, built once and kept while the engine lives (a few per
engine, by a weak reference to the engine, so a dropped engine is freed with its tails). A tail is the engine's own (folded) layers
from the layer's output on, so it reads the same weights: inside the compiled function it enters the weights'
scope exactly as :mod:`.passes` does (:mod:`core.models.held`). Its batches go through
:func:`~core.engine.passes.in_buckets`, so the compiled function sees the engine's few batch sizes only.

A tail exists only where everything after the layer depends on that layer's output alone. In a network with skip
connections that reach past the layer (Xception's ``block2_pool``: the block's shortcut convolution reads the
block's input, not the pooled output) it does not: :class:`NoTail` says so in one sentence.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict

import numpy as np

from .passes import _Compiled, in_buckets


class NoTail(ValueError):
    """The network after a layer reads more than that layer's output; ``str(err)`` says so in one sentence."""


class Tail:
    """The engine's network from ``layer``'s output to the logits, compiled (traced on first use).

    Holds the engine's model's layers and its held weights, never the engine itself.

    Raises:
        NoTail: the rest of the network also reads tensors from before ``layer`` (a skip connection past it).
        ValueError: ``layer`` is not one of the engine's explainable layers.
    """

    def __init__(self, engine, layer: str):
        import keras
        import tensorflow as tf

        if layer not in engine.layers:
            raise ValueError(f"unknown layer {layer!r} for {engine.spec.name}; choose one of {', '.join(engine.layers)}")
        model = engine.model
        out = model.get_layer(layer).output
        try:
            self._model = keras.Model(out, model.output)
        except ValueError:  # Keras: an output not connected to the given input
            raise NoTail(f"in {engine.spec.title} the network after {layer} also reads layers before it "
                         "(a skip connection reaches past it), so it cannot be run from that layer alone") from None
        self.layer = layer
        self.shape = tuple(int(d) for d in out.shape[1:])
        self.dtype = np.dtype(out.dtype)
        weights = engine.held.scope if engine.held is not None else contextlib.nullcontext
        tail = self._model

        @tf.function(input_signature=[tf.TensorSpec((None, *self.shape), out.dtype)], reduce_retracing=True,
                     autograph=False)
        def logits(a):
            with weights():
                return tail(a, training=False)

        self._logits = _Compiled(logits)

    def logits(self, acts: np.ndarray) -> np.ndarray:
        """Logits (N, classes), float64, for a batch of the layer's activations (N, h, w, c)."""
        import tensorflow as tf

        acts = np.asarray(acts, self.dtype)
        if acts.shape[1:] != self.shape:
            raise ValueError(f"activations of shape {acts.shape[1:]} for a layer of shape {self.shape}")
        return in_buckets(lambda a: self._logits(tf.constant(a)).numpy(), acts).astype(np.float64)


KEPT = 4  # tails kept per engine, the most recently used: each holds a compiled graph of the network's rest
# engine → {layer: Tail, or NoTail's message} (a message, not the exception: its traceback would hold the engine)
_TAILS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def tail_of(engine, layer: str) -> Tail:
    """The engine's tail from ``layer``: built on first use, then reused while the engine lives (the
    :data:`KEPT` most recently used per engine).

    Raises:
        NoTail: no tail can be built from that layer (the answer is remembered too).
        ValueError: an unknown layer.
    """
    with _LOCK:
        known = _TAILS.setdefault(engine, OrderedDict())
        if layer not in known:
            try:
                known[layer] = Tail(engine, layer)
            except NoTail as exc:
                known[layer] = str(exc)
        known.move_to_end(layer)
        while sum(isinstance(t, Tail) for t in known.values()) > KEPT:
            del known[next(k for k, t in known.items() if isinstance(t, Tail))]
        got = known[layer]
    if isinstance(got, str):
        raise NoTail(got)
    return got
