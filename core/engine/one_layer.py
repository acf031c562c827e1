"""The one-layer pass (:meth:`core.engine.Engine.live_pass`, :meth:`core.engine.Engine.layer_pass`): the
probabilities and one layer's activations and gradients, back-propagating only as far as that layer — a live view's
frame, or a batch of noisy copies for SmoothGrad-CAM."""
from __future__ import annotations

import time

import numpy as np

from .passes import PassResult, _Compiled, _copy_out, _read_only, in_buckets

# The one-layer passes an engine keeps compiled (:meth:`Engine.live_pass`, :meth:`Engine.layer_pass`), the most
# recently used: each is a trace of its own (about a second to make, a few MB of graph)
ONE_LAYER_PASSES = 3


def live_pass(engine, x: np.ndarray, layer: str, class_index: int | None = None) -> PassResult:
    """The compiled pass for one (1, S, S, 3) preprocessed input that back-propagates to ``layer`` only: the
    probabilities, and that layer's activations and gradients (what a live view shows). The gradient of a late
    layer needs only the network's last few operations backwards, and one layer is copied out instead of all.

    Each layer's pass is traced on its first use; the engine keeps :data:`ONE_LAYER_PASSES` of them, the most
    recently used (they go with the engine), shared with :func:`layer_pass`. One photo; no cache.

    Raises:
        ValueError: an unknown layer, or an input that is not one preprocessed photo.
    """
    import tensorflow as tf

    if layer not in engine.layers:
        raise ValueError(f"unknown layer {layer!r} for {engine.spec.name}; choose one of {', '.join(engine.layers)}")
    size = engine.spec.input_size
    if x.shape != (1, size, size, 3):
        raise ValueError(f"the live pass takes one preprocessed photo, shape (1, {size}, {size}, 3); got {x.shape}")
    fn = _one_layer_pass(engine, layer)
    t = time.perf_counter()
    c = -1 if class_index is None else int(engine.spec.check_class(class_index))
    probs, logits, cls, act, grad = fn(tf.constant(x, tf.float32), tf.constant([c], tf.int32))
    return PassResult(
        probs=_read_only(probs.numpy()[0].astype(np.float64)),
        logits=_read_only(logits.numpy()[0].astype(np.float64)),
        class_index=int(cls.numpy()[0]), acts=_copy_out([layer], [act]), grads=_copy_out([layer], [grad]),
        seconds=time.perf_counter() - t)


def layer_pass(engine, x: np.ndarray, class_index: int | None, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """``layer``'s activations and the class logit's gradients there, (N, h, w, c) each, for a preprocessed batch
    (N, S, S, 3): the one-layer pass of :func:`live_pass` in batches of :data:`.passes.BATCH_SIZES`; no cache.

    Against the full pass (every layer's gradients, all of them copied out), for 16 noisy copies of a Lite0 photo
    at its last layer: 221 ms against 512 and a peak 167 MB lower (measured alone on a 2-core EPYC); the maps are
    identical. The first call at a layer also traces its pass (about 0.8 s there), shared by every later call.

    Raises:
        ValueError: an unknown layer.
    """
    import tensorflow as tf

    if layer not in engine.layers:
        raise ValueError(f"unknown layer {layer!r} for {engine.spec.name}; choose one of {', '.join(engine.layers)}")
    fn = _one_layer_pass(engine, layer)
    c = -1 if class_index is None else int(engine.spec.check_class(class_index))

    def both(b):
        out = fn(tf.constant(b, tf.float32), tf.constant([c] * len(b), tf.int32))
        return out[3].numpy(), out[4].numpy()

    return in_buckets(both, np.asarray(x, np.float32))


def _one_layer_pass(engine, layer: str) -> _Compiled:
    with engine._one_layer_lock:
        fn = engine._one_layer.get(layer)
        if fn is not None:
            engine._one_layer.move_to_end(layer)
            return fn
        fn = engine._one_layer[layer] = _Compiled(_make_one_layer(engine, engine.layers.index(layer)))
        while len(engine._one_layer) > ONE_LAYER_PASSES:
            engine._one_layer.popitem(last=False)
        return fn


def _make_one_layer(engine, i: int):
    import contextlib

    import tensorflow as tf

    weights = engine.held.scope if engine.held is not None else contextlib.nullcontext
    n_layers, size = len(engine.layers), engine.spec.input_size

    # any batch size (a live frame is one; layer_pass's batches up to 8): one trace, as fast for one photo as a trace
    # for exactly one (Lite0's last layer, medians of 60 taken in turns, three runs: 36.6, 33.5, 39.9 ms against
    # 35.4, 34.6, 41.7)
    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32), tf.TensorSpec((None,), tf.int32)],
                 autograph=False)
    def one_layer(x, cls):
        with tf.GradientTape(watch_accessed_variables=False) as tape, weights():
            tape.watch(x)
            outs = engine._multi(x, training=False)
            act, logits = outs[i], outs[n_layers]
            top = tf.argmax(logits, axis=-1, output_type=tf.int32)
            c = tf.where(cls < 0, top, cls)
            score = tf.gather(logits, c, axis=1, batch_dims=1)
        return tf.nn.softmax(logits), logits, c, act, tape.gradient(score, act)

    return one_layer
