"""Cached, bounded resources: engines (one compiled model each) and sample photos."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import models
from core.engine import Engine
from core.engine.pool import BUDGET_MB, EnginePool, tune_allocator
from core.engine.warmup import WarmUp
from core.imaging import images
from core.training import FeatureCache

from server import pacing
from server.runtime import keep_keras_state, keep_replies

keep_keras_state()  # once per process: Streamlit would otherwise reset Keras's state after every run
keep_replies()  # and drop a reply the browser waits for (an upload's addresses) when a rerun starts

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


@st.cache_resource(show_spinner=False)
def warm_up() -> WarmUp:
    """Once per server process, in the background: TensorFlow, the default model and its first pass on the
    default sample, so that the first visitor's page draws its title and sidebar while that happens.
    ``app.py`` starts it with the server (:func:`start_warm_up`); otherwise the first page does."""
    pool = engine_pool()
    return WarmUp(pool.get, models.DEFAULT_MODEL, sample(next(iter(SAMPLES.values()))).rgb, pacer=pacing.SERVER)


def start_warm_up() -> WarmUp:
    """Start the start-up work now (the server's entry, ``app.py``, calls this as the server starts)."""
    return warm_up().start(settle=True)  # the server process: its collector settles when the work is done


def start_notice():
    """A progress bar in the page while the start-up work runs (None on a warm server): draw it first, so a
    visitor of a cold server sees at once what is happening, then :func:`wait_for_start` with it."""
    work = warm_up()
    if work.done:
        return None
    notice = st.progress(work.fraction, text=_stage_text(work))
    work.start()  # after drawing the notice: the work competes with the page for the interpreter
    return notice


def _stage_text(work: WarmUp) -> str:
    return f"Starting up, once after a restart: {work.stage.lower()}…"


def wait_for_start(notice=None) -> None:
    """Wait for the start-up work, following it on ``notice`` (from :func:`start_notice`)."""
    work = warm_up().start()
    if work.done:
        if notice is not None:
            notice.empty()
        return
    notice = notice or st.progress(work.fraction, text=_stage_text(work))
    shown = work.stage
    with pacing.SERVER.idle():  # this run waits for the work: the import need not wait for it
        while not work.wait(0.1):
            if work.stage != shown:  # a message only when the stage changes: the interpreter is busy loading
                shown = work.stage
                notice.progress(work.fraction, text=_stage_text(work))
    notice.empty()


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


def trained_models() -> dict:
    """This session's trained models, name → :class:`core.models.TrainedModel` (in the session, never shared)."""
    return st.session_state.setdefault("trained_models", {})


def get_trained_engine(model) -> Engine:
    """The pool's engine for a trained model (built from its backbone and head the first time)."""
    pool = engine_pool()
    if model.name in pool.names():
        return pool.get(model)
    with st.spinner(f"Loading {model.title}…"):
        return pool.get(model)


@st.cache_resource(show_spinner=False)
def feature_cache() -> FeatureCache:
    """Pooled features by (backbone, exact pixels), shared by every session (the key says all a value depends on)."""
    return FeatureCache()


@st.cache_resource(max_entries=len(SAMPLES) + 2, show_spinner=False)
def sample(file_name: str) -> images.LoadedImage:
    """A bundled sample photo."""
    return images.load_path(ASSETS / file_name)


def decode_upload(data: bytes, name: str) -> images.LoadedImage:
    """Decode an uploaded photo (raises ImageError). Not cached: the sidebar decodes each upload once and keeps the
    photo in the session (one per session); a cache would hold a second copy of it, and of the file's bytes."""
    return images.load_bytes(data, name)
