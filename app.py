"""Grad-CAM Studio's server: ``streamlit run app.py`` (``make run``; the main file on Community Cloud).

Streamlit's public ASGI entry (``st.App``) around the pages' script ``streamlit_app.py``, with

- one middleware: Streamlit's frontend files served from memory (``ui/assets.py``), which cuts a new
  visitor's cost to the shared server by about 0.15 s of CPU;
- a lifespan that starts the start-up work (TensorFlow, the default model, its first pass) in the
  background as the server starts, not when the first visitor's page asks for it.

``streamlit run streamlit_app.py`` serves the same app without them (its first page starts that work).
"""
import contextlib

import streamlit as st
from starlette.middleware import Middleware

from ui.assets import FrontendAssets


@contextlib.asynccontextmanager
async def lifespan(app):
    from ui.resources import start_warm_up

    start_warm_up()  # returns at once: the work runs in its own thread
    yield


app = st.App("streamlit_app.py", middleware=[Middleware(FrontendAssets)], lifespan=lifespan)
