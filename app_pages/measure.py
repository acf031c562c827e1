"""Measure: is the map any good? Localisation against the object's boxes, faithfulness curves and ROAD, the sanity
check, and "Can this be fooled?" (every figure ranked side by side) for the sidebar's photo, class and layer
(figures as ``python -m core evaluate`` computes them)."""
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from core import models
from core.cam import methods
from core.imaging import images, render
from core.metrics import boxes as bx
from core.metrics import faithfulness, road
from ui import charts
from ui import session_metrics as ms
from ui.charts import map_title
from ui.kept import keep
from ui.pictures import show
from ui.resources import trained_models
from ui.sidebar import sidebar

CANVAS_MAX = 520  # fits the left column (3/5 of the main area) from a 1280-px-wide window with the sidebar open
STRIP_COLUMNS = 6

st.title("Measure an explanation")  # before the sidebar: on screen while a cold server starts
ctx = sidebar()
if ctx is None:
    st.stop()
engine, rgb, cls, layer = ctx.engine, ctx.image.rgb, ctx.class_index, ctx.layer
h, w = rgb.shape[:2]
photo_key = images.pixel_hash(rgb)
label = engine.spec.label(cls)
st.markdown(f"Measuring the maps of **{label}** (class {cls}) at `{layer}`. Three baselines are measured with every "
            "method: a **random** map (seeded noise on the layer's grid), a **centre** prior (a Gaussian in the "
            "middle, σ = ¼ of each side) and the photo's **edges** (Sobel, smoothed); none of them looks at the "
            "model, so a method that does not beat them proves nothing.")
chosen = st.multiselect("Methods", methods.names(), format_func=map_title,
                        key=keep("ms_methods", ["gradcam"], choices=methods.names()))
if engine.spec.name not in models.REGISTRY:
    st.caption(f"{engine.spec.title} ends in global average pooling → Dense over your classes, so CAM applies at "
               f"its last layer (`{engine.spec.default_layer}`).")
with st.spinner("Computing the maps…"):
    maps = ms.raw_maps(engine, rgb, cls, layer, list(chosen) + list(ms.BASELINES), ms.seed_for(ctx.image))
for m, (_key, cam) in maps.items():
    if isinstance(cam, str):
        st.info(f"{map_title(m)}: {cam}")
usable = {m: v for m, v in maps.items() if not isinstance(v[1], str)}

# --- localisation ------------------------------------------------------------------------------------
st.header("Localisation")
st.caption("Draw the object's box(es) on the photo (drag a rectangle; the toolbar undoes or clears), or upload "
           "them. IoU compares the map's box with them; the pointing game asks whether the map's maximum lies in "
           "a box; energy-based pointing is the share of the map's positive mass inside the boxes.")
left, right = st.columns([3, 2])
with left:
    # the canvas's toolbar (undo, redo, edit, clear) shows on hover 2.65 rem above the canvas's top edge, outside
    # the component's own box: leave it room, or it covers the caption above
    st.space("medium")
    cw = min(CANVAS_MAX, w)
    chh = max(1, round(cw * h / w))
    drawing = st_canvas(
        fill_color="rgba(40, 220, 60, 0.12)", stroke_color="rgb(40, 220, 60)", stroke_width=2,
        background_image=Image.fromarray(render.display_base(rgb, max(cw, chh))).resize((cw, chh)),
        width=cw, height=chh, drawing_mode="rect", update_streamlit=True, key=f"ms_canvas_{photo_key[:16]}")
    drawn = bx.canvas_boxes(drawing.json_data if drawing is not None else None, cw, chh, w, h)
    up = st.file_uploader("…or upload boxes: CSV `x0,y0,x1,y1` in the photo's pixels (header optional) or a "
                          "Pascal VOC XML", type=["csv", "txt", "xml"], key=f"ms_boxes_{photo_key[:16]}")
    uploaded = []
    if up is not None:
        try:
            uploaded, problems = bx.read_upload(up.getvalue(), up.name, w, h)
            for line in problems[:3]:
                st.warning(line)
            if len(problems) > 3:
                st.warning(f"…and {len(problems) - 3} more rows skipped.")
        except bx.BoxError as exc:
            st.error(str(exc))
    boxes = drawn + uploaded
    if boxes:
        st.markdown("**Object boxes** (photo pixels x0, y0, x1, y1): " +
                    "; ".join(f"`{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}`" for x0, y0, x1, y1 in boxes))
        st.download_button("Download the boxes (CSV)", bx.to_csv(boxes), "boxes.csv", "text/csv", key="ms_boxes_dl")
