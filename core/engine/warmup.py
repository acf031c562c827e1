"""Start-up work: TensorFlow imported quietly (:func:`import_tensorflow_quietly`, which the command line, the
dataset workers and the benchmark use too), and the app server's :class:`WarmUp`, done once per process in the
background: import TensorFlow, load the default model, run its first pass on the first photo (eagerly), so
that a page can draw while it happens; then, a little later, trace the compiled pass.

Importing TensorFlow is most of a cold start (``python -m core bench --json``'s ``cold_start_s`` and its
parts). What each of the import's adjustments buys, and its switch: the table in :mod:`server`.
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

    Keras is imported without the modules it would load for features the studio does not use
    (:data:`LEFT_OUT_OF_KERAS`), and without the cycle collector's passes over the objects it creates
    (:func:`_collector_paused`; with ``freeze``, not afterwards either, until :func:`thaw`: for a command-line
    run, whose objects live till its end, and for the app's start-up work, which thaws when it is done and, in the
    server, freezes again what is alive then: :func:`core.engine.pool.settle_collector`). With
    a ``pacer`` (:class:`server.pacing.Pacer`, or anything with its ``paced_imports()``), each of the import's
    modules waits for a quiet moment of the server first, during which stderr stays silenced too.

    Each of these can be switched off for a measurement (``GRADCAM_STUDIO_OFF``, see :mod:`server`):
    ``quiet_stderr``, ``gc_pause``, ``lean_keras``."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    quiet = not switched_off("quiet_stderr")
    saved = os.dup(2) if quiet else None
    try:
        with open(os.devnull, "w") as null, _collector_paused(freeze):
            if quiet:
                os.dup2(null.fileno(), 2)
            with pacer.paced_imports() if pacer is not None else contextlib.nullcontext():
                try:
                    with _without_unused_modules():
                        import keras  # noqa: F401
                except ImportError:  # a Keras that needs one of them after all: the plain import
                    import keras  # noqa: F401
                import tensorflow  # noqa: F401
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def switched_off(name: str) -> bool:
    """Whether ``GRADCAM_STUDIO_OFF`` switches the start-up adjustment ``name`` off (the rule of
    :func:`server.switched_off`, which the library does not import)."""
    value = os.environ.get("GRADCAM_STUDIO_OFF", "").strip().lower()
    if not value or value == "0":
        return False
    return value in ("1", "all", "true", "yes") or name in {v.strip() for v in value.split(",")}


@contextlib.contextmanager
def _collector_paused(freeze: bool = False):
    """Python's cycle collector off while the block runs (where it was on); with ``freeze``, the objects alive
    at its end are then kept out of the collector's sight (``gc.freeze``) until :func:`thaw`.

    Importing TensorFlow and Keras creates about 330,000 objects (modules, functions, classes, op tables),
    and the collector's passes over the growing heap slow the import and the load and first pass that follow
    (priced in :mod:`server`'s table). A freeze takes *every* object alive at that moment out of the
    collector's sight, another thread's too: kept for good, it would keep the first visitor's page run,
    waiting meanwhile, with its pass result (every layer's activations and gradients, ~8 MB for Lite0, and its
    pictures) for the life of the process. So the start-up work freezes for its own length only and thaws
    when it is done; the server then collects first and freezes what is alive after the collection
    (:meth:`WarmUp.start` with ``settle``)."""
    import gc

    if not gc.isenabled() or switched_off("gc_pause"):  # someone turned it off on purpose: leave it so
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
    # its image-gallery plots (``keras.visualization``): pyplot, its axes, figures and 3-D toolkit; nothing in
    # the studio imports pyplot (the colormaps come from ``matplotlib.colormaps``)
    "matplotlib.pyplot",
    # pandas DataFrames as ``fit``/``predict`` input (its data adapters): pandas and pyarrow; the studio hands
    # Keras NumPy arrays, and draws the first page's chart without pandas (``ui.charts``).
    # In this process Keras then does not take DataFrames (``array_slicing.pandas`` stays None).
    "pandas",
}


@contextlib.contextmanager
def _without_unused_modules(names=frozenset(LEFT_OUT_OF_KERAS)):
    """While Keras imports, in this thread only: importing one of ``names`` raises ImportError (as for a module
    that is not installed). Another thread (a page's run) that imports one meanwhile gets it as usual, nothing
    is left in ``sys.modules``, and a module imported before is left alone."""
    names = {n for n in names if n not in sys.modules}
    if not names or switched_off("lean_keras"):
        yield
        return
    finder = _RefusedToThisThread(names, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


def process_ending() -> bool:
    """Whether the process is ending: its main thread has finished, and Python waits for the other threads.

    The studio's own threads (this start-up work, a training, a live worker) are not daemons: Python ends daemon
    threads at its exit wherever they are, and one inside TensorFlow's C++ code aborts the whole process
    ("terminate called …", exit status 134). Each checks this between two steps instead and ends there."""
    return not threading.main_thread().is_alive()


class WarmUp:
    """The start-up work in a thread of its own; :meth:`wait` follows it.

    The thread is not a daemon: Python ends daemon threads at its exit wherever they are, and one inside
    TensorFlow's C++ code (importing, tracing) aborts the whole process ("terminate called …", exit status 134).
    Instead, a process that ends meanwhile waits for the step under way, and the steps after it are left out.

    Args:
        load: model name → engine (the app's pool's ``get``).
        model: the model to load.
        photo: an (H, W, 3) uint8 photo whose first pass to run (its result lands in the engine's cache), or None.
        pacer: the server's :class:`server.pacing.Pacer`, for which TensorFlow's import gives way, or None.
    """

    def __init__(self, load: Callable, model: str, photo=None, pacer=None):
        self._load, self.model, self._photo, self._pacer = load, model, photo, pacer
        self.stage = STAGES[0]
        self.seconds: dict[str, float] = {}
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._compiled = threading.Event()
        self._settle = False  # start(settle=True): the server process
        self._thread = threading.Thread(target=self._run, name="gradcam-warmup", daemon=False)
        self._start_lock = threading.Lock()

    def start(self, settle: bool = False) -> "WarmUp":
        """Start the work (once; later calls do nothing).

        ``settle``: when the work is done, keep what is alive then out of the cycle collector's sight for good
        (:func:`core.engine.pool.settle_collector`) instead of only thawing: for the server process (its start
        asks for it); a test or a script keeps its collector as it was."""
        if settle:
            self._settle = True
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
            engine = None
            if not process_ending():
                self.stage = STAGES[1]
                t = time.perf_counter()
                engine = self._load(self.model)
                self.seconds["load"] = time.perf_counter() - t
            if engine is not None and self._photo is not None and not process_ending():
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
                until = time.monotonic() + COMPILE_AFTER_S
                while time.monotonic() < until and not process_ending():
                    time.sleep(0.05)
                if not process_ending():
                    t = time.perf_counter()
                    engine.compile()
                    self.seconds["compile"] = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - one line in the log; the page meets it at its next pass
            logging.getLogger(__name__).warning("Tracing the compiled pass in the background failed (%s); "
                                                "the next pass traces it.", exc)
        finally:
            thaw()  # every object back in the collector's sight: the start-up's and the first pages' alike
            if self._settle:  # collected, and what is alive then frozen for good (a server: see start)
                from .pool import settle_collector, settle_when_quiet

                quiet = getattr(self._pacer, "quiet", None)  # no page run under way (server.pacing.Pacer)
                settle_when_quiet(quiet) if quiet is not None else settle_collector()
            self._compiled.set()

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Block until the compiled pass is traced too (or the work failed); False on timeout."""
        return self._compiled.wait(timeout)
