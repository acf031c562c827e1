"""Compare: one photo and class, a grid of methods × layers (or × models), each cell with its map and time."""
import time

import streamlit as st

from core import models
from core.cam import methods
from core.cam.explain import spread_layers
from core.imaging import render
from ui import charts, maps
from ui.resources import engine_pool, get_engine
from ui.kept import keep
from ui.pictures import show
from ui.sidebar import sidebar


def title(name: str) -> str:
    return methods.REGISTRY[name].title

st.title("Compare methods")  # before the sidebar: on screen while a cold server starts
ctx = sidebar()
if ctx is None:
    st.stop()
engine, rgb, cls = ctx.engine, ctx.image.rgb, ctx.class_index
st.markdown(f"Explaining **{engine.spec.label(cls)}** (class {cls}) on the same photo. The CAM methods of one layer's "
            "activations and gradients reuse the one cached pass; the methods with passes of their own (Score-CAM, the "
            "gradient and perturbation methods) run them once for this view. Each map at a layer is scaled to its own "
            "maximum, a map at the input to the 99.5th percentile of its magnitude (a few pixels hold most of its range), "
            f"and drawn with the sidebar's colormap ({ctx.colormap}) and alpha ({ctx.alpha:.2f}).")

# the methods get the whole width: five default chips were cut off in a third of it
chosen = st.multiselect("Methods", methods.names(), format_func=charts.map_title,
                        key=keep("cmp_methods", ["gradcam", "gradcampp", "hirescam", "layercam", "eigencam"],
                                 choices=methods.names()))  # a page's own function would keep its run
c2, c3 = st.columns(2)
across = c2.radio("Rows", ["layers", "models"], horizontal=True, key=keep("cmp_across", "layers"))
# the chosen methods' numbers (Score-CAM's top-N), each shown only while a method that takes it is chosen
options = maps.option_widgets(c3, methods.tunables(chosen), "cmp_")
trained = engine.spec.name not in models.REGISTRY
if trained and across == "models":
    st.info(f"Rows of models compare ImageNet models on one ImageNet class; {engine.spec.title} scores your own "
            "classes, which no other model knows, so its layers are compared instead.")
    across = "layers"
if trained:
    st.caption(f"{engine.spec.title} ends in global average pooling → Dense over your classes, so CAM applies at "
               f"its last layer (`{engine.spec.default_layer}`).")
if across == "layers":
    rows = st.multiselect("Layers", list(engine.layers), key=keep(f"cmp_layers_{engine.spec.name}",
                                                                  spread_layers(engine.layers, 3), choices=engine.layers))
    cells = [(engine, layer) for layer in rows]
else:
    ready = [n for n, s in models.REGISTRY.items() if s.weights_cached()]
    picked = st.multiselect("Models (at their last layer; only those whose weights are available offline)", ready,
                            key=keep("cmp_models", [n for n in [engine.spec.name] if n in ready], choices=ready),
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
# a map that reads more than the cached pass is computed once for this view (its key: model, photo, class, the
# layer where it uses one, its options) and kept for the redraws; a method that ignores the layer once per model
store, used = st.session_state.setdefault("cmp_memo", {}), set()  # filled as it goes: a rerun keeps what is done
drawn = set()  # the maps already on screen in this grid (a method that ignores the layer: its first row)
for eng, layer in cells:
    layer = layer or eng.spec.default_layer
    res = eng.run(rgb, cls)
    shape = eng.layer_shape(layer)
    cols = st.columns(len(chosen) + 1)
    cols[0].markdown(f"`{layer}`  \n{shape[0]}×{shape[1]}×{shape[2]}" +
                     ("" if across == "layers" else f"  \n{eng.spec.title}"))
    for col, m in zip(cols[1:], chosen):
        entry = methods.REGISTRY[m]
        key = maps.view_key(entry, eng, rgb, cls, layer, options)
        if entry.layer is not None and key in drawn:
            col.caption(f"{entry.title} ignores the layer: its map is in the first row.")
            continue
        try:
            if entry.on_pass is None:
                got = maps.kept(store, entry, eng, rgb, res, layer, options, where=col)
            else:
                t = time.perf_counter()
                got = maps.Computed(entry.run(methods.Context(res, layer)), entry, 0, time.perf_counter() - t)
        except methods.NotApplicable as exc:
            col.info(str(exc))
            continue
        drawn.add(key)
        used.add(key)
        extra = f" · {got.passes} passes" if entry.extra_passes else ""
        note = " · no positive evidence" if render.is_empty(got.cam) else ""
        show(col, render.overlay(base, got.cam, ctx.alpha, ctx.colormap, **entry.display(got.cam)),
             caption=f"{got.seconds * 1000:.0f} ms{extra}{note}")
        if maps.reading(entry, got.cam):
            col.caption(maps.reading(entry, got.cam))
maps.prune(store, used)
st.caption("The times are those of the map itself (the shared network pass is computed once per photo and class); "
           "a map with passes of its own is computed once for this view and shown again on a redraw with the time "
           "it took then.")
