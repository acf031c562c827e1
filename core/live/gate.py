"""Pages first: live streams give way while another session's page runs.

A live viewer's worker explains frame after frame for as long as the camera plays; on a small machine it keeps a
core busy, and TensorFlow's thread pool, NumPy and the interpreter are shared by every session of the process. So
a page that re-renders beside streams would wait for their frames. The :class:`PageGate` counts the page runs in
progress (the app enters :meth:`PageGate.page` around every script run: ``streamlit_app.py``); a live worker calls
:meth:`PageGate.wait` before each stage of a frame and waits while any page runs, at most ``max_wait_s`` at a time,
so a stream slows down while others click and never stops. The frames that arrive meanwhile replace each other in
the worker's slot (:mod:`core.live.slot`): what is explained after the wait is still the newest frame.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

MAX_WAIT_S = 0.25  # a live frame waits at most this long for the pages: a stream keeps at least ~4 frames a second


class PageGate:
    """How many page runs are in progress, and a wait until there are none.

    Args:
        max_wait_s: the longest one :meth:`wait` waits.
    """

    def __init__(self, max_wait_s: float = MAX_WAIT_S):
        self.max_wait_s = float(max_wait_s)
        self._cond = threading.Condition()
        self._inside = 0
        self.waited_s = 0.0  # the live workers' waits together (for the figures)

    @property
    def inside(self) -> int:
        """Page runs in progress now."""
        return self._inside

    @contextmanager
    def page(self) -> Iterator[None]:
        """Around one page run: live workers wait while it is in progress."""
        with self._cond:
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                if self._inside == 0:
                    self._cond.notify_all()

    def wait(self, max_wait_s: float | None = None) -> float:
        """Wait while a page run is in progress, at most ``max_wait_s`` (:attr:`max_wait_s` by default); returns
        the seconds waited (0.0 where none ran)."""
        if self._inside == 0:  # the common case, without the lock
            return 0.0
        limit = self.max_wait_s if max_wait_s is None else float(max_wait_s)
        start = time.perf_counter()
        with self._cond:
            self._cond.wait_for(lambda: self._inside == 0, timeout=limit)
        waited = time.perf_counter() - start
        self.waited_s += waited
        return waited


PAGES = PageGate()  # the process's gate: every session's page runs and every live worker share it
