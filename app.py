"""Grad-CAM Studio's server: ``streamlit run app.py`` takes this file (``make run``, and the main file on
Community Cloud); it wraps the pages' script ``streamlit_app.py`` with the :mod:`server` package's adjustments.

Both files exist because Streamlit's ASGI entry (``st.App``) names a script to run for each page view and
cannot be that script itself. ``streamlit run streamlit_app.py`` serves the same pages without the middlewares
and the early start (its first page starts the start-up work); what each adjustment buys: :mod:`server`.
"""
import streamlit as st

from server import lifespan, middleware

app = st.App("streamlit_app.py", lifespan=lifespan, middleware=middleware())
