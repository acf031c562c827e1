"""Occlude: paint over the photo, re-predict, and see how the prediction and the heatmap move."""
import math
import time

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from core.cam import methods, occlusion
from core.imaging import images, render
from ui.charts import change_chart, change_table
from ui.kept import keep
from ui.pictures import show
from ui.sidebar import sidebar

TOOLS = {"Rectangle": "rect", "Circle": "circle", "Polygon": "polygon", "Brush": "freedraw"}
PAINT = "rgba(255, 0, 200, 0.45)"
CANVAS_MAX = 640

st.title("Occlusion studio")  # before the sidebar: on screen while a cold server starts
ctx = sidebar()
if ctx is None:
    st.stop()
engine, rgb, cls = ctx.engine, ctx.image.rgb, ctx.class_index
photo_key = images.pixel_hash(rgb)
st.caption("Paint over part of the photo: it is filled (gray by default) and the model predicts again. "
           "Use the canvas toolbar to move/edit shapes, undo, or clear. Masks stay while you change model, "
           "layer, alpha or colormap; a new photo gets a fresh canvas.")

tool_col, brush_col, fill_col = st.columns([2, 1, 1])  # the four tools in one row at 1400 px (at 1:1:1 Brush wrapped)
tool = tool_col.radio("Tool", list(TOOLS), key=keep("occ_tool", list(TOOLS)[0], choices=TOOLS), horizontal=True)
brush = brush_col.slider("Brush size", 4, 120, key=keep("occ_brush", 40, low=4, high=120), disabled=tool != "Brush")
fill = fill_col.selectbox("Fill", occlusion.FILLS, key=keep("occ_fill", occlusion.FILLS[0], choices=occlusion.FILLS),
                          help="gray = the seeds' graying out; blur and noise remove detail differently; "
                               "mean = the photo's average colour.")
h, w = rgb.shape[:2]
# the canvas's toolbar (undo, redo, edit, clear) shows on hover 2.65 rem above the canvas's top edge, outside
# the component's own box: leave it room, or it covers the Brush size slider above
st.space("medium")
cw = min(CANVAS_MAX, w)
chh = max(1, round(cw * h / w))
# the canvas gets the full width of the page, at the photo's own aspect ratio
result = st_canvas(
    fill_color=PAINT, stroke_color=PAINT, stroke_width=brush if tool == "Brush" else 2,
    background_image=Image.fromarray(render.display_base(rgb, max(cw, chh))).resize((cw, chh)),
    width=cw, height=chh, drawing_mode=TOOLS[tool], return_image_data=True, update_streamlit=True,
    key=f"canvas_{photo_key[:16]}",
)
try:
    rgba = result.image_data if result is not None else None
except RuntimeError:
    rgba = None
mask = occlusion.canvas_mask(rgba, w, h)

t = time.perf_counter()
before = engine.run(rgb, cls)
occluded = occlusion.apply_fill(rgb, mask, fill)
after = engine.run(occluded, cls)
cam_b, used, why = methods.from_pass(ctx.method, before, ctx.layer, engine)
cam_a = methods.from_pass(used.name, after, ctx.layer, engine)[0]
elapsed = time.perf_counter() - t
if why:
    st.caption(why)

name = engine.spec.label(cls)
pb, pa = before.probs[cls], after.probs[cls]
st.markdown(f"**{name}** (class {cls}): {pb:.1%} → **{pa:.1%}** ({(pa - pb) * 100:+.1f} points) · "
            f"{mask.mean():.1%} of the photo occluded · {elapsed * 1000:.0f} ms")
vmax = max(cam_b.max(), cam_a.max()) or None  # one colour scale for both maps, so a drop shows as a drop
base_b, base_a = render.display_base(rgb), render.display_base(occluded)
c1, c2, c3, c4 = st.columns(4)
show(c1, base_b, caption="Original")
show(c2, base_a, caption=f"Occluded ({fill})")
show(c3, render.overlay(base_b, cam_b, ctx.alpha, ctx.colormap, vmax), caption=f"{used.title} · {name} · original")
show(c4, render.overlay(base_a, cam_a, ctx.alpha, ctx.colormap, vmax), caption=f"{used.title} · {name} · occluded")
if render.is_empty(cam_a) and mask.any():
    st.info(render.NO_EVIDENCE)

