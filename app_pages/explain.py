"""Explain: the photo, the top-k predictions and the heatmap of the chosen class, layer and method."""
import functools
import time

import streamlit as st

from core.cam import methods
from core.imaging import render
from ui import maps
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
options = {}
if method.tunables:  # the chosen method's own numbers: a new value is a new view, computed once
    with st.expander(f"{method.title} settings", expanded=False):
        options = maps.option_widgets(st, method.tunables, "exp_")
# a method of the cached pass is redrawn on every change; any other (the classifier's weights, passes of its own)
# runs once per view, with a bar where it reports progress, and is kept for this session's redraws
got, why = maps.page_map("explain_memo", method, ctx.engine, ctx.image.rgb, res, ctx.layer, options)
if why:
    st.info(why)
cam, method = got.cam, got.method
how = method.display(cam)
base = render.display_base(ctx.image.rgb)
over = render.overlay(base, cam, ctx.alpha, ctx.colormap, **how)
elapsed = time.perf_counter() - t + st.session_state.get("last_pass", 0.0)

name = ctx.engine.spec.label(res.class_index)
st.markdown(f"Explaining **{name}** (class {res.class_index}, p = {res.probs[res.class_index]:.1%}) "
            f"{maps.place(method, ctx.engine, ctx.layer)} of {ctx.engine.spec.title} with {method.title}.")
c1, c2, c3 = st.columns(3)
show(c1, base, caption=f"Original · {ctx.image.size[0]}×{ctx.image.size[1]}")
show(c2, over, caption=f"{method.title} overlay · {name}")
show(c3, maps.raw_picture(method, cam, ctx.colormap, base.shape[1], base.shape[0]),
     caption=maps.raw_caption(method, cam), fmt="PNG")
if maps.reading(method, cam):
    st.caption(maps.reading(method, cam))
if method.extra_passes:
    ran = f"ran {got.passes} pass{'es' * (got.passes != 1)} of its own" if got.passes else "reused its cached pass"
    st.caption(f"{method.title} {ran} in {got.seconds:.1f} s, once for this view: alpha, colormap and top-k "
               "redraw it without running anything again.")
for note in got.notes:
    st.caption(note)
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
               "changing layer, method (those with passes of their own aside), alpha or colormap only re-renders.")
    st.download_button("Download overlay (PNG)", functools.partial(render.to_png, over),  # encoded when clicked
                       file_name=f"{method.name}_{res.class_index}_{method.layer or ctx.layer}.png",
                       mime="image/png")
