"""One compiled pass: probabilities plus activations and gradients of every explainable layer.

``Engine.run`` executes a single ``tf.function`` that does the forward pass, picks the class
(top-1 unless one is asked), and back-propagates the **pre-softmax** class score once, to all
explainable layers together. Its result feeds every layer and every gradient method; changing
the layer, the method's display, alpha or colormap never re-runs the network.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .. import compat
from ..imaging.images import pixel_hash, resize_for_model
from ..models import ModelSpec
from .cache import ResultCache
from .guided import GUIDED_OVERRIDES, register_guided_gradients

_TRACE_LOCK = threading.Lock()  # one trace at a time, so each knows which registrations are its own
# The batch sizes the compiled functions ever see. TensorFlow's oneDNN kernels keep what they prepare for each
# input shape for the life of the process, more the larger the batch, so running whatever batch sizes callers
# ask for (a curve's remainder, a dataset's last batch) grows the process with every new size. A few sizes,
# small ones, bound that (docs/performance.md has the figures); turning oneDNN off would keep nothing but
# makes every pass much slower.
BATCH_SIZES = (1, 2, 4, 8)
def in_buckets(fn, x: np.ndarray):
    """``fn`` (an array → array, or → tuple of arrays, function of a batch, row by row independent) on ``x`` in
    chunks whose sizes are in :data:`BATCH_SIZES`: at most the largest, the last one padded with zero rows, which
    are cut off."""
    n, most = len(x), BATCH_SIZES[-1]
    if n == 0:
        return fn(x)
    parts = []
    for start in range(0, n, most):
        chunk = x[start:start + most]
        m = len(chunk)
        size = next(b for b in BATCH_SIZES if b >= m)
        if size > m:
            chunk = np.concatenate([chunk, np.zeros((size - m, *chunk.shape[1:]), chunk.dtype)])
        out = fn(chunk)
        parts.append(tuple(o[:m] for o in out) if isinstance(out, tuple) else out[:m])
    if len(parts) == 1:
        return parts[0]
    return tuple(map(np.concatenate, zip(*parts))) if isinstance(parts[0], tuple) else np.concatenate(parts)


def _copy_out(names, tensors: list) -> dict:
    """name → a NumPy copy of the tensor's first item, letting go of each tensor once copied, so the
    copies and TensorFlow's buffers are not all in memory together (copies, not views: a cached view
    would pin TensorFlow's buffers and slow every later pass)."""
    out = {}
    for i, name in enumerate(names):
        out[name] = _read_only(np.array(tensors[i].numpy()[0]))
        tensors[i] = None
    return out


def _read_only(a: np.ndarray) -> np.ndarray:
    """Results are shared by every session: none may write into one."""
    a.flags.writeable = False
    return a


class _Compiled:
    """A ``tf.function`` with an input signature, traced once, on first use.

    Each trace through ``tf.custom_gradient`` (behind ``tf.nn.silu`` in EfficientNetB0's swish,
    and VGG16's float16 dense layers) registers a gradient closure in TensorFlow's process-wide
    gradient registry, which is never emptied (TensorFlow issues #27492 and #97697). The closure
    holds the traced graph and the graph the model's weights, so every model the app ever explained
    stayed in memory: about 300 MB per VGG16 engine, 40 MB per B0 one. The gradient tape inside the
    function keeps its own reference to those gradient functions, and nothing here differentiates a
    traced function from outside, so the registrations this trace added are dropped right after it
    (:mod:`core.compat`, ``tf_custom_gradients``; on the public path they stay).
    """

    def __init__(self, fn):
        self._fn = fn
        self._traced = False

    def __call__(self, *args):
        if not self._traced:
            with _TRACE_LOCK:
                if not self._traced:
                    before = compat.custom_gradient_names()
                    self._fn.get_concrete_function()
                    compat.forget_custom_gradients(compat.custom_gradient_names() - before)
                    self._traced = True
        return self._fn(*args)

    def eager(self, *args):
        """The same function's body run eagerly, op by op: no trace (about 0.5 s for Lite0 on the 2-core
        machine, against 0.8-1.1 s for tracing it and its first compiled run); nothing is registered."""
        return self._fn.python_function(*args)


