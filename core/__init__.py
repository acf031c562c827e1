"""Grad-CAM Studio core: a plain Python library (no Streamlit) — models, engine, methods, images, render, CLI."""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the CLI and UI
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
