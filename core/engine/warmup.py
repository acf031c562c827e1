"""Start-up work done once per process, in the background: import TensorFlow, load the default model, run
its first pass on the first photo (eagerly), so that a page can draw while it happens; then, a little later,
trace the compiled pass.

Measured on the 2-core machine (``python -m core bench --json``'s ``cold_start_s``, 2026-12-02): importing
TensorFlow is most of it (2.2-2.5 s, 2.9-3.2 s before the cycle collector was paused for it; 3.0-3.3 s in a
slow hour), loading Lite0 0.3-0.5 s (built with its BatchNorms folded), the first pass 0.35-0.55 s eagerly,
0.8-1.1 s traced and compiled.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Callable

STAGES = ("Loading TensorFlow", "Loading the model", "Computing the first map")
COMPILE_AFTER_S = 2.0  # the compiled pass is traced this long after the first map is ready (the page draws it)


def import_tensorflow_quietly(freeze: bool = False, pacer=None) -> None:
    """Import TensorFlow (and Keras) with the process's native stderr silenced: the absl/oneDNN start-up lines
    TensorFlow's C++ side prints are not for users. Other threads' stderr is silenced for that moment too.

    TensorFlow's C++ libraries are loaded first without holding the interpreter (``core.compat``); Keras is
    imported without the modules it would load for features the studio does not use (:data:`LEFT_OUT_OF_KERAS`),
    and without the cycle collector's passes over the objects it creates (:func:`_collector_paused`; with
    ``freeze``, not afterwards either, until :func:`thaw`: for a command-line run, whose objects live till
    its end, and for the app's start-up work, which thaws when it is done). With a ``pacer``
    (:class:`core.pacing.Pacer`), each of the import's modules waits for a quiet moment of the server first:
    up to the pacer's ``total_s`` (3 s) longer, during which stderr stays silenced too."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    from .. import compat

    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, _collector_paused(freeze):
            os.dup2(null.fileno(), 2)
            compat.preload_tensorflow()  # its C++ libraries, without holding the interpreter (they print too)
            with pacer.paced_imports() if pacer is not None else contextlib.nullcontext():
                try:
                    with _without_unused_modules():
                        import keras  # noqa: F401
                except ImportError:  # a Keras that needs one of them after all: the plain import
                    import keras  # noqa: F401
                import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _collector_paused(freeze: bool = False):
    """Python's cycle collector off while the block runs (where it was on); with ``freeze``, the objects alive
    at its end are then kept out of the collector's sight (``gc.freeze``) until :func:`thaw`.

    Importing TensorFlow and Keras creates about 330,000 objects (modules, functions, classes, op tables),
    and the collector's passes over the growing heap during the import cost 0.3-0.5 s of a cold start on the
    2-core machine, and its passes over that heap during the load and the first pass that follow 0.1-0.2 s
    more. A freeze takes *every* object alive at that moment out of the collector's sight, another thread's
    too: kept for good, it kept the first visitor's page run, waiting meanwhile, with its pass result (every
    layer's activations and gradients, ~8 MB for Lite0, and its pictures) for the life of the process. So
    the start-up work freezes for its own length only and thaws when it is done."""
    import gc

    if not gc.isenabled():  # someone turned it off on purpose: leave it so
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()


def thaw() -> None:
    """Give the objects frozen by :func:`_collector_paused` back to the cycle collector."""
    import gc

    gc.unfreeze()


class _RefusedToThisThread:
    """A ``sys.meta_path`` finder that refuses ``names`` to one thread (``ModuleNotFoundError``, as for a module
    that is not installed) and leaves every other import, and every other thread, to the finders after it."""

    def __init__(self, names, thread_id: int):
        self.names, self.thread_id = frozenset(names), thread_id

    def find_spec(self, name, path=None, target=None):
        if name in self.names and threading.get_ident() == self.thread_id:
            raise ModuleNotFoundError(f"No module named {name!r} (left out of Keras's import)", name=name)
        return None