@dataclass(frozen=True)
class PassResult:
    """What one engine pass knows about one image and one class.

    Attributes:
        probs: (classes,) softmax probabilities (1000 for ImageNet).
        logits: (classes,) pre-softmax scores.
        class_index: the explained class.
        acts: layer name → (h, w, c) activations.
        grads: layer name → (h, w, c) gradients of the class logit.
        seconds: wall time of the network pass.
    """

    probs: np.ndarray
    logits: np.ndarray
    class_index: int
    acts: dict
    grads: dict
    seconds: float

    @property
    def nbytes(self) -> int:
        """Memory held by the activations and gradients."""
        return sum(a.nbytes for a in self.acts.values()) + sum(g.nbytes for g in self.grads.values())

    def top_k(self, k: int = 5) -> list[tuple[int, float]]:
        """The k most probable classes as (index, probability), best first."""
        k = int(max(1, min(k, self.probs.shape[0])))
        idx = np.argsort(-self.probs, kind="stable")[:k]
        return [(int(i), float(self.probs[i])) for i in idx]


def _pooled_output(model, layer: str):
    """The output of the global average pooling that reads ``layer`` (the classifier's input), or ``layer``'s
    own output where no such pooling follows it (VGG16): :meth:`Engine.features` then averages it."""
    out = model.get_layer(layer).output
    for candidate in model.layers:
        if candidate.__class__.__name__ == "GlobalAveragePooling2D" and candidate.input is out:
            return candidate.output
    return out


