"""Compare: one photo and class, a grid of methods × layers (or × models), each cell with its map and time."""
import time

import streamlit as st

from core import models
from core.cam import methods
from core.cam.explain import spread_layers
from core.imaging import render
from ui import charts
from ui.resources import engine_pool, get_engine
from ui.pictures import show
from ui.sidebar import sidebar


def title(name: str) -> str:
    return methods.REGISTRY[name].title

st.title("Compare methods")  # before the sidebar: on screen while a cold server starts
ctx = sidebar()
if ctx is None:
    st.stop()
engine, rgb, cls = ctx.engine, ctx.image.rgb, ctx.class_index
st.markdown(f"Explaining **{engine.spec.label(cls)}** (class {cls}) on the same photo. Every gradient method reuses the "
            "one cached pass; Score-CAM runs its own batched forward passes. Each map is scaled to its own "
            f"maximum and drawn with the sidebar's colormap ({ctx.colormap}) and alpha ({ctx.alpha:.2f}).")

# the methods get the whole width: five default chips were cut off in a third of it
chosen = st.multiselect("Methods", methods.names(), default=["gradcam", "gradcampp", "hirescam", "layercam", "eigencam"],
                        format_func=charts.map_title, key="cmp_methods")  # a page's own function would keep its run
c2, c3 = st.columns(2)
across = c2.radio("Rows", ["layers", "models"], horizontal=True, key="cmp_across")
# the chosen methods' numbers (Score-CAM's top-N), each shown only while a method that takes it is chosen
options = {t.name: c3.selectbox(t.label, t.choices, t.choices.index(t.page_default), key=f"cmp_{t.key}", help=t.help)
           if t.choices else int(c3.number_input(t.label, t.low, t.high, t.page_default, t.step, key=f"cmp_{t.key}",
                                                 help=t.help)) for t in methods.tunables(chosen)}
trained = engine.spec.name not in models.REGISTRY
if trained and across == "models":
    st.info(f"Rows of models compare ImageNet models on one ImageNet class; {engine.spec.title} scores your own "
            "classes, which no other model knows, so its layers are compared instead.")
    across = "layers"
if trained:
    st.caption(f"{engine.spec.title} ends in global average pooling → Dense over your classes, so CAM applies at "
               f"its last layer (`{engine.spec.default_layer}`).")
if across == "layers":
    rows = st.multiselect("Layers", list(engine.layers), default=spread_layers(engine.layers, 3),
                          key=f"cmp_layers_{engine.spec.name}")
    cells = [(engine, layer) for layer in rows]
else:
    ready = [n for n, s in models.REGISTRY.items() if s.weights_cached()]
    picked = st.multiselect("Models (at their last layer; only those whose weights are available offline)", ready,
                            default=[engine.spec.name], key="cmp_models",
                            help=engine_pool().describe())
    refusal = engine_pool().refusal([engine.spec.name] + picked)  # the sidebar's model stays loaded too
    if refusal:
        st.warning(f"With the sidebar's {engine.spec.title}: {refusal}")
        st.stop()
    cells = [(get_engine(n), None) for n in picked]

if not chosen or not cells:
    st.info("Choose at least one method and one row.")
    st.stop()

base = render.display_base(rgb, 360)
header = st.columns(len(chosen) + 1)
header[0].markdown("**row**")
for col, m in zip(header[1:], chosen):
    col.markdown(f"**{title(m)}**", help=methods.REGISTRY[m].summary)
for eng, layer in cells:
    layer = layer or eng.spec.default_layer
    res = eng.run(rgb, cls)
    shape = eng.layer_shape(layer)
    cols = st.columns(len(chosen) + 1)
    cols[0].markdown(f"`{layer}`  \n{shape[0]}×{shape[1]}×{shape[2]}" +
                     ("" if across == "layers" else f"  \n{eng.spec.title}"))
    for col, m in zip(cols[1:], chosen):
        entry = methods.REGISTRY[m]
        t = time.perf_counter()
        bar = col.progress(0.0, text=f"{entry.title}…") if entry.progress else None
        job = methods.Context(res, layer, eng, rgb, options=options, progress=None if bar is None else (
            lambda f, b=bar, name=entry.title: b.progress(f, text=f"{name}… {f:.0%}")))
        try:
            cam = entry.run(job)
        except methods.NotApplicable as exc:
            col.info(str(exc))
            continue
        finally:
            if bar is not None:
                bar.empty()
        extra = f" · {job.passes} passes" if entry.extra_passes else ""
        ms = (time.perf_counter() - t) * 1000
        note = " · no positive evidence" if render.is_empty(cam) else ""
        show(col, render.overlay(base, cam, ctx.alpha, ctx.colormap),
                  caption=f"{ms:.0f} ms{extra}{note}")
st.caption("The times are those of the map itself (the shared network pass is computed once per photo and class).")
