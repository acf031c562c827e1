"""Every private TensorFlow, Keras and C-library API the studio uses, each probed once, each with a public path.

The studio keeps its memory down by reaching into internals that no library promises to keep. They
all live here, and nowhere else. Each has a *probe* that checks, once per process, that the internal
exists **and behaves as expected** on a tiny example. Where a probe fails, :func:`available` is False,
one warning line names the internal on the ``core.compat`` logger, and the callers take the public
path: memory may grow, results never change, nothing fails.

- ``tf_custom_gradients``: TensorFlow's ``ops._gradient_registry``, to drop the ``tf.custom_gradient``
  registrations a trace added (TensorFlow issues #27492, #97697). Without it, each traced model that uses
  ``tf.custom_gradient`` (EfficientNetB0's swish, VGG16's float16 layers) stays in memory for good
  (~40 MB a B0 engine, ~300 MB a VGG16 one).
- ``keras_deferred``: Keras's list of deferred variables (``keras.src.backend.common.global_state``), a
  variable's ``_initializer``, and ``StatelessScope``'s ``add_update`` / ``get_current_value`` hooks, to
  hold a model's weights in NumPy. Without it, weights load the public way, into TensorFlow's allocator,
  which never gives memory back (+100 to 400 MB after a tour of the models).
- ``tf_kernel_cache``: ``context.context().clear_kernel_cache()``, to drop the kernels of dropped models.
  Without it, a few MB per model stay after it goes.
- ``glibc_malloc``: ``mallopt`` (2 arenas, a fixed 4 MB mmap threshold) and ``malloc_trim`` through
  ctypes. Without it, freed models' memory stays in the heap (+40 MB at the switching peak).
For tests and for people who want the public path only, ``GRADCAM_STUDIO_PUBLIC_ONLY=1`` (or a
comma-separated list of the names above) turns probes off, and :func:`forced_off` does so in-process.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from typing import Callable

log = logging.getLogger("core.compat")

NAMES = ("tf_custom_gradients", "keras_deferred", "tf_kernel_cache", "glibc_malloc")
LOST = {
    "tf_custom_gradients": "traced models using tf.custom_gradient stay in memory",
    "keras_deferred": "weights load into TensorFlow's allocator, which keeps the memory",
    "tf_kernel_cache": "kernels of dropped models stay in memory",
    "glibc_malloc": "freed memory stays in the process heap",
}
_results: dict[str, bool] = {}
_forced: set[str] = set()
_lock = threading.Lock()


def forced_by_environment(name: str) -> bool:
    """Whether ``GRADCAM_STUDIO_PUBLIC_ONLY`` asks for the public path for ``name`` (``1``/``all``: for every
    internal, this module's and ``server.runtime``'s Streamlit one; or a comma-separated list of names)."""
    value = os.environ.get("GRADCAM_STUDIO_PUBLIC_ONLY", "").strip()
    if not value or value == "0":
        return False
    return value.lower() in ("1", "all", "true", "yes") or name in {v.strip() for v in value.split(",")}


def _env_forced() -> set[str]:
    return {name for name in NAMES if forced_by_environment(name)}


def available(name: str) -> bool:
    """Whether the internal ``name`` is there and behaves as expected (probed once; a failed probe logs
    one warning line naming it)."""
    if name not in NAMES:
        raise ValueError(f"unknown internal {name!r}")
    if name in _forced or name in _env_forced():
        return False
    with _lock:
        if name not in _results:
            try:
                ok = bool(_PROBES[name]())
                why = "it did not behave as expected"
            except Exception as exc:  # noqa: BLE001 - any failure means: take the public path
                ok, why = False, f"{type(exc).__name__}: {exc}".splitlines()[0]
            _results[name] = ok
            if not ok:
                log.warning("private API %s unavailable (%s); using the public path: %s", name, why, LOST[name])
        return _results[name]


def probe_all() -> dict[str, bool]:
    """Probe every internal now (at start-up); name → available."""
    return {name: available(name) for name in NAMES}


@contextlib.contextmanager
def forced_off(*names: str):
    """Within the block, the named internals (all when none is named) count as unavailable."""
    names = set(names or NAMES)
    saved = set(_forced)
    _forced.update(names)
    try:
        yield
    finally:
        _forced.clear()
        _forced.update(saved)


# --- TensorFlow's gradient registry -------------------------------------------------------------------------
def _gradient_registry() -> dict:
    from tensorflow.python.framework import ops

    return ops._gradient_registry._registry


def custom_gradient_names() -> set:
    """Names under which ``tf.custom_gradient`` has registered graph-mode gradients so far (empty on the
    public path)."""
    if not available("tf_custom_gradients"):
        return set()
    return {k for k in _gradient_registry() if k.startswith("CustomGradient-")}


def forget_custom_gradients(names) -> None:
    """Drop these registrations (nothing on the public path)."""
    if names and available("tf_custom_gradients"):
        registry = _gradient_registry()
        for name in names:
            registry.pop(name, None)


def _probe_gradient_registry() -> bool:
    import tensorflow as tf

    registry = _gradient_registry()
    before = {k for k in registry if k.startswith("CustomGradient-")}

    @tf.custom_gradient
    def double(x):
        return 2 * x, lambda dy: 2 * dy

    tf.function(lambda x: double(x)).get_concrete_function(tf.TensorSpec((), tf.float32))
    added = {k for k in registry if k.startswith("CustomGradient-")} - before
    for k in added:
        registry.pop(k, None)
    return len(added) == 1


# --- Keras's deferred variables and StatelessScope hooks ------------------------------------------------------
def _global_state():
    from keras.src.backend.common import global_state

    return global_state


def deferred_variables() -> list:
    """Keras's list of variables made in a ``StatelessScope`` and waiting to be initialised."""
    return list(_global_state().get_global_attribute("uninitialized_variables", []) or [])


