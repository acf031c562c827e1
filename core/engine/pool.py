"""Engines kept in memory within a memory budget (the app's model cache).

Models differ by a factor of twenty in size (Lite0 18 MB of weights, VGG16 300 MB even with its
dense layers in float16), so a bound on the *number* of cached models either wastes memory or
breaks it. :class:`EnginePool` counts each engine as its weights plus a fixed overhead (its compiled
graphs, kernels and cached results) and keeps the most recently used engines that fit in
``budget_mb``; a model that does not fit with the others first sends the least recently used ones
away (before it is loaded, so old and new never add up), and one model larger than the budget is
kept alone.
"""
from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from typing import Callable

from .. import compat, models

BUDGET_MB = 220  # Lite0 with ResNet50 or with Xception, or the three small models; VGG16 stays alone
# What an engine holds beyond its weights: the compiled pass's graphs and kernels and its cached results.
# Measured by loading and running each model in turn: about 50-70 MB per engine, whatever its size.
ENGINE_OVERHEAD_MB = 50


def resident_mb(name: str) -> float:
    """Memory the model's weights take once loaded (MiB)."""
    return models.get_spec(name).resident_mb


def engine_mb(name) -> float:
    """What the pool counts for a model's engine: its weights plus ENGINE_OVERHEAD_MB (MiB).

    ``name``: a registry name, or a trained model (:class:`core.models.TrainedModel`: ``name``, ``resident_mb``,
    ``spec``, ``keras_model()``).
    """
    return (resident_mb(name) if isinstance(name, str) else float(name.resident_mb)) + ENGINE_OVERHEAD_MB


class EnginePool:
    """Least-recently-used engines by model name, within a memory budget (weights + per-engine overhead)."""

    def __init__(self, budget_mb: float = BUDGET_MB, load: Callable | None = None):
        self.budget_mb = float(budget_mb)
        self._load = load or _load_engine
        self._engines: OrderedDict = OrderedDict()  # name → engine
        self._mb: dict[str, float] = {}  # name → what it counts for
        self._lock = threading.Lock()  # the dictionary, for a moment
        self._load_lock = threading.Lock()  # one load at a time

    def names(self) -> list[str]:
        """Models in memory, least recently used first."""
        with self._lock:
            return list(self._engines)

    def fits(self, names) -> bool:
        """Whether these models can all be in memory at once (one model always can)."""
        names = list({_key(n): n for n in names}.values())
        return len(names) <= 1 or sum(engine_mb(n) for n in names) <= self.budget_mb

    def refusal(self, names) -> str | None:
        """None when these models fit in memory together; otherwise one sentence saying why they do not."""
        names = list({_key(n): n for n in names}.values())
        if self.fits(names):
            return None
        largest = max(models.REGISTRY, key=engine_mb)
        return (f"These models need about {sum(engine_mb(n) for n in names):.0f} MB together, more than the "
                f"{self.budget_mb:.0f} MB kept in memory; compare fewer or smaller ones "
                f"({models.get_spec(largest).title} alone needs {engine_mb(largest):.0f} MB).")

    def describe(self) -> str:
        """What the pool keeps, in one sentence."""
        return (f"Models are kept in memory up to {self.budget_mb:.0f} MB in all (weights plus about "
                f"{ENGINE_OVERHEAD_MB} MB per model for its compiled pass and results).")

    def get(self, source):
        """The engine for ``source``, loaded if needed (raises what the loader raises, e.g. WeightsUnavailable).

        ``source``: a registry name, or a :class:`core.models.TrainedModel`: a user's
        model is served like the zoo's, keyed by its content, within the same budget.

        An engine in memory is returned at once, also while another session loads a model: loads take
        their own lock, one at a time (so the budget holds), and two sessions asking for the same new
        model load it once.
        """
        name = _key(source)
        with self._lock:
            engine = self._take(name)
        if engine is not None:
            return engine
        with self._load_lock:
            with self._lock:
                engine = self._take(name)  # loaded by another session while this one waited
                if engine is not None:
                    return engine
                need = engine_mb(source)
                dropped = False
                while self._engines and sum(self._mb[n] for n in self._engines) + need > self.budget_mb:
                    old = next(iter(self._engines))  # the least recently used (popitem's value would stay
                    del self._engines[old], self._mb[old]  # bound here, and that engine alive through the load)
                    dropped = True
            if dropped:
                release_memory()  # before loading, so the dropped engines' memory can be reused
            engine = self._load(name) if isinstance(source, str) else _trained_engine(source)
            with self._lock:
                self._engines[name] = engine
                self._mb[name] = need
            release_memory()  # the loader's temporaries: the file's arrays, the folding's float64 copies
            return engine

    def _take(self, name: str):
        engine = self._engines.get(name)
        if engine is not None:
            self._engines.move_to_end(name)
        return engine


def _key(source) -> str:
    return source if isinstance(source, str) else source.name