with right:
    threshold = st.slider("Threshold (fraction of the map's maximum)", 0.05, 0.95, step=0.05,
                          key=keep("ms_threshold", 0.2, low=0.05, high=0.95))
    st.caption("The map's pixels at or above this fraction of its maximum form the region (bright); the yellow "
               "box frames its largest connected part, the box IoU compares with the object's green boxes.")
    if not usable:
        st.stop()
    shown = st.selectbox("Map shown", list(usable), format_func=map_title, key="ms_shown")
    locs = {m: ms.localise(key, cam, boxes, threshold, w, h) for m, (key, cam) in usable.items()}
    rec = locs.get(shown) or next(iter(locs.values()))
    show(st, render.region_picture(render.display_base(rgb, ms.REGION_SIDE), rec["region"], rec["cam_box"], boxes, w),
         caption=f"{map_title(shown)} · threshold {threshold:.2f}")

if not boxes:
    st.info("Draw or upload the object's box to get IoU, the pointing game and energy-based pointing.")
else:
    centre = locs.get("centre")
    c1, c2, c3 = st.columns(3)
    for col, key, name, spec in ((c1, "iou", "IoU", ".3f"), (c2, "pointing", "Pointing game", ""),
                                 (c3, "energy", "Energy-based pointing", ".3f")):
        delta = None
        if centre is not None and shown != "centre" and key != "pointing":
            delta = f"{rec[key] - centre[key]:+.3f} vs the centre prior"
        help_ = None if centre is None else f"Centre prior: {ms.fmt(centre[key], spec or '.3f')}"
        col.metric(f"{name} · {map_title(shown)}", ms.fmt(rec[key], spec or ".3f"), delta, help=help_)
    st.table(ms.localisation_table(locs))
    st.caption("ImageNet objects sit near the centre, which is why the pointing game alone proves little: on "
               "ImageNet validation photos a centre point alone lands in the box on 88–90 % of the correctly "
               "classified photos, Grad-CAM's maximum on 90–91 %. Read every method's row against the centre "
               "prior's.")
    st.subheader("IoU against the threshold")
    st.altair_chart(charts.iou_chart(locs, threshold), width="stretch")
    st.caption("\"IoU\" depends on a choice: the same map gives another IoU at another threshold (the dashed line "
               "is the slider's).")

# --- faithfulness ------------------------------------------------------------------------------------
st.header("Faithfulness")
steps = st.slider("Steps", 5, 50, step=5, key=keep("ms_steps", faithfulness.STEPS, low=5, high=50),
                  help="The pixels are removed or revealed in this many equal parts: one batch of 2 × (steps + 1) "
                       "images per map.")
st.markdown(
    f"**Deletion** (Petsiuk et al., RISE): the map's most important pixels of the {engine.spec.input_size}×"
    f"{engine.spec.input_size} model input are filled **{faithfulness.DELETION_FILL}** first, in {steps} steps; the "
    "probability should fall fast (low area = good). **Insertion**: from the photo **blurred** (as the Occlude "
    "page's blur fill, as in the paper), they are revealed first; the probability should rise fast (high area = "
    "good). **Average drop** and **increase in confidence** (Grad-CAM++ paper): the probability on the photo "
    "multiplied by the map scaled to 0..1, against the photo's.")
todo = [m for m, (key, _c) in usable.items() if ms.cached_faithfulness(key, steps) is None]
if st.button(f"Compute deletion and insertion curves ({len(todo)} maps)" if todo else "Curves computed for every map",
             key="ms_faith_run", type="primary", disabled=not todo):
    bar = st.progress(0.0, text="Deletion and insertion…")
    try:
        ms.run_faithfulness(engine, rgb, cls, {m: usable[m] for m in todo}, steps, progress=lambda f, m: bar.progress(
            f, text=f"Deletion and insertion… {map_title(m)} done"))
    except (ValueError, RuntimeError) as exc:
        st.error(f"The curves could not be computed: {str(exc).splitlines()[0]}")
    else:
        st.rerun()  # the button's count and the figures below from the kept results
    finally:
        bar.empty()
