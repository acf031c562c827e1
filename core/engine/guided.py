"""Guided backpropagation's gated gradients (Springenberg et al. 2015), registered with TensorFlow for the
engine's guided pass (:meth:`core.engine.Engine.guided_gradient`)."""
from __future__ import annotations

import threading

# Guided backpropagation (Springenberg et al. 2015): every ReLU-family activation passes a gradient back only where
# its input is positive (and, for ReLU6, below 6) and the incoming gradient is positive. The graph's gradient
# override map swaps these in for the ops' own gradients inside the guided pass's trace only.
GUIDED_OVERRIDES = {"Relu": "GuidedRelu", "Relu6": "GuidedRelu6"}
_GUIDED_LOCK = threading.Lock()
_guided_registered = False


def register_guided_gradients() -> None:
    """Register the gated gradients of :data:`GUIDED_OVERRIDES` with TensorFlow, once per process (TensorFlow
    refuses a name registered twice)."""
    global _guided_registered
    with _GUIDED_LOCK:
        if _guided_registered:
            return
        import tensorflow as tf

        # ReLU's (ReLU6's) own backward kernel applied to the positive part of the incoming gradient: two ops per
        # activation (comparisons, their conjunction and a select measured slower)
        def guided_relu(op, grad):
            return tf.raw_ops.ReluGrad(gradients=tf.nn.relu(grad), features=op.outputs[0])

        def guided_relu6(op, grad):
            return tf.raw_ops.Relu6Grad(gradients=tf.nn.relu(grad), features=op.inputs[0])

        for name, fn in (("GuidedRelu", guided_relu), ("GuidedRelu6", guided_relu6)):
            try:
                tf.RegisterGradient(name)(fn)
            except KeyError:  # registered already in this process (a reloaded module)
                pass
        _guided_registered = True
