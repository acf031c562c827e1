"""The shared sidebar: model, photo, layer, class, alpha, colormap, top-k.

Everything the pages need comes back in one :class:`Context`; the explained class is tracked by
class **index** in ``st.session_state``, never by its rank in the top-k.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st

from core import models
from core.imaging import images, labels, render
from core.engine import Engine, PassResult

from .resources import SAMPLES, decode_upload, get_engine, sample

DEFAULTS = {"model": models.DEFAULT_MODEL, "alpha": 0.45, "colormap": "jet", "top_k": 5,
            "sample": next(iter(SAMPLES)), "class_index": None}


@dataclass
class Context:
    """What a page needs: the engine, the photo, the explained class and display settings."""

    engine: Engine
    image: images.LoadedImage
    top1: PassResult
    class_index: int
    layer: str
    alpha: float
    colormap: str
    top_k: int


def init_state() -> None:
    for k, v in DEFAULTS.items():
        st.session_state.setdefault(k, v)
    st.session_state.setdefault("upload_nonce", 0)


def reset() -> None:
    """Back to the defaults (model, sample, settings, class) and an empty upload box."""
    for k, v in DEFAULTS.items():
        st.session_state[k] = v
    for k in [k for k in st.session_state if str(k).startswith("layer_")]:
        del st.session_state[k]
    st.session_state["upload_nonce"] += 1


def _choose_model() -> Engine | None:
    names = list(models.REGISTRY)
    name = st.sidebar.selectbox(
        "Model", names, key="model",
        format_func=lambda n: models.REGISTRY[n].title + ("" if models.REGISTRY[n].weights_cached() else " ⤓"),
        help="⤓: ImageNet weights are downloaded by Keras on first use (needs internet).",
    )
    spec = models.get_spec(name)
    if spec.family == "keras" and not spec.weights_cached():
        bar = st.sidebar.progress(0.0, text=f"Downloading {spec.title} weights…")
        try:
            models.fetch_weights(spec, lambda f: bar.progress(f, text=f"Downloading {spec.title} weights… {f:.0%}"))
        except models.WeightsUnavailable as exc:
            bar.empty()
            return _offer_default(exc)
        bar.empty()
    try:
        return get_engine(name)
    except models.WeightsUnavailable as exc:  # a damaged weights file
        return _offer_default(exc)


def _offer_default(exc: Exception) -> None:
    """The one-sentence reason, and a button back to the offline default model."""
    st.error(str(exc))
    st.button("Use the offline default model", on_click=lambda: st.session_state.update(
        model=models.DEFAULT_MODEL), type="primary")


def _choose_image() -> images.LoadedImage:
    st.sidebar.selectbox("Sample photo", list(SAMPLES), key="sample")
    up = st.sidebar.file_uploader(
        "…or drop your own photo", type=None, key=f"upload_{st.session_state['upload_nonce']}",
        help="JPEG, PNG, WebP, BMP, TIFF or GIF (first frame); any file name.",
    )
    if up is not None:
        try:
            return decode_upload(up.getvalue(), up.name)
        except images.ImageError as exc:
            st.sidebar.error(str(exc))
            st.sidebar.caption("Showing the sample photo instead.")
    return sample(SAMPLES[st.session_state["sample"]])


def _choose_class(top1: PassResult, k: int) -> int:
    tops = [i for i, _ in top1.top_k(k)]
    current = st.session_state.get("class_index")
    if current is None:
        current = tops[0]
    options = list(dict.fromkeys(tops + [current]))
    # The texts are made here, not in a closure over top1: Streamlit keeps a widget's format_func for as
    # long as the session lives, and this radio gets a new key per photo and class, so a closure would
    # keep every photo's result (all layers' activations and gradients, up to 26 MB each) alive.
    texts = {i: (f"#{tops.index(i) + 1} " if i in tops else "") + f"{labels.label(i)} · {top1.probs[i]:.1%}"
             for i in options}
    picked = st.sidebar.radio("Class to explain", options, index=options.index(current), format_func=texts.get,
                              key=f"class_radio_{current}_{'-'.join(map(str, tops))}")
    other = st.sidebar.selectbox("…or any ImageNet class (type to search)", [None] + list(range(labels.NUM_CLASSES)),
                                 index=0, format_func=lambda i: "—" if i is None else f"{i} · {labels.label(i)}",
                                 key=f"class_any_{current}")
    chosen = other if other is not None else picked
    if chosen != current or st.session_state.get("class_index") is None:
        st.session_state["class_index"] = int(chosen)
        if chosen != current:
            st.rerun()
    return int(chosen)


def sidebar() -> Context | None:
    """Draw the sidebar and return the page context (None when the model cannot be used)."""
    init_state()
    st.sidebar.title("Grad-CAM Studio")
    engine = _choose_model()
    image = _choose_image()
    if engine is None:
        return None
    spec = engine.spec
    shapes = {n: engine.layer_shape(n) for n in spec.layers}
    layer = st.sidebar.select_slider(
        "Layer (early → late)", options=list(spec.layers), value=st.session_state.get(f"layer_{spec.name}", spec.default_layer),
        format_func=lambda n: f"{n} · {shapes[n][0]}×{shapes[n][1]}", key=f"layer_{spec.name}",
        help="Early layers: fine, low-level detail. Late layers: coarse, semantic. The last feeds the classifier.",
    )
    st.sidebar.caption(f"`{layer}` — {shapes[layer][0]}×{shapes[layer][1]}×{shapes[layer][2]} activations")
    top_k = st.sidebar.slider("Top-k predictions", 1, 10, key="top_k")
    t = time.perf_counter()
    cached = engine.cached(image.rgb)
    top1 = engine.run(image.rgb)
    st.session_state["last_pass"] = (0.0 if cached else time.perf_counter() - t)
    photo_key = images.pixel_hash(image.rgb)
    if st.session_state.get("photo_key") != photo_key:
        # a new photo: explain its top-1 again (a model change keeps the class: all share ImageNet's 1000)
        if st.session_state.get("photo_key") is not None:
            st.session_state["class_index"] = None
        st.session_state["photo_key"] = photo_key
    class_index = _choose_class(top1, top_k)
    alpha = st.sidebar.slider("Heatmap opacity (alpha)", 0.0, 1.0, step=0.05, key="alpha")
    colormap = st.sidebar.selectbox("Colormap", render.COLORMAPS, key="colormap")
    st.sidebar.button("Reset", on_click=reset, help="Back to the default model, sample photo and settings.")
    return Context(engine, image, top1, class_index, layer, alpha, colormap, top_k)
