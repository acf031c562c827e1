"""The bounded, thread-safe map that keeps the lessons' expected answers (:data:`core.lessons.checks.CACHE`)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable


class LRU:
    """A bounded map in count and bytes, safe across threads (the app's sessions share it).

    :meth:`get_or_make` makes a missing value once however many threads ask for it at the same time (a room of
    learners reaching one exercise together): the first makes it, outside the lock, the others wait for its value
    or its exception; an exception is not stored, so the next call makes the value again."""

    def __init__(self, entries: int, max_bytes: int):
        self.entries, self.max_bytes, self._d, self._lock = entries, max_bytes, OrderedDict(), threading.Lock()
        self._pending: dict = {}  # key → Future, while one caller makes that value

    def get(self, key):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key][0]
        return None

    def get_or_make(self, key, make: Callable[[], object], nbytes: Callable[[object], int]):
        """The value under ``key``; if missing, ``make()`` stored with ``nbytes(value)`` bytes."""
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key][0]
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = Future()
        if not owner:
            return pending.result()  # the owner's value, or its exception raised here
        try:
            value = make()
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            self.put(key, value, nbytes(value))
            pending.set_result(value)
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def put(self, key, value, nbytes: int) -> None:
        with self._lock:
            self._d[key] = (value, nbytes)
            self._d.move_to_end(key)
            while len(self._d) > self.entries or (len(self._d) > 1 and
                                                   sum(n for _, n in self._d.values()) > self.max_bytes):
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def __len__(self) -> int:
        return len(self._d)
