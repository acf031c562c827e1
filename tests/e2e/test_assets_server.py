"""``streamlit run app.py`` (``make run``) answers Streamlit's frontend files from memory with the bytes and
headers Streamlit's own static route sends (server/assets.py): a conditional request is Streamlit's to answer, so
the two answers can be set side by side on one real server."""
import urllib.request

from server.assets import streamlit_static_dir

from .browser import Server

IGNORED = {"date", "server"}


def fetch(url: str, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items() if k.lower() not in IGNORED}, r.read()


def test_the_server_sends_streamlits_own_bytes_and_headers_for_its_frontend():
    folder = streamlit_static_dir() / "static"
    names = [next(folder.glob("js/index.*.js")), next(folder.glob("css/*.css")), next(folder.glob("media/*.woff2"))]
    with Server() as server:
        for path in names:
            url = server.url + "/static/" + path.relative_to(folder).as_posix()
            ours = fetch(url)
            # Streamlit's answer: a conditional request passes through (the file changed since 1970: a 200)
            theirs = fetch(url, {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"})
            assert ours[0] == theirs[0] == 200
            assert ours[2] == theirs[2] == path.read_bytes(), url
            assert ours[1] == theirs[1], url
            assert ours[1]["cache-control"].startswith("public, immutable")
        # the page and the health check are Streamlit's as before
        status, headers, body = fetch(server.url + "/")
        assert status == 200 and headers["cache-control"] == "no-cache" and b"<html" in body.lower()
        assert fetch(server.url + "/_stcore/health")[2] == b"ok"
