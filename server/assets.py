"""Streamlit's frontend files (``/static/...``) served from memory (switch: ``assets``).

A browser that has not visited the app before fetches about 130 files (4.2 MB) of Streamlit's frontend.
Streamlit serves each through Starlette's ``StaticFiles``/``FileResponse``, which stats, opens, reads and
closes it on worker threads, before the app's script runs; a workshop of 30 people arriving together pays
that 30 times on one process. :class:`FrontendAssets` answers those requests from bytes held in memory (read once per
process, on first request; at most the folder's 26 MB, about 4 MB for the files the pages use). What that
saves is in :mod:`server`'s table.

It answers only a plain ``GET`` for a file that exists under Streamlit's own ``static/static/`` folder
(the content-hashed bundles, fonts and pictures; an exact match in an index built from that folder, so
no path from a request ever reaches the file system) and with the same headers Streamlit sends
(Starlette's content type, length, ETag and Last-Modified; Streamlit's one-year immutable caching).
Everything else (``HEAD``, ranges, conditional requests, ``index.html``, the health check, the websocket,
media, unknown paths) goes to Streamlit unchanged. Where Streamlit's folder cannot be found, it logs one
line and passes everything through: the app then works as before, at Streamlit's cost.

Wired by ``app.py`` through :func:`server.middleware` into ``st.App(..., middleware=[...])``, Streamlit's
public ASGI entry.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("server.assets")

# what Streamlit sends for its content-hashed files (starlette_static_routes: one year, immutable)
CACHE_CONTROL = "public, immutable, max-age=31536000"
MAX_FILE_BYTES = 16 << 20  # larger files go to Streamlit (none in 1.67: the largest, Plotly's bundle, is 4.7 MB)
# conditional or partial requests are Streamlit's to answer (304, 206)
PASS_HEADERS = {b"range", b"if-none-match", b"if-modified-since", b"if-range"}


def streamlit_static_dir() -> Path | None:
    """The folder Streamlit serves its frontend from (``streamlit/static``), or None."""
    try:
        import streamlit
    except ImportError:
        return None
    folder = Path(streamlit.__file__).resolve().parent / "static"
    return folder if (folder / "index.html").is_file() and (folder / "static").is_dir() else None


def url_prefix(base_url_path: str | None = None) -> str:
    """``/static/`` below the app's ``server.baseUrlPath`` (read from Streamlit's config when not given)."""
    if base_url_path is None:
        try:
            import streamlit as st

            base_url_path = st.get_option("server.baseUrlPath") or ""
        except Exception:  # noqa: BLE001 - no config: the root
            base_url_path = ""
    base = base_url_path.strip("/")
    return f"/{base}/static/" if base else "/static/"


class FrontendAssets:
    """ASGI middleware: Streamlit's frontend files from memory (see the module docstring).

    Args:
        app: the next ASGI application (Streamlit).
        directory: the folder holding ``index.html`` and ``static/`` (default: Streamlit's own).
        prefix: the URL path of ``directory/static`` (default: ``/static/`` below ``server.baseUrlPath``).
    """

    def __init__(self, app, directory: str | Path | None = None, prefix: str | None = None):
        self.app = app
        self._directory = Path(directory) if directory is not None else None
        self._prefix = prefix
        self._index: dict[str, Path] | None = None  # URL path -> file, built on the first request
        self._held: dict[str, tuple[list, bytes]] = {}  # URL path -> (raw headers, body)
        self.served = 0  # requests answered from memory (for tests and curiosity)

    def _build_index(self) -> dict[str, Path]:
        folder = self._directory if self._directory is not None else streamlit_static_dir()
        prefix = self._prefix if self._prefix is not None else url_prefix()
        if folder is None or not (folder / "static").is_dir():
            log.warning("Streamlit's frontend folder was not found; its files are served by Streamlit itself")
            return {}
        root = folder / "static"
        index = {}
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                index[prefix + path.relative_to(root).as_posix()] = path
        return index

    def _response(self, url_path: str) -> tuple[list, bytes] | None:
        held = self._held.get(url_path)
        if held is not None:
            return held
        path = self._index.get(url_path)
        if path is None:
            return None
        try:  # on the event loop's thread, once per file and process: small files of an installed package
            stat = path.stat()
            if stat.st_size > MAX_FILE_BYTES:
                return None
            body = path.read_bytes()
        except OSError:
            return None
        held = self._held[url_path] = (self._headers(path, stat), body)
        return held

    @staticmethod
    def _headers(path: Path, stat: os.stat_result) -> list:
        """The headers Starlette's ``FileResponse`` and Streamlit's static route send for this file."""
        from starlette.responses import FileResponse

        response = FileResponse(path, stat_result=stat)  # content type, length, ETag, Last-Modified: no I/O
        response.headers["cache-control"] = CACHE_CONTROL
        return list(response.raw_headers)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            if self._index is None:
                self._index = self._build_index()
            path = scope.get("path", "")
            if path in self._index and not any(k in PASS_HEADERS for k, _ in scope.get("headers", ())):
                held = self._response(path)
                if held is not None:
                    self.served += 1
                    await send({"type": "http.response.start", "status": 200, "headers": held[0]})
                    await send({"type": "http.response.body", "body": held[1]})
                    return
        await self.app(scope, receive, send)