def drop_deferred(variables) -> None:
    """Take these variables off Keras's list of variables to initialise."""
    ours = {id(v) for v in variables}
    state = _global_state()
    pending = state.get_global_attribute("uninitialized_variables", []) or []
    state.set_global_attribute("uninitialized_variables", [v for v in pending if id(v) not in ours])


def initializer(variable) -> Callable:
    """A deferred variable's initializer (``initializer(shape, dtype)`` gives its initial value)."""
    return variable._initializer


def set_initializer(variable, fn: Callable) -> None:
    """Replace a deferred variable's initializer (what Keras calls when it makes the variable)."""
    variable._initializer = fn


def recording_scope(on_assign: Callable, current: Callable):
    """A ``keras.StatelessScope(initialize_variables=False)`` that hands each assignment to
    ``on_assign(variable, value)`` and reads a variable as ``current(variable)`` (None: not assigned yet)."""
    return _recording_class()(on_assign, current)


_recording_cls = None


def _recording_class():
    global _recording_cls
    if _recording_cls is None:
        import keras

        class Recording(keras.StatelessScope):
            def __init__(self, on_assign, current):
                super().__init__(initialize_variables=False)
                self._on_assign, self._current = on_assign, current

            def add_update(self, update):
                self._on_assign(*update)

            def get_current_value(self, variable):
                value = self._current(variable)
                if value is None:
                    return None
                import tensorflow as tf

                return tf.convert_to_tensor(value, dtype=variable.dtype)

        _recording_cls = Recording
    return _recording_cls


def _probe_keras_deferred() -> bool:
    import keras
    import numpy as np

    before = {id(v) for v in deferred_variables()}
    seen = {}
    try:
        with recording_scope(lambda var, value: seen.__setitem__(id(var), np.asarray(value)),
                             lambda var: seen.get(id(var))):
            var = keras.Variable(initializer="ones", shape=(2,), dtype="float32")
            var.assign(np.array([3.0, 4.0], np.float32))
            read = np.asarray(var.value)
        made = [v for v in deferred_variables() if id(v) not in before]
        start = np.asarray(initializer(var)((2,), dtype="float32"))
        ok = (made == [var] and np.array_equal(seen.get(id(var)), [3.0, 4.0]) and np.array_equal(read, [3.0, 4.0])
              and np.array_equal(start, [1.0, 1.0]))
    finally:
        drop_deferred([v for v in deferred_variables() if id(v) not in before])
    with keras.StatelessScope():  # a scope closing now must not make the probe's variable
        pass
    return ok and all(id(v) in before for v in deferred_variables())


# --- TensorFlow's kernel cache -------------------------------------------------------------------------------
def drop_kernel_cache() -> None:
    """Drop the kernels TensorFlow keeps for functions and ops that ran (nothing on the public path)."""
    if available("tf_kernel_cache"):
        from tensorflow.python.eager import context

        context.context().clear_kernel_cache()


def _probe_kernel_cache() -> bool:
    from tensorflow.python.eager import context

    context.context().clear_kernel_cache()
    return True


# --- glibc malloc --------------------------------------------------------------------------------------------
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters


def malloc_option(param: int, value: int) -> bool:
    """glibc's ``mallopt``; False (nothing changed) on the public path."""
    return available("glibc_malloc") and bool(ctypes.CDLL(None).mallopt(param, value))


def trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: hand free heap memory back to the system (nothing on the public path)."""
    if available("glibc_malloc"):
        ctypes.CDLL(None).malloc_trim(0)


def heap_trimmer() -> Callable[[], None] | None:
    """``malloc_trim(0)`` as a callable that takes no lock of this module (for a ``gc`` callback, which runs in
    whatever thread allocated, possibly inside :func:`available`); None on the public path."""
    if not available("glibc_malloc"):
        return None
    trim = ctypes.CDLL(None).malloc_trim
    return lambda: trim(0)


def _probe_glibc() -> bool:
    libc = ctypes.CDLL(None)
    return callable(libc.mallopt) and callable(libc.malloc_trim) and libc.malloc_trim(0) in (0, 1)


_PROBES = {"tf_custom_gradients": _probe_gradient_registry, "keras_deferred": _probe_keras_deferred,
           "tf_kernel_cache": _probe_kernel_cache, "glibc_malloc": _probe_glibc}
