"""The shared sidebar: model, photo, layer, class, method, alpha, colormap, top-k.

Everything the pages need comes back in one :class:`Context`; the explained class is tracked by
class **index** in ``st.session_state``, never by its rank in the top-k. A session opens the view its
link names (:mod:`core.view`) and the URL follows the user's changes.

An uploaded photo is decoded once and kept in the session (``st.session_state["upload"]``, one photo at
most: a new upload replaces it), not in the upload widget: a widget belongs to its page, and the next page's
sidebar would start with an empty one. Every page explains it until the person goes back to the samples.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core import models, view
from core.cam import methods
from core.engine import Engine, PassResult
from core.imaging import images, render

from . import maps, training
from .resources import (SAMPLES, decode_upload, get_engine, get_trained_engine, sample, start_notice, trained_models,
                        wait_for_start)
from server.runtime import release_uploads

DEFAULTS = {"model": models.DEFAULT_MODEL, "alpha": 0.45, "colormap": "jet", "top_k": 5,
            "sample": next(iter(SAMPLES)), "class_index": None, "method": "gradcam"}
WIDGETS = ("model", "sample", "method", "alpha", "colormap", "top_k")  # sidebar widgets keyed by their setting
STEMS = {Path(file).stem: title for title, file in SAMPLES.items()}  # the link's sample= → the sample's title
MAX_TOP_K = 10
# The sidebar's selectbox shows its value in a text box 190 px wide (206 less its padding) at 14 px Source Sans;
# a model's text is kept within MODEL_TEXT_PX by :func:`text_px`, an upper estimate of the drawn width.
MODEL_TEXT_PX = 184


@dataclass
class Context:
    """What a page needs: the engine, the photo, the explained class and display settings."""

    engine: Engine
    image: images.LoadedImage
    top1: PassResult
    class_index: int
    layer: str
    method: str
    alpha: float
    colormap: str
    top_k: int


def init_state() -> None:
    """Session defaults; on a session's first run, the view its link names."""
    first = "upload_nonce" not in st.session_state
    for k, v in DEFAULTS.items():
        st.session_state.setdefault(k, v)
    for k in WIDGETS:  # each page draws these widgets anew: Streamlit keeps a value across pages only when told
        st.session_state[k] = st.session_state[k]
    st.session_state.setdefault("upload_nonce", 0)
    if first:
        _open_link()


def _open_link() -> None:
    link = view.parse(st.query_params.to_dict(), STEMS, models.DEFAULT_MODEL)
    if link.model:
        st.session_state["model"] = link.model
    if link.sample:
        st.session_state["sample"] = STEMS[link.sample]
    if link.layer:  # given to the layer slider as its value (setting the widget's own key here would warn)
        st.session_state["link_layers"] = {st.session_state["model"]: link.layer}
    if link.class_index is not None:
        st.session_state["class_index"] = link.class_index
    if link.method:
        st.session_state["method"] = link.method
    if link.alpha is not None:
        st.session_state["alpha"] = link.alpha
    st.session_state["link_message"] = link.message


def _follow_in_url(ctx: "Context", uploaded: bool) -> None:
    """The URL names the view shown (an uploaded photo cannot be in a link: no sample then; a trained model lives
    in the session: no model, layer or class then, so the link opens the default model's view of the photo)."""
    sample = None if uploaded else Path(SAMPLES[st.session_state["sample"]]).stem
    params = view.to_params(ctx.engine.spec.name, sample, ctx.layer, ctx.class_index, ctx.method, ctx.alpha)
    if ctx.engine.spec.name not in models.REGISTRY:
        for key in ("model", "layer", "class"):
            params.pop(key)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def reset() -> None:
    """Back to the defaults (model, sample, settings, class), no uploaded photo and an empty upload box."""
    for k, v in DEFAULTS.items():
        st.session_state[k] = v
    st.session_state.pop("upload", None)
    st.session_state.pop("top_k_wanted", None)
    for k in [k for k in st.session_state if str(k).startswith("layer_")]:
        del st.session_state[k]
    st.session_state["upload_nonce"] += 1
    st.session_state["link_message"] = None
    st.session_state.pop("link_layers", None)