results = {m: r for m, (key, _c) in usable.items() if (r := ms.cached_faithfulness(key, steps)) is not None}
if results:
    st.altair_chart(charts.curves_chart(results, label), width="stretch")
    st.table(ms.faithfulness_table(results))
    st.markdown(ms.drop_note(results, label))
    st.caption(f"{steps} steps; deletion fill {faithfulness.DELETION_FILL}, insertion starts from the photo "
               f"with the {faithfulness.INSERTION_START} fill; areas by the trapezoid rule over 0..1; average drop as a fraction, "
               "not a percentage.")
    missing = [map_title(m) for m in usable if m not in results]
    if missing:
        st.caption(f"Not measured yet at {steps} steps: {', '.join(missing)}.")

st.subheader("ROAD: remove and debias")
st.markdown(
    "**ROAD** (Rong et al., ICML 2022, as pytorch-grad-cam computes it): at 10 %, 20 %, …, 90 % the map's most "
    "relevant pixels (**MoRF**) or its least relevant ones (**LeRF**) are removed and *imputed* from their "
    "neighbours with a little noise, so that the hole's shape gives nothing away; each point is the change of "
    "the class probability against the photo's. MoRF should fall, LeRF stay: **ROAD combined** = (mean LeRF − "
    "mean MoRF) / 2, high = good.")
road_todo = [m for m, (key, _c) in usable.items() if ms.cached_road(key) is None]
if st.button(f"Compute ROAD ({len(road_todo)} maps)" if road_todo else "ROAD computed for every map",
             key="ms_road_run", disabled=not road_todo):
    bar = st.progress(0.0, text="ROAD: imputing…")
    try:
        ms.run_road(engine, rgb, cls, {m: usable[m] for m in road_todo},
                    progress=lambda f, m: bar.progress(min(1.0, f), text=f"ROAD: imputing… {map_title(m)}"))
    except (ValueError, RuntimeError) as exc:
        st.error(f"ROAD could not be computed: {str(exc).splitlines()[0]}")
    else:
        st.rerun()
    finally:
        bar.empty()
roads = {m: r for m, (key, _c) in usable.items() if (r := ms.cached_road(key)) is not None}
if roads:
    st.altair_chart(charts.road_chart(roads, label), width="stretch")
    st.table(ms.road_table(roads))
    st.caption(f"Percentiles {', '.join(map(str, road.PERCENTILES))}; imputed pixels take the weighted mean of "
               "their 8 neighbours (1/6 sides, 1/12 diagonals), noise σ 1.28 levels of 255; all "
               f"{2 * len(road.PERCENTILES)} images of a map through the model in one batch.")

# --- sanity check ------------------------------------------------------------------------------------
st.header("Sanity check")
method = ctx.method
st.markdown(
    "Cascading randomisation (Adebayo et al., 2018): the model's weights are re-initialised from the top block "
    f"down, one block at a time, and the sidebar's method (**{map_title(method)}**) draws its map again after each "
    "step. A method whose map does not change when the model is destroyed explains the photo, not the model. "
    "The randomised model is a private copy; the model the other pages use is not touched.")


def keras_copy():
    """The sidebar model's Keras model with its trained weights (the cascade clones it)."""
    own = trained_models().get(engine.spec.name)
    return own.keras_model() if own is not None else models.load_model(engine.spec.name)


cascade = None
if methods.REGISTRY[method].extra_passes:
    st.info(f"{map_title(method)} runs its own forward passes at every step; choose a gradient method in the "
            f"sidebar, or run `python -m core sanity IMAGE --method {method}` on the command line.")
else:
    skey = ms.sanity_key(engine, rgb, cls, layer, method)
    if st.button(f"Run the cascade for {map_title(method)}", key="ms_sanity_run"):
        bar = st.progress(0.0, text="Copying the model…")
        try:
            keras_model = keras_copy()
            ms.run_sanity(engine, keras_model, rgb, cls, layer, method,
                          progress=lambda f: bar.progress(f, text=f"Re-initialising block by block… {f:.0%}"))
            del keras_model
        except (ValueError, RuntimeError, models.WeightsUnavailable) as exc:
            st.error(f"The cascade could not run: {str(exc).splitlines()[0]}")
        bar.empty()
    cascade = ms.cached_sanity(skey)
