"""Explain: the photo, the top-k predictions and the heatmap of the chosen class, layer and method."""
import functools
import time

import streamlit as st

from core.cam import methods
from core.cam.explain import explain
from core.imaging import images, render
from ui.charts import top_k_chart
from ui.pictures import show
from ui.sidebar import sidebar

st.title("Explain a prediction")  # before the sidebar: on screen while a cold server starts
ctx = sidebar()
if ctx is None:
    st.stop()

t = time.perf_counter()
method = methods.REGISTRY[ctx.method]
res = ctx.engine.run(ctx.image.rgb, ctx.class_index)  # cached per (pixels, class): no pass on layer/method/alpha
if method.extra_passes:  # passes of its own (Score-CAM): once per view, kept for this session's redraws
    key = (ctx.engine.spec.name, images.pixel_hash(ctx.image.rgb), res.class_index, ctx.layer, method.name)
    memo = st.session_state.get("explain_memo")
    if memo is None or memo[0] != key:
        bar = st.progress(0.0, text=f"{method.title}…")
        ex = explain(ctx.engine, ctx.image.rgb, res.class_index, ctx.layer, method.name,
                     progress=lambda f: bar.progress(f, text=f"{method.title}… {f:.0%}"), **method.page_options())
        bar.empty()
        st.session_state["explain_memo"] = memo = (key, ex.cam)
    cam = memo[1]
else:
    cam, method, why = methods.from_pass(method.name, res, ctx.layer, ctx.engine)
    if why:
        st.info(why)
base = render.display_base(ctx.image.rgb)
over = render.overlay(base, cam, ctx.alpha, ctx.colormap)
elapsed = time.perf_counter() - t + st.session_state.get("last_pass", 0.0)

name = ctx.engine.spec.label(res.class_index)
st.markdown(f"Explaining **{name}** (class {res.class_index}, p = {res.probs[res.class_index]:.1%}) "
            f"at layer `{ctx.layer}` of {ctx.engine.spec.title} with {method.title}.")
c1, c2, c3 = st.columns(3)
show(c1, base, caption=f"Original · {ctx.image.size[0]}×{ctx.image.size[1]}")
show(c2, over, caption=f"{method.title} overlay · {name}")
h, w = cam.shape
raw = render.colorize(render.normalise(cam), ctx.colormap)
show(c3, render.upsample_nearest(raw, base.shape[1], base.shape[0]),
         caption=f"Raw map · {h}×{w} at the layer's resolution · max {cam.max():.3g}", fmt="PNG")
if render.is_empty(cam):
    st.info(render.NO_EVIDENCE)

left, right = st.columns([3, 2])
with left:
    top = res.top_k(ctx.top_k)  # no more rows than the model has classes
    st.subheader(f"Top-{len(top)} predictions")
    st.vega_lite_chart(top_k_chart(top, res.class_index, ctx.engine.spec.label), width="stretch")
with right:
    st.metric("Compute time of the last interaction", f"{elapsed * 1000:.0f} ms")
    st.caption("A new photo or class runs one compiled forward+backward pass for every layer; "
               "changing layer, method (Score-CAM aside), alpha or colormap only re-renders.")
    st.download_button("Download overlay (PNG)", functools.partial(render.to_png, over),  # encoded when clicked
                       file_name=f"{method.name}_{res.class_index}_{ctx.layer}.png",
                       mime="image/png")