def text_px(text: str) -> float:
    """An upper estimate of ``text``'s width in pixels at 14 px Source Sans (glyph widths measured in Chromium:
    'i' 3.4, 'r' 4.9, 'o' 7.6, 'A' 7.5, 'm' 11.6, 'W' 11.0; a symbol, emoji or CJK character up to 14.6)."""
    def px(c: str) -> float:
        if c == " ":
            return 2.8
        if c in "iljI|!.,:;'`":
            return 3.6
        if c in "frt()[]{}-/\\\"":
            return 4.9
        if c in "mwMW@%":
            return 11.7
        if c.isascii():
            return 8.4 if c.isupper() else 7.7
        return 14.7
    return sum(px(c) for c in text)


def _fit(head: str, body: str, tail: str = "", width: float = MODEL_TEXT_PX) -> str:
    """``head + body + tail``, ``body`` cut with "…" where the whole would be wider than ``width`` pixels."""
    if text_px(head + body + tail) <= width:
        return head + body + tail
    while body and text_px(head + body + "…" + tail) > width:
        body = body[:-1]
    return head + body.rstrip() + "…" + tail


def model_texts(trained: dict) -> tuple[dict, str]:
    """The model selectbox's texts (name → a text that fits the sidebar's box) and its help (every full title).

    The registry's titles say more than the box holds ("EfficientNet-Lite0 (offline default)" was cut without an
    ellipsis): the box shows the name before the parenthesis, a trained model's title is cut with "…" where it
    is too long, and the help names each in full."""
    texts, full = {}, []
    for n, s in models.REGISTRY.items():
        mark = "" if s.weights_cached() else " ⤓"
        texts[n] = _fit("", s.title.split(" (")[0], mark)
        full.append(s.title + mark)
    for n, m in trained.items():
        texts[n] = _fit("★ ", m.title, " (trained)")
        full.append(f"★ {m.title} (trained)")
    return texts, ("The models: " + "; ".join(full) + ". ⤓: ImageNet weights are downloaded by Keras on first use "
                   "(needs internet). ★: a model trained on the Train page in this session, over your own classes.")


def _choose_model() -> str:
    trained = trained_models()
    names = list(models.REGISTRY) + list(trained)
    if st.session_state.get("model") not in names:  # a trained model this session no longer has
        st.session_state["model"] = models.DEFAULT_MODEL
    # the texts are made here (a closure over the session's models would read the session state later)
    titles, help_ = model_texts(trained)
    return st.sidebar.selectbox("Model", names, key="model", format_func=titles.get, help=help_)


def _load(name: str, notice=None) -> Engine | None:
    """The engine, after the process's start-up work and a weights download where needed; None (with the
    reason and a way back to the default) where the model cannot be used."""
    wait_for_start(notice)
    if name in trained_models():
        return get_trained_engine(trained_models()[name])
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


def _back_to_samples() -> None:
    st.session_state.pop("upload", None)


def _take_upload(up) -> None:
    """Decode the dropped photo into the session (replacing the one before), let go of the widget's bytes and
    start the next run with an empty drop zone; a file that is not a photo leaves one line and the photo before."""
    try:
        st.session_state["upload"] = decode_upload(up.getvalue(), up.name)
    except images.ImageError as exc:
        st.session_state["upload_error"] = str(exc)
    release_uploads(up, st.session_state.get(f"upload_{st.session_state['upload_nonce']}"))
    st.session_state["upload_nonce"] += 1
    st.rerun()