# Modules Keras imports when they are installed, for features the studio never uses; each is refused to the
# importing thread while Keras imports (Keras guards these imports and goes on without those features).
LEFT_OUT_OF_KERAS = {
    # its image-gallery plots (``keras.visualization``): pyplot, its axes, figures and 3-D toolkit, ~0.2 s of
    # CPU; nothing in the studio imports pyplot (the colormaps come from ``matplotlib.colormaps``)
    "matplotlib.pyplot",
    # pandas DataFrames as ``fit``/``predict`` input (its data adapters): pandas and pyarrow, ~0.3 s of CPU;
    # the studio hands Keras NumPy arrays, and draws the first page's chart without pandas (``ui.charts``).
    # In this process Keras then does not take DataFrames (``array_slicing.pandas`` stays None).
    "pandas",
}


@contextlib.contextmanager
def _without_unused_modules(names=frozenset(LEFT_OUT_OF_KERAS)):
    """While Keras imports, in this thread only: importing one of ``names`` raises ImportError (as for a module
    that is not installed). Another thread (a page's run) that imports one meanwhile gets it as usual, nothing
    is left in ``sys.modules``, and a module imported before is left alone."""
    names = {n for n in names if n not in sys.modules}
    if not names:
        yield
        return
    finder = _RefusedToThisThread(names, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


class WarmUp:
    """The start-up work in a daemon thread; :meth:`wait` follows it.

    Args:
        load: model name → engine (the app's pool's ``get``).
        model: the model to load.
        photo: an (H, W, 3) uint8 photo whose first pass to run (its result lands in the engine's cache), or None.
        pacer: the server's :class:`core.pacing.Pacer`, for which TensorFlow's import gives way, or None.
    """

    def __init__(self, load: Callable, model: str, photo=None, pacer=None):
        self._load, self.model, self._photo, self._pacer = load, model, photo, pacer
        self.stage = STAGES[0]
        self.seconds: dict[str, float] = {}
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._compiled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gradcam-warmup", daemon=True)
        self._start_lock = threading.Lock()

    def start(self) -> "WarmUp":
        """Start the work (once; later calls do nothing)."""
        with self._start_lock:
            if self._thread.ident is None:
                self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def fraction(self) -> float:
        return 1.0 if self.done else STAGES.index(self.stage) / len(STAGES)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work is over (done or failed); False on timeout."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            t = time.perf_counter()
            # frozen until the end of _run; the private-API probes run at the load (core.compat)
            import_tensorflow_quietly(freeze=True, pacer=self._pacer)
            self.seconds["import"] = time.perf_counter() - t
            self.stage = STAGES[1]
            t = time.perf_counter()
            engine = self._load(self.model)
            self.seconds["load"] = time.perf_counter() - t
            if self._photo is not None:
                self.stage = STAGES[2]
                t = time.perf_counter()
                engine.run(self._photo, eager=True)  # no trace for the first visitor to wait for
                self.seconds["first_pass"] = time.perf_counter() - t
        except BaseException as exc:  # noqa: BLE001 - the page that waits reports it (one line) and goes on
            self.error = exc
            engine = None
        finally:
            self._done.set()
        try:
            if engine is not None:
                # later, when the first page has drawn its map: trace the compiled pass, unless a visitor's
                # pass has done so meanwhile; a failure here shows again, to the page, at the next pass
                time.sleep(COMPILE_AFTER_S)
                t = time.perf_counter()
                engine.compile()
                self.seconds["compile"] = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - one line in the log; the page meets it at its next pass
            logging.getLogger(__name__).warning("Tracing the compiled pass in the background failed (%s); "
                                                "the next pass traces it.", exc)
        finally:
            thaw()  # every object back in the collector's sight: the start-up's and the first pages' alike
            self._compiled.set()

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Block until the compiled pass is traced too (or the work failed); False on timeout."""
        return self._compiled.wait(timeout)
