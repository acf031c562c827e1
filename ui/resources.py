"""Cached, bounded resources: engines (one compiled model each) and sample photos."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.imaging import images
from core.engine import Engine
from core.engine.pool import BUDGET_MB, EnginePool, tune_allocator

from .runtime import keep_keras_state

keep_keras_state()  # once per process: Streamlit would otherwise reset Keras's state after every run

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLES = {
    "Cat and dog": "cat_and_dog.jpg",
    "Cat (Chelsea)": "cat.jpg",
    "Dog (German shepherd)": "dog.jpg",
    "Espresso cup": "coffee.jpg",
    "Rocket launch": "rocket.jpg",
    "Cow in a meadow": "cow.jpg",
}


@st.cache_resource(show_spinner=False)
def engine_pool() -> EnginePool:
    """The one pool of engines shared by every session, within BUDGET_MB (weights plus a per-engine overhead)."""
    tune_allocator()  # once per server process, before the first model is loaded
    return EnginePool(BUDGET_MB)


def get_engine(name: str) -> Engine:
    """The engine for ``name`` with ImageNet weights (weights must already be cached for Keras models).

    Raises:
        models.WeightsUnavailable: the weights file cannot be read (one sentence).
    """
    pool = engine_pool()
    if name in pool.names():
        return pool.get(name)
    with st.spinner("Loading the model…"):
        return pool.get(name)


@st.cache_resource(max_entries=len(SAMPLES) + 2, show_spinner=False)
def sample(file_name: str) -> images.LoadedImage:
    """A bundled sample photo."""
    return images.load_path(ASSETS / file_name)


@st.cache_data(max_entries=16, show_spinner=False)
def decode_upload(data: bytes, name: str) -> images.LoadedImage:
    """Decode an upload once per distinct content (raises ImageError)."""
    return images.load_bytes(data, name)
