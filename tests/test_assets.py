"""Streamlit's frontend files served from memory (server/assets.py): the same bytes and headers as Starlette's
``StaticFiles`` over the same folder, for every file Streamlit ships; everything else passes through."""
import asyncio
import logging

import pytest
from starlette.staticfiles import StaticFiles

from server.assets import CACHE_CONTROL, FrontendAssets, streamlit_static_dir, url_prefix

FOLDER = streamlit_static_dir()
A_BUNDLE = "js/" + next((FOLDER / "static" / "js").glob("*.js")).name  # one of Streamlit's JS files


class Counting:
    """The next ASGI app (Starlette's StaticFiles over Streamlit's folder), counting the requests it gets."""

    def __init__(self):
        self.files = StaticFiles(directory=FOLDER, html=True, follow_symlink=True)
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await self.files(scope, receive, send)


def request(app, path, method="GET", headers=()):
    """(status, headers as a dict, body) of one request to an ASGI ``app``, with ``path`` exactly as given."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    sent, received = [], []

    async def receive():  # the request once, then nothing until the response is done (Starlette cancels it)
        if received:
            await asyncio.sleep(3600)
        received.append(1)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def test_streamlit_ships_its_frontend_folder():
    assert FOLDER is not None and (FOLDER / "static" / "js").is_dir()
    assert url_prefix("") == "/static/" and url_prefix("/workshop/") == "/workshop/static/"


def test_every_frontend_file_is_served_from_memory_as_starlette_serves_it():
    downstream = Counting()
    assets = FrontendAssets(downstream)
    files = sorted(p for p in (FOLDER / "static").rglob("*") if p.is_file())
    assert len(files) > 100
    for path in files:
        url = "/static/" + path.relative_to(FOLDER / "static").as_posix()
        status, headers, body = request(assets, url)
        calls = downstream.calls
        ref_status, ref_headers, ref_body = request(downstream, url)
        assert downstream.calls == calls + 1
        assert status == ref_status == 200 and body == ref_body == path.read_bytes(), url
        for key in ("content-type", "content-length", "etag", "last-modified"):
            assert headers[key] == ref_headers[key], (url, key)
        assert headers["cache-control"] == CACHE_CONTROL
    # every one of them was answered from memory; a second round reads nothing from the folder again
    assert assets.served == len(files) and downstream.calls == len(files)
    status, _, body = request(assets, "/static/" + files[0].relative_to(FOLDER / "static").as_posix())
    assert status == 200 and body == files[0].read_bytes() and downstream.calls == len(files)


@pytest.mark.parametrize("path,method,headers", [
    ("/", "GET", ()),                                   # index.html: Streamlit's, never cached
    ("/static/index.html", "GET", ()),                  # not under static/static
    ("/static/js/missing.js", "GET", ()),
    ("/static/js/../../index.html", "GET", ()),         # not a key of the index: no path reaches the disk
    ("/static/../manifest.json", "GET", ()),
    ("/_stcore/health", "GET", ()),
    ("JS", "HEAD", ()),
    ("JS", "POST", ()),
    ("JS", "GET", (("Range", "bytes=0-10"),)),
    ("JS", "GET", (("If-None-Match", '"x"'),)),
    ("JS", "GET", (("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),)),
])
def test_everything_else_goes_to_streamlit(path, method, headers):
    seen = []

    async def downstream(scope, receive, send):
        seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"streamlit"})

    if path == "JS":
        path = "/static/" + A_BUNDLE
    assets = FrontendAssets(downstream)
    status, _, body = request(assets, path, method, headers)
    assert (status, body, seen) == (299, b"streamlit", [(method, path)]) and assets.served == 0


def test_websocket_passes_through():
    seen = []

    async def downstream(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(FrontendAssets(downstream)({"type": "websocket", "path": "/_stcore/stream"}, None, None))
    assert seen == ["websocket"]


def test_a_base_url_path_moves_the_prefix():
    name = A_BUNDLE
    assets = FrontendAssets(Counting(), prefix=url_prefix("workshop"))
    assert request(assets, "/workshop/static/" + name)[0] == 200 and assets.served == 1
    request(assets, "/static/" + name)
    assert assets.served == 1  # the root path is not this app's any more: Streamlit answers it


def test_without_the_folder_it_says_so_once_and_passes_everything_through(tmp_path, caplog):
    seen = []

    async def downstream(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    assets = FrontendAssets(downstream, directory=tmp_path / "nowhere")
    with caplog.at_level(logging.WARNING, logger="server.assets"):
        for _ in range(3):
            request(assets, "/static/js/index.js")
    assert seen == ["/static/js/index.js"] * 3 and assets.served == 0
    assert len([r for r in caplog.records if r.name == "server.assets"]) == 1