class Engine:
    """Compiled passes over one model (never mutated; a multi-output view is built once).

    The passes run on a copy of the model with every BatchNorm folded into its convolution
    (:mod:`core.models.fold`): the same function and the same layer names in fewer ops. ``self.model`` is
    that copy; the model handed in is left as it was and is not kept. A model from
    :func:`core.models.load_inference` comes folded, with its weights held outside TensorFlow, and
    is used as it is.

    Args:
        spec: the model's registry entry.
        model: a Keras model (logits out), or the folded model of :func:`core.models.load_inference`.
        held: that model's weights, held outside TensorFlow (:mod:`core.models.held`); every pass reads them
            in place. None for a model with ordinary variables.
    """

    def __init__(self, spec: ModelSpec, model, held=None):
        import contextlib

        import keras
        import tensorflow as tf

        from ..models.fold import fold_batchnorm

        self.spec = spec
        self.held = held
        self.model = model = fold_batchnorm(model) if held is None else model
        weights = held.scope if held is not None else contextlib.nullcontext
        self.layers = tuple(spec.layers)
        self._multi = keras.Model(model.inputs, [model.get_layer(n).output for n in self.layers] + [model.output])
        n_layers = len(self.layers)
        size = spec.input_size
        sig_x = tf.TensorSpec((None, size, size, 3), tf.float32)
        sig_c = tf.TensorSpec((None,), tf.int32)
        # autograph=False: these bodies have no Python control flow on tensors (tf.where picks the class), and
        # converting Keras's layer calls for nothing took 0.1-0.3 s of the first (tracing) pass

        @tf.function(input_signature=[sig_x, sig_c], reduce_retracing=True, autograph=False)
        def explain(x, cls):
            # the tape follows the input, not the weights: no filter gradients are ever built
            with tf.GradientTape(watch_accessed_variables=False) as tape, weights():
                tape.watch(x)
                outs = self._multi(x, training=False)
                acts, logits = outs[:n_layers], outs[n_layers]
                top = tf.argmax(logits, axis=-1, output_type=tf.int32)
                c = tf.where(cls < 0, top, cls)
                score = tf.gather(logits, c, axis=1, batch_dims=1)
            grads = tape.gradient(score, acts)
            return tf.nn.softmax(logits), logits, c, acts, grads

        @tf.function(input_signature=[sig_x], reduce_retracing=True, autograph=False)
        def forward(x):
            with weights():
                logits = self.model(x, training=False)
            return tf.nn.softmax(logits), logits

        @tf.function(input_signature=[sig_x, sig_c], reduce_retracing=True, autograph=False)
        def input_gradient(x, cls):
            with tf.GradientTape(watch_accessed_variables=False) as tape, weights():
                tape.watch(x)
                logits = self.model(x, training=False)
                top = tf.argmax(logits, axis=-1, output_type=tf.int32)
                c = tf.where(cls < 0, top, cls)
                score = tf.gather(logits, c, axis=1, batch_dims=1)
            return logits, tape.gradient(score, x)

        @tf.function(input_signature=[sig_x, sig_c], reduce_retracing=True, autograph=False)
        def guided_gradient(x, cls):
            register_guided_gradients()  # at its first trace: an engine that never guides registers nothing
            # symbolic gradients honour the graph's override map (a GradientTape does not)
            with tf.compat.v1.get_default_graph().gradient_override_map(GUIDED_OVERRIDES), weights():
                logits = self.model(x, training=False)
                top = tf.argmax(logits, axis=-1, output_type=tf.int32)
                c = tf.where(cls < 0, top, cls)
                score = tf.gather(logits, c, axis=1, batch_dims=1)
            return logits, tf.gradients(score, x)[0]

        self._pooled = keras.Model(model.inputs, _pooled_output(model, spec.default_layer))

        @tf.function(input_signature=[sig_x], reduce_retracing=True, autograph=False)
        def features(x):
            with weights():
                out = self._pooled(x, training=False)
                return out if out.shape.rank == 2 else tf.reduce_mean(out, axis=[1, 2])

        self._explain, self._forward, self._input_gradient, self._features, self._guided = map(
            _Compiled, (explain, forward, input_gradient, features, guided_gradient))
        self._one_layer: OrderedDict = OrderedDict()  # layer → its compiled one-layer pass (:meth:`live_pass`)
        self._one_layer_lock = threading.Lock()
        # (photo, class) results: a Lite0 result is 8 MB, a VGG16 one 12 MB (its first layer is block1_pool, 112×112×64)
        self.cache = ResultCache(size=8, max_bytes=64 * 2**20)
        # input-sized results by (photo, class): the guided gradient, which Guided Grad-CAM reuses at every layer
        self.input_cache = ResultCache(size=4, max_bytes=16 * 2**20)

    # --- inputs -----------------------------------------------------------------------------
    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """(1, S, S, 3) model input from an (H, W, 3) uint8 photo (bilinear resize + preprocess)."""
        return self.spec.preprocess(resize_for_model(rgb, self.spec.input_size))[None]

    # --- passes -----------------------------------------------------------------------------
    def run(self, rgb: np.ndarray, class_index: int | None = None, *, eager: bool = False) -> PassResult:
        """Probabilities, plus activations and gradients of every explainable layer, for one photo.

        Results are cached by (exact pixel hash, class): asking again — for another layer,
        method, alpha or colormap — costs no network pass.

        Args:
            rgb: (H, W, 3) uint8 photo.
            class_index: the class to explain; None for the top-1.
            eager: where the pass is not cached, run it eagerly instead of compiled (:meth:`run_input`).
        """
        key_img = pixel_hash(rgb)
        if class_index is not None:
            class_index = self.spec.check_class(class_index)
        return self.cache.get_or_make(  # one pass however many sessions ask for it at once
            (key_img, class_index), lambda: self.run_input(self.prepare(rgb), class_index, eager=eager),
            lambda res: [(key_img, res.class_index)] if class_index is None else [])

    def cached(self, rgb: np.ndarray, class_index: int | None = None) -> bool:
        """Whether :meth:`run` would answer from the cache (no network pass)."""
        return (pixel_hash(rgb), None if class_index is None else int(class_index)) in self.cache

    def run_input(self, x: np.ndarray, class_index: int | None = None, *, eager: bool = False) -> PassResult:
        """The compiled pass on an already preprocessed (1, S, S, 3) input (no cache).

        ``eager``: the same function run op by op, without tracing it: the start-up work's first pass, which
        a cold server's first visitor waits for (the compiled pass is then traced by :meth:`compile`)."""
        import tensorflow as tf

        t = time.perf_counter()
        c = -1 if class_index is None else int(class_index)
        explain = self._explain.eager if eager else self._explain
        probs, logits, cls, acts, grads = explain(tf.constant(x, tf.float32), tf.constant([c], tf.int32))
        return PassResult(
            probs=_read_only(probs.numpy()[0].astype(np.float64)),
            logits=_read_only(logits.numpy()[0].astype(np.float64)),
            class_index=int(cls.numpy()[0]), acts=_copy_out(self.layers, acts), grads=_copy_out(self.layers, grads),
            seconds=time.perf_counter() - t,
        )

    def compile(self) -> None:
        """Trace the compiled pass and run it once on a blank input (its first run optimises the graph), so
        that no visitor's pass waits for either; a no-op trace where it is traced already."""
        import tensorflow as tf

        size = self.spec.input_size
        self._explain(tf.zeros((1, size, size, 3), tf.float32), tf.constant([-1], tf.int32))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for a preprocessed batch (compiled forward only)."""
        import tensorflow as tf

        return in_buckets(lambda x: self._forward(tf.constant(x, tf.float32))[0].numpy(), batch).astype(np.float64)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a preprocessed batch (compiled forward only)."""
        import tensorflow as tf

        return in_buckets(lambda x: self._forward(tf.constant(x, tf.float32))[1].numpy(), batch).astype(np.float64)

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Pooled features (N, channels) for a preprocessed batch: the global average of the last explainable
        layer, what a classifier head on this backbone reads (compiled forward only, stopping there)."""
        import tensorflow as tf

        return in_buckets(lambda x: self._features(tf.constant(x, tf.float32)).numpy(), batch)

    def input_gradient(self, x: np.ndarray, class_index: int | None = None) -> np.ndarray:
        """Gradient of the class logit with respect to the input (the least work giving every layer's gradient)."""
        import tensorflow as tf

        c = -1 if class_index is None else int(class_index)
        return in_buckets(lambda b: self._input_gradient(tf.constant(b, tf.float32),
                                                          tf.constant([c] * len(b), tf.int32))[1].numpy(), x)

    def scores_and_input_gradient(self, x: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        """The class logit (N,) float64 and its gradient with respect to the input, from the same passes."""
        import tensorflow as tf

        c = int(class_index)

        def both(b):
            logits, grads = self._input_gradient(tf.constant(b, tf.float32), tf.constant([c] * len(b), tf.int32))
            return logits.numpy()[:, c].astype(np.float64), grads.numpy()
        return in_buckets(both, x)

    def guided_gradient(self, x: np.ndarray, class_index: int | None = None) -> np.ndarray:
        """Guided backpropagation: the gradient of the class logit with respect to the input (N, S, S, 3), with
        every ReLU and ReLU6 passing back only positive gradients where its input is in its linear range
        (:data:`GUIDED_OVERRIDES`); other activations (swish) back-propagate as usual."""
        import tensorflow as tf

        c = -1 if class_index is None else int(class_index)
        return in_buckets(lambda b: self._guided(tf.constant(b, tf.float32),
                                                 tf.constant([c] * len(b), tf.int32))[1].numpy(), x)

    def guided(self, rgb: np.ndarray, class_index: int) -> np.ndarray:
        """The guided gradient (S, S, 3) of one photo for one class, kept by (exact pixels, class)."""
        class_index = self.spec.check_class(class_index)
        return self.input_cache.get_or_make(
            ("guided", pixel_hash(rgb), class_index),
            lambda: _read_only(self.guided_gradient(self.prepare(rgb), class_index)[0]))

    def guided_cached(self, rgb: np.ndarray, class_index: int) -> bool:
        """Whether :meth:`guided` would answer from the cache (no pass)."""
        return ("guided", pixel_hash(rgb), int(class_index)) in self.input_cache

    def layer_pass(self, x: np.ndarray, class_index: int | None, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """One explainable layer's activations and gradients of the class logit, (N, h, w, c) each, for a
        preprocessed batch (the one-layer pass, :func:`.one_layer.layer_pass`, in batches; no cache)."""
        from .one_layer import layer_pass

        return layer_pass(self, x, class_index, layer)

    def live_pass(self, x: np.ndarray, layer: str, class_index: int | None = None) -> PassResult:
        """The compiled pass for one preprocessed input that back-propagates to ``layer`` only
        (:func:`.one_layer.live_pass`)."""
        from .one_layer import live_pass

        return live_pass(self, x, layer, class_index)

    def layer_weights(self, layer: str) -> list[np.ndarray]:
        """The weights of one of the model's layers (as ``layer.get_weights()`` gives them)."""
        variables = self.model.get_layer(layer).weights
        if self.held is None:
            return [np.asarray(v) for v in variables]
        return [self.held.value(v) for v in variables]

    def layer_shape(self, layer: str) -> tuple[int, int, int]:
        """(h, w, c) of an explainable layer."""
        return tuple(int(d) for d in self.model.get_layer(layer).output.shape[1:])
