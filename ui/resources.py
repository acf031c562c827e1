"""Cached, bounded resources: engines (one compiled model each) and sample photos."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import images, models
from core.engine import Engine

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLES = {
    "Cat and dog": "cat_and_dog.jpg",
    "Cat (Chelsea)": "cat.jpg",
    "Dog (German shepherd)": "dog.jpg",
    "Espresso cup": "coffee.jpg",
    "Rocket launch": "rocket.jpg",
    "Cow in a meadow": "cow.jpg",
}
MAX_MODELS = 2  # engines kept in memory: bounded so switching through all models stays within ~1.2 GB


@st.cache_resource(max_entries=MAX_MODELS, show_spinner="Loading the model…")
def get_engine(name: str) -> Engine:
    """The engine for ``name`` with ImageNet weights (weights must already be cached for Keras models)."""
    spec = models.get_spec(name)
    return Engine(spec, models.load_model(name))


@st.cache_resource(max_entries=len(SAMPLES) + 2, show_spinner=False)
def sample(file_name: str) -> images.LoadedImage:
    """A bundled sample photo."""
    return images.load_path(ASSETS / file_name)


@st.cache_data(max_entries=16, show_spinner=False)
def decode_upload(data: bytes, name: str) -> images.LoadedImage:
    """Decode an upload once per distinct content (raises ImageError)."""
    return images.load_bytes(data, name)
