"""Pooled backbone features, computed once per image: batched through the compiled engine, cached by
(backbone, exact pixel hash). Head-only training reads these and never runs the backbone again."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np

from ..imaging import images

BATCH = 32


class Stopped(Exception):
    """The user stopped long work; what was done so far is kept (cached features, trained epochs)."""


class FeatureCache:
    """(backbone name, thumbnail pixel hash) → float32 feature vector, least recently used first out.

    Shared by every session: the key is everything the value depends on (the backbone's weights are
    fixed per name; the pixels are hashed exactly), so no session can see another's features wrongly.
    """

    def __init__(self, max_bytes: int = 64 * 2**20):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            v = self._items.get(key)
            if v is not None:
                self._items.move_to_end(key)
            return v

    def put(self, key, value: np.ndarray) -> None:
        value = np.array(value, np.float32)
        value.flags.writeable = False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, v = self._items.popitem(last=False)
                self._bytes -= v.nbytes

    def __len__(self) -> int:
        return len(self._items)


def compute_features(engine, thumbs, cache: FeatureCache | None = None, batch: int = BATCH, progress=None,
                     should_stop=None) -> tuple[np.ndarray, float]:
    """Features (N, channels) of ``thumbs`` (uint8 images of any size; resized to the model's input).

    Only the images not in ``cache`` go through the network, ``batch`` at a time.

    Args:
        progress: called with the fraction done after each batch.
        should_stop: a callable; when it returns True, :class:`Stopped` is raised between batches.

    Returns:
        (features, seconds spent in the network).
    """
    name = engine.spec.name
    keys = [(name, images.pixel_hash(t)) for t in thumbs]
    out: list = [cache.get(k) if cache is not None else None for k in keys]
    todo = [i for i, v in enumerate(out) if v is None]
    seconds = 0.0
    for start in range(0, len(todo), batch):
        if should_stop is not None and should_stop():
            raise Stopped("stopped while computing features")
        idx = todo[start:start + batch]
        x = np.concatenate([engine.prepare(thumbs[i]) for i in idx])
        t = time.perf_counter()
        f = engine.features(x)
        seconds += time.perf_counter() - t
        for i, v in zip(idx, f):
            out[i] = np.asarray(v, np.float32)
            if cache is not None:
                cache.put(keys[i], out[i])
        if progress:
            progress(min(1.0, (start + len(idx)) / len(todo)))
    if progress and not todo:
        progress(1.0)
    dim = out[0].shape[0] if out else 0
    return (np.stack(out) if out else np.zeros((0, dim), np.float32)), seconds
