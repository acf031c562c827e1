"""Pass results kept for reuse, bounded in count and in bytes (one cache per engine)."""
from __future__ import annotations

import threading
from collections import OrderedDict


class ResultCache:
    """Results by key, least recently used dropped first: at most ``size`` of them and ``max_bytes`` in
    all, but always the last two (a photo and its occluded copy). A result under two keys (a top-1
    pass is stored under (photo, None) and (photo, its class)) counts once and goes as one.

    Every method takes the cache's own lock for a few dictionary operations only: a network pass never
    runs under it, so sessions sharing an engine wait for each other's bookkeeping, not passes.
    :meth:`get_or_make` makes a missing value once however many sessions ask for it at the same time
    (a workshop opening one link together): the others wait for that one.

    Args:
        size: the most results kept.
        max_bytes: the most bytes kept (each value's ``nbytes``).
    """

    def __init__(self, size: int = 8, max_bytes: int = 64 * 2**20):
        self.size = int(size)
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._pending: dict = {}  # key → _Pending, while one caller makes that value
        self._lock = threading.Lock()

    def get_or_make(self, key, make, more_keys=None):
        """The value under ``key``; if missing, ``make()`` stored under ``key`` (and ``more_keys(value)``).

        Concurrent callers for the same missing key wait for the first one's ``make()`` and get its value
        (or its exception); ``make`` runs outside the cache's lock.
        """
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                for k in [k for k, v in self._items.items() if v is hit]:  # every key of it: it goes as one
                    self._items.move_to_end(k)
                return hit
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = _Pending()
        if not owner:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            return pending.value
        try:
            self.make_room()  # room first: a result the cache would drop after this one goes before it
            value = make()
            self.put(key, value, *(more_keys(value) if more_keys else ()))
            pending.value = value
            return value
        except BaseException as exc:
            pending.error = exc
            raise
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.done.set()

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def keys(self) -> list:
        """Keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def put(self, key, value, *more_keys) -> None:
        """Store ``value`` under ``key`` (and the same value under ``more_keys``), then drop the least
        recently used results while the bounds are exceeded."""
        with self._lock:
            for k in (key, *more_keys):
                self._items[k] = value
                self._items.move_to_end(k)
            while not self._within_bounds():
                self._drop_oldest()

    def make_room(self) -> None:
        """Drop, before a pass, what storing its result would drop anyway (an engine's results all have
        the size of the last one), so that the dropped result and the new one are never in memory together."""
        with self._lock:
            if not self._items:
                return
            size = next(reversed(self._items.values())).nbytes
            while self._items and not self._within_bounds(1, size):
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = next(iter(self._items.values()))
        for k in [k for k, v in self._items.items() if v is oldest]:
            del self._items[k]

    def _within_bounds(self, extra: int = 0, extra_bytes: int = 0) -> bool:
        distinct = {id(v): v for v in self._items.values()}
        n, nbytes = len(distinct) + extra, sum(v.nbytes for v in distinct.values()) + extra_bytes
        return n <= 2 or (n <= self.size and nbytes <= self.max_bytes)


class _Pending:
    """A value one caller is making for others to wait for."""

    def __init__(self):
        self.done = threading.Event()
        self.value = None
        self.error: BaseException | None = None