table = change_table(before, after, ctx.top_k, engine.spec.label)
st.subheader("How the top-k moved")
st.altair_chart(change_chart(table, cls), width="stretch")
shown = table.assign(before=table["before"].map("{:.2%}".format), after=table["after"].map("{:.2%}".format),
                     change=(table["change"] * 100).map("{:+.2f} pts".format)).drop(columns="index")
st.table(shown.set_index("class"))

st.subheader("Occlude what the heatmap points at")
pct = st.slider(f"Top p % of the {used.title} map", 1, 60, key=keep("occ_pct", 20, low=1, high=60))
a1, a2 = st.columns(2)
if a1.button("Occlude what the heatmap points at", key="occ_top"):
    st.session_state["occ_action"] = "remove"
if a2.button("Keep only that", key="occ_keep"):
    st.session_state["occ_action"] = "keep"
action = st.session_state.get("occ_action")
if action:
    auto = occlusion.occlude_hottest(rgb, render.upsample(cam_b, w, h), pct, action, fill)
    if auto is None:
        st.info(render.NO_EVIDENCE)
    else:
        res = engine.run(auto[0], cls)
        d = res.probs[cls] - pb
        verb = "Removing" if action == "remove" else "Keeping only"
        hot = float((auto[1] if action == "remove" else ~auto[1]).mean())  # the map's positive part may be smaller
        show(st, render.display_base(auto[0], 480), width="content",
             caption=f"{verb} the top {pct} % of the map" + ("" if hot >= pct / 100 - 0.005 else
                                                              f": only {hot:.0%} of the photo has positive evidence"))
        st.metric(f"p({name})", f"{res.probs[cls]:.1%}", f"{d * 100:+.1f} points")
        st.caption("A faithful map points at what the model uses: removing it should make the score drop, keeping "
                   "only it should keep much of the score.")

st.subheader("Occlusion-sensitivity map")
s1, s2, s3 = st.columns(3)
size = engine.spec.input_size
patch = s1.slider("Patch (px at the model input)", 8, size // 2, step=4, key=keep("occ_patch", 32, low=8, high=size // 2))
stride = s2.slider("Stride (px)", 4, size // 2, step=4, key=keep("occ_stride", 16, low=4, high=size // 2))
n = len(occlusion.patch_positions(size, patch, stride)) ** 2
s3.caption(f"{n} positions → {math.ceil(n / occlusion.BATCH)} batched forward passes (batch {occlusion.BATCH})")
skey = (engine.spec.name, photo_key, cls, patch, stride, fill)
if st.button("Compute occlusion-sensitivity map", key="occ_run"):
    bar = st.progress(0.0, text="Sliding the patch…")
    t = time.perf_counter()
    smap, passes = occlusion.sensitivity(engine, rgb, cls, patch, stride, fill=fill,
                                         progress=lambda f: bar.progress(f, text=f"Sliding the patch… {f:.0%}"))
    bar.empty()
    st.session_state["occ_sens"] = (skey, smap, passes, time.perf_counter() - t)
saved = st.session_state.get("occ_sens")
if saved and saved[0] == skey:
    _, smap, passes, secs = saved
    m1, m2 = st.columns(2)
    show(m1, render.overlay(base_b, np.maximum(smap, 0), ctx.alpha, ctx.colormap),
             caption=f"Occlusion sensitivity · {passes} forward passes · {secs:.1f} s")
    show(m2, render.overlay(base_b, cam_b, ctx.alpha, ctx.colormap), caption=f"{used.title} · {ctx.layer}")
    if render.is_empty(smap):
        st.info("No patch lowered the score of this class: nothing here supports it.")
