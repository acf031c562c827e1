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


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and Keras) with the process's native stderr silenced: the absl/oneDNN start-up lines
    TensorFlow's C++ side prints are not for users. Other threads' stderr is silenced for that moment too.

    Keras is imported without ``matplotlib.pyplot`` (:func:`_without_pyplot`), and without the cycle
    collector's passes over the objects it creates (:func:`_collector_paused`)."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, _collector_paused():
            os.dup2(null.fileno(), 2)
            try:
                with _without_pyplot():
                    import keras  # noqa: F401
            except ImportError:  # a Keras that needs pyplot after all: the plain import
                import keras  # noqa: F401
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _collector_paused():
    """Python's cycle collector off while the block runs, and the objects alive at its end moved out of the
    collector's sight (``gc.freeze``), where the collector was on.

    Importing TensorFlow and Keras creates about 330,000 objects (modules, functions, classes, op tables),
    and the collector's passes over the growing heap during the import and over that heap later cost
    0.3-0.6 s of a cold start on the 2-core machine (``cold_start_s``: import, load and first pass ~5.4 → ~4.8 s).
    Those objects live as long as the process. Frozen objects are still freed by reference counting; a
    cycle among the objects alive at that moment (another thread's too) is not collected: the price of
    a one-time freeze that Python's documentation recommends for start-up (``gc.freeze``)."""
    import gc

    if not gc.isenabled():  # someone turned it off on purpose: leave it so
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


class _RefusedToThisThread:
    """A ``sys.meta_path`` finder that refuses ``names`` to one thread (``ModuleNotFoundError``, as for a module
    that is not installed) and leaves every other import, and every other thread, to the finders after it."""

    def __init__(self, names, thread_id: int):
        self.names, self.thread_id = frozenset(names), thread_id

    def find_spec(self, name, path=None, target=None):
        if name in self.names and threading.get_ident() == self.thread_id:
            raise ModuleNotFoundError(f"No module named {name!r} (left out of Keras's import)", name=name)
        return None


@contextlib.contextmanager
def _without_pyplot():
    """While Keras imports, in this thread only: ``import matplotlib.pyplot`` raises ImportError.

    Keras imports pyplot when it is installed, for its image-gallery plots (``keras.visualization``), which the
    studio never uses; the import costs about 0.2 s of CPU on every cold start (pyplot, its axes, figures and
    3-D toolkit). Keras guards that import and leaves those plots out. Nothing in the studio imports pyplot;
    the colormaps come from ``matplotlib.colormaps``. Another thread (a page's run) that imports pyplot
    meanwhile gets it as usual, and nothing is left in ``sys.modules``; a pyplot imported before is left alone."""
    if "matplotlib.pyplot" in sys.modules:
        yield
        return
    finder = _RefusedToThisThread({"matplotlib.pyplot"}, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


IMPORT_NICE = 19  # the import's thread gives the CPU to every other thread (Linux: nice is per thread)


def import_tensorflow_politely() -> int | None:
    """:func:`import_tensorflow_quietly` in a thread of the lowest CPU priority, waited for; the nice value it
    ran at (None where threads cannot have their own: not Linux).

    Started with the server, the import (2-3 s of CPU) shares two cores with a first visitor's page. At the
    lowest priority it takes what the server's other threads, and a browser on the same machine, leave. On
    the 2-core machine, a first visitor arriving as the server started saw the page's title and sidebar after
    2.1-2.7 s (median 2.4, 5 runs) at normal priority and 1.7-2.1 s (median 1.85) at this one, against
    1.5-1.8 s where the import waits for the first page. (The import still holds the interpreter for up to
    0.4 s at a time while TensorFlow's C++ library loads; no priority helps with that.) Only the helper
    thread is lowered (a thread's nice cannot be raised back without privileges): the model's load and its
    passes run in the caller's thread and TensorFlow's own threads (started at the first pass) at normal
    priority; a thread a module starts during the import (jemalloc's purger in pyarrow) inherits the low one."""
    if not sys.platform.startswith("linux"):
        import_tensorflow_quietly()
        return None
    ran: dict = {}

    def work():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), IMPORT_NICE)
            ran["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        except OSError:  # a sandbox that forbids it: normal priority
            ran["nice"] = None
        try:
            import_tensorflow_quietly()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            ran["error"] = exc

    helper = threading.Thread(target=work, name="gradcam-import", daemon=True)
    helper.start()
    helper.join()
    if "error" in ran:
        raise ran["error"]
    return ran["nice"]


class WarmUp:
    """The start-up work in a daemon thread; :meth:`wait` follows it.

    Args:
        load: model name → engine (the app's pool's ``get``).
        model: the model to load.
        photo: an (H, W, 3) uint8 photo whose first pass to run (its result lands in the engine's cache), or None.
    """

    def __init__(self, load: Callable, model: str, photo=None):
        self._load, self.model, self._photo = load, model, photo
        self.stage = STAGES[0]
        self.seconds: dict[str, float] = {}
        self.import_nice: int | None = None
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
            self.import_nice = import_tensorflow_politely()  # the private-API probes run at the load (core.compat)
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
            self._compiled.set()

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Block until the compiled pass is traced too (or the work failed); False on timeout."""
        return self._compiled.wait(timeout)
