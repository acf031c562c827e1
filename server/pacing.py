"""A cold server's import of TensorFlow gives way to its interactive work (switch: ``pacing``).

A cold server imports TensorFlow and Keras (seconds of interpreter time, thousands of modules) in a background
thread while the first visitor's browser loads the page: about 130 frontend files, a websocket, the page's
first run. They all need the one interpreter lock, and with the import holding it each request waits for it,
so the page's title and sidebar come later than on a warm server.

A :class:`Pacer` records the server's activity (:meth:`Pacer.touch` for each request and websocket message,
:meth:`Pacer.busy` around each page run) and :meth:`Pacer.paced_imports` makes the importing thread wait for
a quiet moment before each of its import statements (:meth:`Pacer.wait_turn`). Its waits are bounded (per
wait and in all), so a page that never goes quiet delays the import by at most a few seconds, and a run that
waits for the import itself (:meth:`Pacer.idle`) does not keep it waiting.

It waits before an import statement, in a wrapper of ``builtins.__import__`` (for that thread only, for the
import's length), not in an import hook: Python calls ``sys.meta_path`` finders holding its global import
lock, and a finder that waited there stopped every other thread's imports (a page's first run among them)
until its wait ended.

``SERVER`` is the server process's pacer: the middleware :class:`ServerActivity` (which ``app.py`` wires as
the outermost one, so it sees the frontend files :mod:`server.assets` answers too), the pages' script
(``streamlit_app.py``) and the start-up work (``ui/resources.py``) share it. With ``GRADCAM_STUDIO_OFF=pacing``
it never waits and the middleware is left out (:func:`server.middleware`).
"""
from __future__ import annotations

import builtins
import contextlib
import threading
import time
from typing import Callable

from . import switched_off


class Pacer:
    """The server's activity, and waits for a quiet moment in it.

    Args:
        quiet_s: how long after the last request or message the server counts as quiet.
        turn_s: the longest single :meth:`wait_turn`.
        total_s: the most all waits together may take; after that :meth:`wait_turn` returns at once.
        on: False: never wait (:meth:`wait_turn` returns at once, :meth:`paced_imports` changes nothing).
    """

    POLL_S = 0.005

    def __init__(self, quiet_s: float = 0.1, turn_s: float = 0.5, total_s: float = 3.0, on: bool = True):
        self.quiet_s, self.turn_s, self.total_s, self.on = quiet_s, turn_s, total_s, on
        self.waited_s = 0.0  # all waits so far
        self._last = float("-inf")
        self._busy = 0  # page runs under way, those waiting in idle() aside
        self._depth = threading.local()  # this thread's busy() blocks, less its idle() ones
        self._lock = threading.Lock()

    def touch(self) -> None:
        """The server is working now (a request, a websocket message)."""
        self._last = time.monotonic()

    @contextlib.contextmanager
    def busy(self):
        """A page run is under way for the length of the block."""
        self._add(1)
        self._depth.n = getattr(self._depth, "n", 0) + 1
        try:
            yield
        finally:
            self._depth.n -= 1
            self._add(-1)
            self.touch()

    @contextlib.contextmanager
    def idle(self):
        """Inside :meth:`busy`: this run waits (for the start-up work itself), the server is not busy for it.
        Outside one (in this thread), nothing changes."""
        if getattr(self._depth, "n", 0) <= 0:
            yield
            return
        self._depth.n -= 1
        self._add(-1)
        try:
            yield
        finally:
            self._add(1)
            self._depth.n += 1

    def _add(self, n: int) -> None:
        with self._lock:
            self._busy += n

    def quiet(self) -> bool:
        """No page run under way, and no request or message for ``quiet_s``."""
        return self._busy == 0 and time.monotonic() - self._last >= self.quiet_s

    def wait_turn(self) -> float:
        """Wait until the server is quiet, at most ``turn_s`` (and what is left of ``total_s``); the seconds waited."""
        if not self.on or self.waited_s >= self.total_s or self.quiet():
            return 0.0
        start = time.monotonic()
        limit = min(self.turn_s, self.total_s - self.waited_s)
        while not self.quiet() and time.monotonic() - start < limit:
            time.sleep(self.POLL_S)
        waited = time.monotonic() - start
        self.waited_s += waited
        return waited

    @contextlib.contextmanager
    def paced_imports(self):
        """For the length of the block, each import statement of the calling thread first waits its turn
        (:meth:`wait_turn`); other threads' imports are not touched. ``builtins.__import__`` is restored at the
        end, unless something replaced it meanwhile (then the wrapper stays, passing every import straight on)."""
        if not self.on:
            yield
            return
        original = builtins.__import__
        thread, on = threading.get_ident(), [True]

        def paced_import(name, globals=None, locals=None, fromlist=(), level=0):
            if on[0] and threading.get_ident() == thread:
                self.wait_turn()
            return original(name, globals, locals, fromlist, level)

        builtins.__import__ = paced_import
        try:
            yield
        finally:
            on[0] = False
            if builtins.__import__ is paced_import:
                builtins.__import__ = original


SERVER = Pacer(on=not switched_off("pacing"))  # the server process's: one per process, shared by every session


class ServerActivity:
    """ASGI middleware: ``touch()`` for every HTTP request and every websocket message in either direction (one
    clock read each); requests and messages pass through unchanged."""

    def __init__(self, app, touch: Callable[[], None]):
        self.app, self.touch = app, touch

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):  # the lifespan
            await self.app(scope, receive, send)
            return
        touch = self.touch
        touch()
        if scope["type"] == "http":
            await self.app(scope, receive, send)
            return

        async def receiving():
            message = await receive()
            touch()
            return message

        async def sending(message):
            touch()
            await send(message)

        await self.app(scope, receiving, sending)
