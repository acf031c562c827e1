"""The Learn page's Guided Grad-CAM lesson, on the person's photo: guided backpropagation, Grad-CAM at the chosen
layer, their product, and why the product is both pixel-sharp and class-discriminative (measured on the photo
against the runner-up class).

The lesson is about two named methods by its nature; they are looked up here, and only here, through the registry
(:data:`GUIDED`). Their maps run once per view and are kept in the session for the page's redraws.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.cam import methods
from core.imaging import render

from . import maps
from .pictures import show

GUIDED = ("guidedbackprop", "guidedgradcam")  # guided backpropagation and Guided Grad-CAM: this lesson's subject
SLOT = "learn_memo"


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson's r of two maps of one shape (None where either is constant)."""
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _r(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _heat(m, cam: np.ndarray, base: np.ndarray, colormap: str) -> np.ndarray:
    """A map as a picture at the photo's display size (its own colouring: signed or not, pixel scale)."""
    return render.heatmap(cam, base.shape[1], base.shape[0], colormap, **m.display(cam))


def guided_grad_cam(ctx, res, base: np.ndarray) -> None:
    """Draw the lesson's section on the page (header, three pictures, the formula, the measured comparison)."""
    st.header("4 · Guided Grad-CAM step by step, on your photo")
    try:
        guided, product = (methods.get(name) for name in GUIDED)
    except ValueError as exc:  # a registry without them (a trimmed copy of the project)
        st.info(f"Guided Grad-CAM is not available here: {exc}")
        return
    engine, rgb, layer, cmap = ctx.engine, ctx.image.rgb, ctx.layer, ctx.colormap
    side = maps.input_side(engine)
    h, w = res.acts[layer].shape[:2]
    name = engine.spec.label(res.class_index)
    st.markdown(
        f"Grad-CAM is as coarse as its layer ({h}×{w} cells at `{layer}`). The Grad-CAM paper's own headline picture "
        "sharpens it with **guided backpropagation** (Springenberg et al. 2015): the gradient of the class score "
        f"followed back to each of the model input's {side}×{side} pixels, where every ReLU lets a gradient through "
        "only if its input was positive on the way forward *and* the gradient is positive on the way back. What is "
        "left are the fine edges that raise the score. Multiplied pixel by pixel with Grad-CAM, upsampled to the "
        "input, it keeps those edges only where Grad-CAM points at the class.")
    st.latex(r"L^c_{\text{Guided Grad-CAM}} \;=\; R^c_{\text{guided}} \;\odot\; "
             r"\mathrm{upsample}\big(\mathrm{ReLU}\big(\textstyle\sum_k \alpha_k^c A^k\big)\big)")
    store, used = st.session_state.setdefault(SLOT, {}), set()

    def run(m, result):
        used.add(maps.view_key(m, engine, rgb, result.class_index, layer, m.page_options()))
        return maps.kept(store, m, engine, rgb, result, layer, m.page_options()).cam

    sharp = run(guided, res)
    cam = methods.gradcam(res.acts[layer], res.grads[layer])
    both = run(product, res)
    c1, c2, c3 = st.columns(3)
    show(c1, _heat(guided, sharp, base, cmap), caption=f"1 · guided backpropagation · {side}×{side}", fmt="PNG")
    show(c2, render.heatmap(render.upsample(cam, side, side), base.shape[1], base.shape[0], cmap),
         caption=f"2 · Grad-CAM at `{layer}` · {h}×{w} upsampled to {side}×{side}", fmt="PNG")
    show(c3, _heat(product, both, base, cmap), caption="3 · their product: Guided Grad-CAM", fmt="PNG")
    up = render.upsample(cam, side, side).astype(np.float64)
    gap = float(np.abs(both - sharp * up).max()) / (float(np.abs(both).max()) or 1.0)
    if gap <= 1e-4:
        st.markdown(f"Picture 3 is picture 1 times picture 2, pixel by pixel (largest difference {gap:.1e} of its "
                    "maximum): Grad-CAM is never negative, so multiplying the guided gradient's colour channels by "
                    "it and then taking their magnitude is the same as multiplying the magnitudes.")
    else:
        st.markdown(f"Picture 3 multiplies the guided gradient's colour channels by picture 2 before their "
                    f"magnitude is taken, so it differs from picture 1 × picture 2 (by up to {gap:.1%} of its maximum).")
    lines = [line for line in dict.fromkeys((maps.reading(guided, sharp), maps.reading(product, both))) if line]
    if lines:
        st.caption(" ".join(lines))

    others = [i for i, _ in res.top_k(5) if i != res.class_index]
    if not others:  # a model of one class
        maps.prune(store, used)
        return
    other = st.selectbox("Compare with another class of the top-5", others, format_func=engine.spec.label,
                         key=f"learn_other_{res.class_index}", help="Guided backpropagation and Grad-CAM of this "
                         "class beside those of the explained class: which of the two changes with the class?")
    second = engine.run(rgb, other)
    other_name = engine.spec.label(other)
    r_guided = correlation(sharp, run(guided, second))
    r_cam = correlation(cam, methods.gradcam(second.acts[layer], second.grads[layer]))
    maps.prune(store, used)
    if r_guided is not None and r_cam is not None and r_cam < r_guided:
        verdict = ("Grad-CAM's two maps agree less: Grad-CAM is what tells the classes apart, guided backpropagation "
                   "what makes the product sharp.")
    else:
        verdict = ("On this photo and layer Grad-CAM's two maps do not agree less than guided backpropagation's: "
                   "the two classes share their evidence here (try another class above, the last layer, or a photo of two objects).")
    st.markdown(
        "**Why the product is both sharp and class-discriminative.** A product is zero wherever either factor is: "
        "its detail can be no finer than guided backpropagation's, and it can only be where Grad-CAM is. Guided "
        "backpropagation alone is barely class-specific — it looks much like an edge detector of the photo (Adebayo "
        f"et al. 2018). On your photo: guided backpropagation for *{name}* and for *{other_name}* "
        f"correlate at r = **{_r(r_guided)}**; Grad-CAM's maps for the two classes at `{layer}` at "
        f"r = **{_r(r_cam)}**. {verdict}")