def tune_allocator() -> bool:
    """Process-wide glibc allocator settings for a long-lived process that loads and drops models.

    Call it at start-up, before TensorFlow is imported (the CLI and the app's pool do). Two arenas
    instead of eight per core, and a fixed 4 MB threshold above which a block is mapped on its own
    and handed back to the system when freed (glibc's adaptive threshold otherwise rises after the
    first large free and keeps such blocks in the heap, where freed models' memory stayed). Measured
    with ``bench --switch``: the peak went from about 1235 MB to about 1195 MB; ``bench``'s pass
    figures did not move, ``rerender_ms`` went from 5-7 to 9-10 ms (arrays of 4 MB and more are mapped
    fresh each time), and a fixed 128 kB threshold cost 50-70 % of the speed. And up to 16 MB of free
    memory at the heap's top is kept, not handed back at every free: with glibc's 128 kB for a fixed
    threshold, NumPy work on arrays of 0.1-4 MB faulted its pages in afresh on each allocation (ROAD's
    imputation of one curve: 587 ms, 384 ms with 16 MB; :func:`release_memory` still trims it all).

    Returns:
        False where the C library is not glibc (or on :mod:`core.compat`'s public path):
        nothing was changed.
    """
    return (compat.malloc_option(compat.M_ARENA_MAX, 2) and compat.malloc_option(compat.M_MMAP_THRESHOLD, 4 * 2**20)
            and compat.malloc_option(compat.M_TRIM_THRESHOLD, 16 * 2**20))


def release_memory() -> None:
    """Collect garbage cycles (Keras models and compiled functions are full of them), the frozen objects'
    too (:func:`settle_collector`: a dropped model is among them, so the freeze ends here), and hand free
    heap memory back to the system (glibc only; elsewhere only the collection).

    It does not freeze again: it runs inside a page's run (a model sent away from the pool for another), and a
    freeze now would keep that run's objects, and those of every run in progress, for the life of the process.
    Where :func:`settle_when_quiet` watches, it settles again at the next moment no page runs."""
    if _settled[0]:  # (the start-up's own freeze, or a command's, stays: it ends with that work)
        _settled[0] = False
        gc.unfreeze()
        _unsettled.set()  # settle_when_quiet's watcher, where there is one, freezes again at a quiet moment
    gc.collect()
    compat.drop_kernel_cache()  # kernels TensorFlow keeps for functions and ops that ran (no weights, but memory)
    compat.trim_heap()


def settle_collector() -> None:
    """For a long-lived server, once its start-up work is done: collect, then keep every object alive now
    (TensorFlow, Keras, the loaded models: hundreds of thousands of objects) out of the cycle collector's sight
    for good (``gc.freeze``), and hand the heap's free memory back after each full collection that found
    garbage.

    Each finished script run leaves a garbage cycle that holds what the run made (Streamlit's script runner,
    its thread and its context refer to each other). Python collects such cycles only in a full collection,
    and with the start-up's objects in sight it runs one only once a quarter as many new objects as there are
    old ones have survived, and each takes a quarter of a second: runs' leftovers piled up for minutes. With
    them frozen, full collections come often and cost little. What is frozen stays until
    :func:`release_memory` (a model sent away from the pool) unfreezes it to free that model.

    A freeze keeps for good the garbage that objects alive at that moment become later: call it when no page
    run is under way (:func:`settle_when_quiet`).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _settled[0] = True
    _trim[0] = compat.heap_trimmer()
    if _trim_after_full_collection not in gc.callbacks:
        gc.callbacks.append(_trim_after_full_collection)


_unsettled = threading.Event()  # the collector should settle (again) at the next quiet moment
_settled = [False]  # what is frozen is settle_collector's (release_memory may end it)
_watcher: list = [None]
_watcher_lock = threading.Lock()


TIDY_EVERY_S = 30.0  # a collection and a trim, when no page runs: what sessions that ended left goes back


def settle_when_quiet(quiet: Callable[[], bool], every_s: float = 1.0) -> None:
    """:func:`settle_collector` at the first moment ``quiet()`` says no page run is under way, and again after
    each :func:`release_memory` that ended the freeze (one daemon thread per process checks every ``every_s``);
    meanwhile, every :data:`TIDY_EVERY_S` while quiet, a collection and a trim, so that what sessions that ended
    left (Streamlit drops them two minutes after their browser went) goes back even when nothing else runs."""
    _unsettled.set()
    with _watcher_lock:
        if _watcher[0] is None:
            _watcher[0] = threading.Thread(target=_settle_when_quiet, args=(quiet, every_s),
                                           name="gradcam-collector", daemon=True)
            _watcher[0].start()


def _settle_when_quiet(quiet: Callable[[], bool], every_s: float) -> None:
    while True:
        if not _unsettled.wait(TIDY_EVERY_S):
            if quiet():
                gc.collect()
                compat.trim_heap()
            continue
        while not quiet():
            time.sleep(every_s)
        _unsettled.clear()
        settle_collector()


TRIM_EVERY_S = 20.0  # the most often a full collection hands the heap back (a trim walks the whole heap)
_trim: list = [None]  # compat.heap_trimmer(): no lock may be taken inside a gc callback
_last_trim = [0.0]


def _trim_after_full_collection(phase: str, info: dict) -> None:
    now = time.monotonic()
    if (phase == "stop" and info.get("generation") == 2 and info.get("collected") and _trim[0] is not None
            and now - _last_trim[0] >= TRIM_EVERY_S):
        _last_trim[0] = now
        _trim[0]()


def _load_engine(name: str):
    from .passes import Engine

    return Engine(models.get_spec(name), *models.load_inference(name))


def _trained_engine(trained):
    from .passes import Engine

    return Engine(trained.spec, trained.keras_model())
