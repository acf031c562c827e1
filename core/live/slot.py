"""The newest-frame slot: a one-item mailbox between a camera and the worker that explains its frames.

A camera delivers frames at its own rate (15-30 a second); explaining one takes longer than a frame's interval on
a small machine. A queue would fall further behind the camera with every frame; the slot instead holds one frame,
the newest: putting a frame replaces the one not yet taken (counted as dropped), and taking empties it. So the
worker always explains the latest picture, and what the person sees lags the camera by at most one processing time.
"""
from __future__ import annotations

import threading
import time
from typing import Any


class NewestSlot:
    """One item at most: :meth:`put` replaces an untaken item, :meth:`take` waits for one and empties the slot.

    Attributes:
        received: items put since the slot was made.
        dropped: items replaced before anyone took them.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Hold ``item`` as the newest; returns True where it replaced one nobody had taken (dropped). A closed slot
        drops the item at once (and returns True)."""
        with self._cond:
            if self._closed:
                self.received += 1
                self.dropped += 1
                return True
            replaced = self._full
            self._item, self._full = item, True
            self.received += 1
            self.dropped += replaced
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """The newest item, emptying the slot; None where nothing came within ``timeout`` seconds or the slot was
        closed (:meth:`close`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._full and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def newer(self, item: Any) -> Any:
        """The item put since ``item`` was taken, emptying the slot and counting ``item`` as dropped; ``item`` itself
        where none came (a worker that waited after taking a frame explains the newest one)."""
        with self._cond:
            if not self._full:
                return item
            newest, self._item, self._full = self._item, None, False
            self.dropped += 1
            return newest

    def close(self) -> None:
        """Wake every :meth:`take` (it returns None) and let go of the held item; :meth:`open` makes it usable again."""
        with self._cond:
            self._closed = True
            self._item, self._full = None, False
            self._cond.notify_all()

    def open(self) -> None:
        """Accept items again after :meth:`close`."""
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return int(self._full)
