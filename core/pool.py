"""Engines kept in memory within a budget of weight bytes (the app's model cache).

Models differ by a factor of twenty in size (Lite0 18 MB of weights, VGG16 300 MB even with its
dense layers in float16), so a bound on the *number* of cached models either wastes memory or
breaks it. :class:`EnginePool` keeps the most recently used engines whose weights fit in
``budget_mb``; a model that does not fit with the others first sends the least recently used ones
away (before it is loaded, so old and new never add up), and one model larger than the budget is
kept alone.
"""
from __future__ import annotations

import ctypes
import gc
import threading
from collections import OrderedDict
from typing import Callable

from . import models

BUDGET_MB = 120  # Lite0 with ResNet50 or Xception, or the three small models; VGG16 stays alone


def resident_mb(name: str) -> float:
    """Memory the model's weights take once loaded (MiB)."""
    return models.get_spec(name).resident_mb


class EnginePool:
    """Least-recently-used engines by model name, within a budget of weight memory."""

    def __init__(self, budget_mb: float = BUDGET_MB, load: Callable | None = None):
        self.budget_mb = float(budget_mb)
        self._load = load or _load_engine
        self._engines: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Models in memory, least recently used first."""
        with self._lock:
            return list(self._engines)

    def fits(self, names) -> bool:
        """Whether these models can all be in memory at once (one model always can)."""
        names = list(dict.fromkeys(names))
        return len(names) <= 1 or sum(resident_mb(n) for n in names) <= self.budget_mb

    def get(self, name: str):
        """The engine for ``name``, loaded if needed (raises what the loader raises, e.g. WeightsUnavailable)."""
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None:
                self._engines.move_to_end(name)
                return engine
            need = resident_mb(name)
            dropped = False
            while self._engines and sum(resident_mb(n) for n in self._engines) + need > self.budget_mb:
                self._engines.popitem(last=False)
                dropped = True
            if dropped:
                release_memory()  # before loading, so the dropped engines' memory can be reused
            engine = self._load(name)
            self._engines[name] = engine
            release_memory()  # the loader's temporaries: the random initial weights, the unfolded model
            return engine


def release_memory() -> None:
    """Collect garbage cycles (Keras models and compiled functions are full of them) and hand free
    heap memory back to the system (glibc's ``malloc_trim``; elsewhere only the collection)."""
    gc.collect()
    try:  # kernels TensorFlow keeps for functions and ops that ran (they hold no weights, but memory)
        from tensorflow.python.eager import context

        context.context().clear_kernel_cache()
    except (ImportError, AttributeError):
        pass
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _load_engine(name: str):
    from .engine import Engine

    return Engine(models.get_spec(name), models.load_model(name))
