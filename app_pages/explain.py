"""Explain: the photo, the top-k predictions and the Grad-CAM heatmap of the chosen class and layer."""
import time

import streamlit as st

from core.cam import methods
from core.imaging import labels, render
from ui.charts import top_k_chart
from ui.sidebar import sidebar

ctx = sidebar()
st.title("Explain a prediction")
if ctx is None:
    st.stop()

t = time.perf_counter()
res = ctx.engine.run(ctx.image.rgb, ctx.class_index)  # cached per (pixels, class): no pass on layer/alpha/colormap
cam = methods.gradcam(res.acts[ctx.layer], res.grads[ctx.layer])
base = render.display_base(ctx.image.rgb)
over = render.overlay(base, cam, ctx.alpha, ctx.colormap)
elapsed = time.perf_counter() - t + st.session_state.get("last_pass", 0.0)

name = labels.label(res.class_index)
st.markdown(f"Explaining **{name}** (class {res.class_index}, p = {res.probs[res.class_index]:.1%}) "
            f"at layer `{ctx.layer}` of {ctx.engine.spec.title}.")
c1, c2, c3 = st.columns(3)
c1.image(base, caption=f"Original · {ctx.image.size[0]}×{ctx.image.size[1]}", width="stretch")
c2.image(over, caption=f"Grad-CAM overlay · {name}", width="stretch")
h, w = cam.shape
raw = render.colorize(render.normalise(cam), ctx.colormap)
c3.image(render.upsample_nearest(raw, base.shape[1], base.shape[0]),
         caption=f"Raw map · {h}×{w} at the layer's resolution · max {cam.max():.3g}", width="stretch")
if render.is_empty(cam):
    st.info(render.NO_EVIDENCE)

left, right = st.columns([3, 2])
with left:
    st.subheader(f"Top-{ctx.top_k} predictions")
    st.altair_chart(top_k_chart(res.top_k(ctx.top_k), res.class_index), width="stretch")
with right:
    st.metric("Compute time of the last interaction", f"{elapsed * 1000:.0f} ms")
    st.caption("A new photo or class runs one compiled forward+backward pass for every layer; "
               "changing layer, alpha or colormap only re-renders.")
    st.download_button("Download overlay (PNG)", render.to_png(over), file_name=f"gradcam_{res.class_index}_{ctx.layer}.png",
                       mime="image/png")
