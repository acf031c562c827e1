"""Grad-CAM Studio's server: ``streamlit run app.py`` (``make run``; the main file on Community Cloud).

Streamlit's public ASGI entry (``st.App``) around the pages' script ``streamlit_app.py``, with

- two middlewares: Streamlit's frontend files served from memory (``ui/assets.py``), which cuts a new
  visitor's cost to the shared server by about 0.15 s of CPU; and the server's activity told to its pacer
  (``ui/activity.py``), for which a cold server's import of TensorFlow gives way (``core/pacing.py``);
- a lifespan that starts the start-up work (TensorFlow, the default model, its first pass) in the
  background as the server starts, not when the first visitor's page asks for it. The server answers on its
  port before the lifespan has run, and the first requests wait for it, so it only starts a thread: with the
  app's modules imported in the lifespan itself, the first request to a fresh server took 0.45-0.53 s; in
  the thread, 0.20-0.27 s, as with no lifespan at all (0.27-0.31 s: Streamlit's own start).

``streamlit run streamlit_app.py`` serves the same app without them (its first page starts that work).
"""
import contextlib
import threading

import streamlit as st
from starlette.middleware import Middleware

from core.pacing import SERVER
from ui.activity import ServerActivity
from ui.assets import FrontendAssets


def _start_warm_up() -> None:
    from ui.resources import start_warm_up  # the app's modules (numpy, the models' registry): 0.3 s

    start_warm_up()  # returns at once: the work runs in its own thread


@contextlib.asynccontextmanager
async def lifespan(app):
    threading.Thread(target=_start_warm_up, name="gradcam-start", daemon=True).start()
    yield


app = st.App("streamlit_app.py", lifespan=lifespan,
             middleware=[Middleware(ServerActivity, touch=SERVER.touch), Middleware(FrontendAssets)])
