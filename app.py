"""Grad-CAM Studio's server: ``streamlit run app.py`` (``make run``; the main file on Community Cloud).

Streamlit's public ASGI entry (``st.App``) around the pages' script ``streamlit_app.py``, with one
middleware: Streamlit's frontend files served from memory (``ui/assets.py``), which cuts a new visitor's
cost to the shared server by about 0.15 s of CPU. ``streamlit run streamlit_app.py`` serves the same app
without it.
"""
import streamlit as st
from starlette.middleware import Middleware

from ui.assets import FrontendAssets

app = st.App("streamlit_app.py", middleware=[Middleware(FrontendAssets)])