if cascade is not None:
    small = render.display_base(rgb, 240)
    cells = [("original model", cascade.original, "")] + [
        (f"random from {s.randomised_from}", s.cam, f"ρ {ms.fmt(s.spearman)} · SSIM {ms.fmt(s.ssim)}")
        for s in cascade.steps]
    for start in range(0, len(cells), STRIP_COLUMNS):
        cols = st.columns(STRIP_COLUMNS)
        for col, (name, cam, figures) in zip(cols, cells[start:start + STRIP_COLUMNS]):
            empty = " · map empty" if render.is_empty(cam) else ""
            show(col, render.overlay(small, cam, ctx.alpha, ctx.colormap), caption=f"{name}  \n{figures}{empty}")
    st.altair_chart(charts.sanity_chart(cascade), width="stretch")
    last = cascade.steps[-1]
    verdict = ("the map is gone with the model: it depends on what the model learned" if abs(last.spearman) < 0.3
               else "much of the map survives a random model: part of it comes from the photo itself")
    st.markdown(f"With every block random, Spearman's ρ to the original map is **{ms.fmt(last.spearman)}** and SSIM "
                f"**{ms.fmt(last.ssim)}**: {verdict}. ρ ranks the pixels (1 = same order); SSIM compares the shapes "
                "of the maps, each scaled to its own maximum.")

# --- can this be fooled? -----------------------------------------------------------------------------
st.header("Can this be fooled?")
st.markdown(
    "A map that never looks at the model — the photo's **edges**, or **random** noise — should lose on every "
    "metric. It does not always: edges sit on objects, and a metric that removes pixels rewards a map that "
    "removes the photo's structure. Below, the chosen methods and both model-free maps are ranked by every "
    "metric side by side, and by the sanity check (how little of the map survives a random model).")
panel = [m for m in usable if m not in ms.BASELINES] + [m for m in ("edges", "random") if m in usable]
sane = [m for m in panel if m in ms.BASELINES or not methods.REGISTRY[m].extra_passes]
missing = (sum(ms.cached_faithfulness(usable[m][0], steps) is None for m in panel)
           + sum(ms.cached_road(usable[m][0]) is None for m in panel)
           + sum(ms.cached_sanity(ms.sanity_key(engine, rgb, cls, layer, m)) is None for m in sane))
if st.button(f"Rank the maps ({missing} computations to go)" if missing else "Every figure of the ranking is computed",
             key="ms_fooled_run", disabled=not missing):
    bar = st.progress(0.0, text="Ranking: deletion and insertion…")
    try:
        sub = {m: usable[m] for m in panel}
        ms.run_faithfulness(engine, rgb, cls, sub, steps, progress=lambda f, m: bar.progress(
            0.1 * f, text=f"Ranking: deletion and insertion… {map_title(m)}"))
        ms.run_road(engine, rgb, cls, sub, progress=lambda f, m: bar.progress(
            0.1 + 0.4 * min(1.0, f), text=f"Ranking: ROAD… {map_title(m)}"))
        todo = [m for m in sane if ms.cached_sanity(ms.sanity_key(engine, rgb, cls, layer, m)) is None]
        if todo:
            keras_model = keras_copy()
            for i, m in enumerate(todo):
                ms.run_sanity(engine, keras_model, rgb, cls, layer, m, progress=lambda f, i=i, m=m: bar.progress(
                    0.5 + 0.5 * (i + f) / len(todo), text=f"Ranking: the sanity cascade… {map_title(m)}"))
            del keras_model
    except (ValueError, RuntimeError, models.WeightsUnavailable) as exc:
        st.error(f"The ranking could not be computed: {str(exc).splitlines()[0]}")
    else:
        st.rerun()
    finally:
        bar.empty()
faith = {m: r for m in panel if (r := ms.cached_faithfulness(usable[m][0], steps)) is not None}
roads = {m: r for m in panel if (r := ms.cached_road(usable[m][0])) is not None}
sanities = {m: c for m in sane if (c := ms.cached_sanity(ms.sanity_key(engine, rgb, cls, layer, m))) is not None}
locs_panel = {m: locs[m] for m in panel} if boxes else {}
if faith or roads or sanities:
    figures = ms.fooled_figures(panel, locs_panel, faith, roads, sanities)
    st.table(ms.fooled_table(figures))
    note = ms.fooled_note(figures)
    if note:
        st.markdown(note)
    st.caption("Rank 1 is the best map on that column (equal figures share a rank): high is good for the pointing "
               "game, energy, insertion and ROAD, low for deletion, and for the sanity check low |ρ| (the map "
               f"changes when the model is destroyed). Deletion and insertion at {steps} steps"
               + ("" if boxes else "; draw a box above for the pointing game and energy") + ".")