def _choose_image(choose: bool = True) -> tuple[images.LoadedImage, bool]:
    """The photo every page explains: the person's upload (kept in the session) or a sample. ``choose``: draw the
    sample list and the drop zone (not on a page that explains no photo of its own: one line says so there)."""
    up = st.session_state.get("upload")
    if not choose:
        photo = view.shown(up.name) if up else st.session_state["sample"]
        st.sidebar.caption(f"Photo explained on the other pages: {photo}. "
                           "Training images go in this page's class uploader, not in the sidebar.")
    else:
        st.sidebar.selectbox("Sample photo", list(SAMPLES), key="sample", on_change=_back_to_samples,
                             help="Choosing a sample puts your uploaded photo aside.")
        got = st.sidebar.file_uploader(
            "…or your own photo to explain", type=None, key=f"upload_{st.session_state['upload_nonce']}",
            help="One photo, explained on every page until you go back to the samples (a new one replaces it). "
                 "JPEG, PNG, WebP, BMP, TIFF or GIF (first frame); any file name. Images to train a model on go "
                 "on the Train page.",
        )
        if got is not None:
            _take_upload(got)
        error = st.session_state.pop("upload_error", None)
        if error:
            st.sidebar.error(error)
            st.sidebar.caption(f"Still showing {view.shown(up.name) if up else 'the sample photo'}.")
        if up is not None:  # (a file's name as a code span: never Markdown of the file's making)
            st.sidebar.info(f"Explaining your photo {view.shown(up.name)} ({up.size[0]}×{up.size[1]}) on every page.")
            st.sidebar.caption("A link to this view cannot carry an uploaded photo: it names no sample.")
            st.sidebar.button("Back to the sample photos", key="upload_drop", on_click=_back_to_samples)
    if up is not None:
        return up, True
    return sample(SAMPLES[st.session_state["sample"]]), False


def _radio_key(texts: dict, current: int, model: str) -> str:
    """A key for the class radio that no earlier radio of this session had whenever what it shows changes.

    Streamlit 1.67's radio holds its value as the *text* of the chosen option, and the browser keeps the text it
    last held for a key. Our texts carry the probabilities, which change with the photo; the key used to be the
    explained class and the top-k indices, which for a 2-class model are the same for every photo. After an
    upload the browser still held the last photo's text, no longer an option, and showed no option selected
    while the page explained the top-1 (the server had mapped that text back to an index with the previous
    run's options, saw a valid value and corrected nothing). A key that never recurs starts each new radio at
    ``index``."""
    sig = (model, current, tuple(texts.items()))
    if st.session_state.get("class_radio_sig") != sig:
        st.session_state["class_radio_sig"] = sig
        st.session_state["class_radio_n"] = st.session_state.get("class_radio_n", 0) + 1
    return f"class_radio_{st.session_state['class_radio_n']}"


def _choose_class(top1: PassResult, k: int, spec: models.ModelSpec) -> int:
    tops = [i for i, _ in top1.top_k(k)]
    current = st.session_state.get("class_index")
    if current is None:
        current = tops[0]
    options = list(dict.fromkeys(tops + [current]))
    # The texts are made here, not in a closure over top1: Streamlit keeps a widget's format_func for as
    # long as the session lives, and this radio gets a new key per photo and class, so a closure would
    # keep every photo's result (all layers' activations and gradients, up to 26 MB each) alive.
    texts = {i: (f"#{tops.index(i) + 1} " if i in tops else "") + f"{spec.label(i)} · {top1.probs[i]:.1%}"
             for i in options}
    picked = st.sidebar.radio("Class to explain", options, index=options.index(current), format_func=texts.get,
                              key=_radio_key(texts, current, spec.name))
    other = None
    if spec.num_classes > len(options):  # a trained model's few classes may all be in the radio already
        other = st.sidebar.selectbox(f"…or any of its {spec.num_classes} classes (type to search)",
                                     [None] + list(range(spec.num_classes)),
                                     index=0, format_func=lambda i: "—" if i is None else f"{i} · {spec.label(i)}",
                                     key=f"class_any_{current}")
    chosen = other if other is not None else picked
    if chosen != current or st.session_state.get("class_index") is None:
        st.session_state["class_index"] = int(chosen)
        if chosen != current:
            st.rerun()
    return int(chosen)


def _remember_top_k() -> None:
    st.session_state["top_k_wanted"] = st.session_state["top_k"]


