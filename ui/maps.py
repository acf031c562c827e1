"""How the pages offer, compute, keep and draw any registered method's map, from its registry fields alone.

No function here asks for a method by name: a method that reads more than the cached pass (``on_pass`` None: the
classifier's weights, or passes of its own) is computed once per view — model, photo pixels, class, the layer
where the method uses one, its options — with a progress bar where it reports progress, and the pages keep it in
the session for their redraws (alpha, colormap, top-k, a layer the method ignores). A map at the model input's
resolution (``pixels``) is drawn at the photo's size and aspect like any other, on a diverging scale where it has
negative values, and scaled to a high percentile of its magnitude (:func:`core.imaging.render.pixel_scale`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st

from core.cam import methods
from core.cam.interface import Method, Tunable
from core.imaging import images, render

from .kept import keep

FAMILIES = {
    "CAM": "weighs the channels of one layer's activations (by gradients, by the classifier, or by what masking "
           "with them does to the score): a coarse map at the layer's resolution that follows the class",
    "gradients": "how the class score changes with each input pixel (a backward pass through the network, "
                 "possibly gated, averaged over noisy copies or along a path from a baseline): pixel-sharp, "
                 "but not always class-specific",
    "perturbation": "how the class score drops when parts of the photo are hidden (forward passes only, no "
                    "gradient): what the model needs, at the cost of many passes",
}
SIGNED = ("Signed map: the colormap's middle is zero, its top end pushes the class score up, its bottom end "
          "pushes it down.")


@dataclass(frozen=True)
class Computed:
    """One map as a page keeps it: the raw map, the method that drew it, its passes and seconds."""

    cam: np.ndarray
    method: Method
    passes: int
    seconds: float
    notes: tuple = ()


def input_side(engine) -> int:
    """The model input's side in pixels."""
    return int(engine.spec.input_size)


def place(m: Method, engine, layer: str) -> str:
    """Where the map is, for a sentence: at the layer, or at the model input."""
    if m.layer == "input":
        s = input_side(engine)
        return f"at the model input ({s}×{s})"
    if m.pixels:
        s = input_side(engine)
        return f"at the model input ({s}×{s}) with layer `{layer}`"
    return f"at layer `{layer}`"


def ignores_layer(m: Method, engine) -> str:
    """One line for the layer control where ``m`` ignores it (empty otherwise)."""
    if m.layer is None:
        return ""
    s = input_side(engine)
    return (f"{m.title} ignores the layer: its map is at the model input ({s}×{s}). "
            "The layer applies to the other methods.")


def option_widgets(container, tunables, prefix: str) -> dict:
    """One widget per tunable (a number input, or a selectbox for a named choice), each keyed ``prefix + key``;
    returns their values by the tunable's name."""
    return {t.name: _widget(container, t, prefix) for t in tunables}


def _widget(container, t: Tunable, prefix: str):
    if t.choices:
        return container.selectbox(t.label, t.choices, key=keep(f"{prefix}{t.key}", t.page_default, choices=t.choices),
                                   help=t.help)
    key = keep(f"{prefix}{t.key}", t.page_default, low=t.low, high=t.high)
    return int(container.number_input(t.label, t.low, t.high, step=t.step, key=key, help=t.help))


def view_key(m: Method, engine, rgb: np.ndarray, class_index: int, layer: str, options: dict) -> tuple:
    """What a method's map depends on: the model, the photo's pixels, the class, the layer where the method uses
    the chosen one, and its own options."""
    mine = tuple(sorted((t.name, options.get(t.name)) for t in m.tunables))
    return (engine.spec.name, images.pixel_hash(rgb), int(class_index), m.layer or layer, m.name, mine)


def kept(store: dict, m: Method, engine, rgb: np.ndarray, res, layer: str, options: dict, where=st) -> Computed:
    """``m``'s map for this view from ``store`` (a dict the page keeps in its session), computed and stored there
    when it is not yet: with a progress bar in ``where`` while it runs, where the method reports progress.

    Raises:
        methods.NotApplicable: the method is not defined here (nothing is stored).
    """
    key = view_key(m, engine, rgb, res.class_index, layer, options)
    if key in store:
        return store[key]
    bar = where.progress(0.0, text=f"{m.title}…") if m.progress else None
    job = methods.Context(res, m.layer or layer, engine, rgb, options=dict(options), progress=None if bar is None else (
        lambda f: bar.progress(float(min(max(f, 0.0), 1.0)), text=f"{m.title}… {f:.0%}")))
    t = time.perf_counter()
    try:
        cam = m.run(job)
    finally:
        if bar is not None:
            bar.empty()
    store[key] = out = Computed(np.asarray(cam), m, job.passes, time.perf_counter() - t, tuple(job.notes))
    return out


def page_map(slot: str, m: Method, engine, rgb: np.ndarray, res, layer: str, options: dict,
             where=st) -> tuple[Computed, str | None]:
    """The map a page shows for ``m``: from the cached pass where the method is a function of it (redrawn on every
    change), else kept in ``st.session_state[slot]`` for this view only (one view: another one replaces it).

    Returns:
        (the map, None) — or Grad-CAM's map and one sentence why, where ``m`` does not apply here.
    """
    if m.on_pass is not None:
        t = time.perf_counter()
        return Computed(m.run(methods.Context(res, layer)), m, 0, time.perf_counter() - t), None
    store = st.session_state.get(slot)
    if store is None or view_key(m, engine, rgb, res.class_index, layer, options) not in store:
        store = {}
    try:
        got = kept(store, m, engine, rgb, res, layer, options, where)
    except methods.NotApplicable as exc:
        fallback = methods.REGISTRY[methods.DEFAULT]
        t = time.perf_counter()
        cam = fallback.run(methods.Context(res, layer))
        return Computed(cam, fallback, 0, time.perf_counter() - t), f"{exc} Showing {fallback.title} instead."
    st.session_state[slot] = store
    return got, None


def prune(store: dict, used: set) -> None:
    """Forget the maps of ``store`` that the page's last complete run did not show (another view's)."""
    for key in [k for k in store if k not in used]:
        del store[key]


def reading(m: Method, cam: np.ndarray) -> str:
    """The one line under the map on how to read its colours: the method's own, or the signed scale's where the map
    has negative values (empty for a map of the class's evidence, strongest brightest)."""
    if m.reading:
        return m.reading
    return SIGNED if m.signed else ""


def raw_picture(m: Method, cam: np.ndarray, colormap: str, width: int, height: int) -> np.ndarray:
    """The map at its own resolution (the layer's, or the model input's), coloured and enlarged blockily to
    (height, width)."""
    how = m.display(cam)
    return render.upsample_nearest(render.colorize(render.to_unit(cam, how["vmax"], how["signed"]), colormap),
                                   width, height)


def raw_caption(m: Method, cam: np.ndarray) -> str:
    """The raw map's caption: its resolution, where that is, and its scale."""
    h, w = cam.shape
    where = "the model input's" if m.pixels else "the layer's"
    top = float(np.nanmax(np.abs(cam))) if np.isfinite(cam).any() else 0.0
    scale = f" · colours up to the {render.PIXEL_PERCENTILE:g}th percentile" if m.pixels else ""
    return f"Raw map · {h}×{w} at {where} resolution · max |value| {top:.3g}{scale}"
