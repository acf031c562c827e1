"""ASGI middleware that tells the server's :class:`core.pacing.Pacer` when the server works.

Each HTTP request, and each websocket message in either direction, calls ``touch`` (one clock read): while
they come, a cold server's background import of TensorFlow waits (``core/pacing.py``). Requests and messages
pass through unchanged. Wired by ``app.py`` as the outermost middleware, so it sees the frontend files
``ui/assets.py`` answers too.
"""
from __future__ import annotations

from typing import Callable


class ServerActivity:
    """ASGI middleware: ``touch()`` for every request and websocket message (see the module docstring)."""

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