def _choose_top_k(spec: models.ModelSpec) -> int:
    """The top-k slider, up to the model's number of classes (at most 10): a 2-class model offers 1–2. The
    person's own choice is kept for a model with more classes."""
    cap = min(MAX_TOP_K, spec.num_classes)
    wanted = st.session_state.setdefault("top_k_wanted", st.session_state["top_k"])
    st.session_state["top_k"] = max(1, min(wanted, cap))
    if cap < 2:  # a slider needs two values
        return 1
    return st.sidebar.slider("Top-k predictions", 1, cap, key="top_k", on_change=_remember_top_k)


def sidebar(watch_training: bool = True, choose_photo: bool = True) -> Context | None:
    """Draw the sidebar and return the page context (None when the model cannot be used).

    A training of this session that has ended joins the model list here, on whatever page is open; with
    ``watch_training`` (every page but Train, which shows its own progress) one that runs is followed in the
    sidebar until it ends. ``choose_photo=False`` (Train, which explains no photo of its own) leaves out the
    sample list and the photo's drop zone, and says in one line where training images go."""
    notice = start_notice()  # a cold server starts TensorFlow and the default model now, in the background
    init_state()
    st.sidebar.title("Grad-CAM Studio")
    kept = training.collect()
    if kept is not None and watch_training:
        st.toast(f"★ {kept.title} is trained: it is in the model list.")
    if watch_training:
        training.watch()
    if st.session_state.get("link_message"):
        st.sidebar.warning(st.session_state["link_message"])
    name = _choose_model()
    image, uploaded = _choose_image(choose_photo)
    engine = _load(name, notice)  # the title, the notice and the controls above are on screen while this waits
    if engine is None:
        return None
    spec = engine.spec
    shapes = {n: engine.layer_shape(n) for n in spec.layers}
    linked = st.session_state.get("link_layers", {}).pop(spec.name, None)  # a link's layer, used once
    layer = st.sidebar.select_slider(
        "Layer (early → late)", options=list(spec.layers),
        value=st.session_state.get(f"layer_{spec.name}") or linked or spec.default_layer,
        format_func=lambda n: f"{n} · {shapes[n][0]}×{shapes[n][1]}", key=f"layer_{spec.name}",
        help="Early layers: fine, low-level detail. Late layers: coarse, semantic. The last feeds the classifier.",
    )
    st.sidebar.caption(f"`{layer}` — {shapes[layer][0]}×{shapes[layer][1]}×{shapes[layer][2]} activations")
    chosen = methods.REGISTRY.get(st.session_state.get("method"))  # the method widget's value, drawn below
    if chosen is not None and maps.ignores_layer(chosen, engine):
        st.sidebar.caption(maps.ignores_layer(chosen, engine))
    top_k = _choose_top_k(spec)
    t = time.perf_counter()
    cached = engine.cached(image.rgb)
    top1 = engine.run(image.rgb)
    st.session_state["last_pass"] = (0.0 if cached else time.perf_counter() - t)
    photo_key = images.pixel_hash(image.rgb)
    if st.session_state.get("photo_key") != photo_key:
        # a new photo: explain its top-1 again (a change between zoo models keeps the class: all share ImageNet's 1000)
        if st.session_state.get("photo_key") is not None:
            st.session_state["class_index"] = None
        st.session_state["photo_key"] = photo_key
    if st.session_state.setdefault("class_set", spec.classes) != spec.classes:
        # another set of classes (a trained model's own, or back to ImageNet's): the index means another class
        st.session_state["class_index"] = None
        st.session_state["class_set"] = spec.classes
    class_index = _choose_class(top1, top_k, spec)
    method = st.sidebar.selectbox("Method", methods.names(), key="method",
                                  format_func=lambda m: methods.REGISTRY[m].title,
                                  help="How the map weighs the layer's channels (the Learn page explains each).")
    alpha = st.sidebar.slider("Heatmap opacity (alpha)", 0.0, 1.0, step=0.05, key="alpha")
    colormap = st.sidebar.selectbox("Colormap", render.COLORMAPS, key="colormap")
    st.sidebar.button("Reset", on_click=reset, help="Back to the default model, sample photo and settings.")
    ctx = Context(engine, image, top1, class_index, layer, method, alpha, colormap, top_k)
    _follow_in_url(ctx, uploaded)
    return ctx
