"""Learn: what Grad-CAM is for and how it works, opened up step by step on the current photo with its real numbers."""
import numpy as np
import streamlit as st

from core import models
from core.cam import methods
from core.imaging import render
from ui import maps
from ui.charts import channel_weights_chart
from ui.lesson_guided import guided_grad_cam
from ui.pictures import show
from ui.resources import trained_models
from ui.sidebar import sidebar

st.title("Learn how Grad-CAM works")  # before the sidebar: on screen while a cold server starts
ctx = sidebar()
if ctx is None:
    st.stop()
engine, rgb, cls, layer = ctx.engine, ctx.image.rgb, ctx.class_index, ctx.layer
res = engine.run(rgb, cls)
A, G = res.acts[layer], res.grads[layer]
h, w, k = A.shape
name = engine.spec.label(cls)
base = render.display_base(rgb, 300)
mine = trained_models().get(engine.spec.name)  # a model trained on the Train page (None for a zoo model)


def small(cam, cmap=None, vmax=None):
    """A map shown blocky at its true resolution, at the photo's aspect ratio."""
    pic = render.colorize(render.normalise(cam, vmax), cmap or ctx.colormap)
    return render.upsample_nearest(pic, base.shape[1], base.shape[0])


st.header("1 · What an explanation is for")
top = int(np.argmax(res.probs))
said = (f"The model says **{name}** with probability **{res.probs[cls]:.1%}** for this photo." if top == cls else
        f"The model's first answer for this photo is **{engine.spec.label(top)}** ({res.probs[top]:.1%}); the class "
        f"explained here is **{name}** ({res.probs[cls]:.1%}).")
st.markdown(
    f"{said} A probability tells you "
    "*what* the model decided, not *why*. A class-activation map answers a narrower question: **which regions of "
    "this photo raised the score of this class?** That lets you check that the model looks at the object and not "
    "at the background, the watermark or the grass under the cow, compare classes, and find where it goes wrong.")
if mine is not None:
    st.markdown(f"*{mine.title}* knows only your {len(mine.classes)} classes ({', '.join(mine.classes)}), so it "
                "names one of them for every photo, even a photo of none of them: its probability says how much "
                f"more this photo looks like *{name}* than like your other classes, not that it is one.")

st.header(f"2 · Grad-CAM step by step, on your photo, at `{layer}`")
st.markdown(f"The layer `{layer}` produces **{k} activation maps** (channels) of **{h}×{w}** cells. The class "
            f"score $y^c$ is the logit of *{name}* before the softmax: **{res.logits[cls]:.3f}**.")

st.subheader("Step 1 — gradients and channel weights")
st.latex(r"\alpha_k^c \;=\; \frac{1}{Z}\sum_{i}\sum_{j} \frac{\partial y^c}{\partial A^k_{ij}}")
st.markdown("Back-propagation gives, for every cell of every channel, how much the class score would change if "
            "that activation grew. Averaging these gradients over the cells (Z = h·w) gives one weight per channel: "
            "how much the channel, as a whole, pushes the class score up (α > 0) or down (α < 0).")
alpha = methods.channel_weights(G)
contrib = methods.channel_contributions(A, G)
st.altair_chart(channel_weights_chart(alpha), width="stretch")
n_pos = int((alpha > 0).sum())
st.caption(f"{n_pos} of {k} channels have a positive weight; α ranges from {alpha.min():.2e} to {alpha.max():.2e}.")

st.subheader("Step 2 — the channels that matter most")
top = np.argsort(-contrib)[:4]
st.markdown("The four channels that contribute most to this class here (largest α × mean activation): their "
            "activations $A^k$ (where the channel fires) and their gradients (where firing more would raise the score).")
cols = st.columns(4)
for col, ch in zip(cols, top):
    show(col, small(A[..., ch]), caption=f"channel {ch}: activation · max {A[..., ch].max():.2f}", fmt="PNG")
    show(col, small(np.maximum(G[..., ch], 0)), caption=f"its gradient (positive part) · α {alpha[ch]:.2g}", fmt="PNG")
spread = float(np.ptp(G[..., top], axis=(0, 1)).max())
if spread <= 1e-6 * float(np.abs(G[..., top]).max() or 1.0):
    st.caption(f"Each gradient is one flat colour: at `{layer}` it is the same in every cell. The layer feeds global "
               "average pooling and then the classifier, so the score changes by the same amount whichever cell of a "
               "channel grows (the classifier's weight for that channel over the h·w cells): α is that weight, "
               "which is why CAM and Grad-CAM agree here. At an earlier layer the gradients vary from cell to cell.")

st.subheader("Step 3 — the weighted sum and the ReLU")
st.latex(r"L^c_{\text{Grad-CAM}} \;=\; \mathrm{ReLU}\Big(\sum_k \alpha_k^c\, A^k\Big)")
lin = methods.weighted_sum(A, alpha)
pos, neg = np.maximum(lin, 0), np.maximum(-lin, 0)
vmax = float(max(pos.max(), neg.max())) or None
c1, c2, c3 = st.columns(3)
show(c1, small(pos, vmax=vmax), caption=f"positive part (kept) · max {pos.max():.3g}", fmt="PNG")
show(c2, small(neg, "viridis", vmax=vmax), caption=f"negative part (removed by the ReLU) · max {neg.max():.3g}", fmt="PNG")
cf = methods.counterfactual(A, G)
show(c3, small(cf, "viridis", vmax=vmax), caption="counterfactual map (weights −α)", fmt="PNG")
st.markdown(
    f"The sum $\\sum_k \\alpha_k A^k$ ranges from **{lin.min():.3g}** to **{lin.max():.3g}**. The ReLU keeps only the cells that "
    f"argue *for* {name}; the negative cells argue *against* it. Flipping the weights (−α) gives the "
    "**counterfactual** map of the Grad-CAM paper — exactly what the ReLU removed: the regions whose removal would "
    f"raise the confidence in {name}. (Identical to the middle picture: "
    f"max difference {np.abs(cf - neg).max():.1e}.)")
if render.is_empty(pos):
    st.info(render.NO_EVIDENCE)

st.subheader("Step 4 — upsampling and overlay")
st.markdown(f"The {h}×{w} map is upsampled bilinearly to the photo ({ctx.image.size[0]}×{ctx.image.size[1]}, "
            "its aspect ratio kept), scaled to 0…1 by its maximum for display only, coloured, and blended with "
            f"the photo (alpha {ctx.alpha:.2f}).")
d1, d2, d3 = st.columns(3)
show(d1, small(pos), caption=f"{h}×{w} map", fmt="PNG")
show(d2, render.heatmap(pos, base.shape[1], base.shape[0], ctx.colormap), caption="upsampled", fmt="PNG")
show(d3, render.overlay(base, pos, ctx.alpha, ctx.colormap), caption="overlay")

st.header("3 · The relatives: one idea each")


def cost(m) -> str:
    if m.on_pass is not None:
        return "free given the pass"
    return "passes of its own (a progress bar, once per view)" if m.extra_passes else "free: reads the classifier"


st.markdown("| method | family | idea | map | cost |\n|---|---|---|---|---|\n" + "\n".join(
    f"| **{m.title}** ({m.paper.split(',')[0]}) | {m.family} | {m.summary} | "
    f"{'at the model input' if m.layer == 'input' else 'at the model input, with the layer' if m.pixels else 'at the layer'} "
    f"| {cost(m)} |" for m in methods.REGISTRY.values()))
st.caption("At a layer that feeds global average pooling the gradient is the same in every cell, so HiResCAM and "
           "XGrad-CAM equal Grad-CAM there, and CAM equals Grad-CAM times h·w. They differ at earlier layers.")
st.markdown("**What each family measures.** " + " ".join(
    f"*{name}*: {what}." for name, what in maps.FAMILIES.items()) + " The families answer different questions, "
    "so they can disagree on the same photo; the Measure page checks which maps the model actually needs.")

guided_grad_cam(ctx, res, base)

st.header("5 · What the layer choice does")
st.markdown("Early layers see small patches and respond to edges and textures: fine maps, little meaning. Late "
            "layers see most of the photo and respond to object parts: coarse maps, semantic. Here is Grad-CAM of "
            f"*{name}* at every explainable layer of {engine.spec.title}, from the one cached pass:")
strip = list(engine.layers)
per_row = 6
for start in range(0, len(strip), per_row):
    cols = st.columns(per_row)
    for col, lname in zip(cols, strip[start:start + per_row]):
        cam = methods.gradcam(res.acts[lname], res.grads[lname])
        s = engine.layer_shape(lname)
        show(col, render.overlay(render.display_base(rgb, 200), cam, ctx.alpha, ctx.colormap),
                  caption=f"{lname} · {s[0]}×{s[1]}" + (" · empty" if render.is_empty(cam) else ""))

st.header("6 · Strengths and limits")
st.markdown("""
- **Strengths:** works on any CNN without retraining; class-specific; one backward pass; easy to read.
- **Coarse:** at the last layer a 224-pixel photo becomes 7×7 cells — a map cannot be sharper than its layer.
- **Saturation:** when a class is nearly certain, its gradient can be tiny and the map faint or empty (the logit,
  not the probability, is used here to soften this).
- **Not a proof of causality:** a heatmap shows what raised the score, not what the model *needs*. Check it by
  intervention — the Occlude page removes what the map points at and watches the score.
- **Method and layer matter:** different methods and layers can disagree; compare them on the Compare page.
""")

st.header("7 · The models")
if mine is not None:
    info = mine.info  # a file opened on the Train page brings its own: only a finite number is shown as one
    acc = info.get("val_accuracy") if isinstance(info.get("val_accuracy"), (int, float)) else None
    acc = acc if acc is not None and np.isfinite(acc) else None
    st.markdown(
        f"**★ {mine.title}** (yours) — {engine.spec.weights_source}"
        + (f", {str(info['mode'])[:120]}" if info.get("mode") else "") + ": " + ", ".join(mine.classes)
        + (f"; validation accuracy {acc:.1%} on {info.get('val_images', 0)} held-out images" if acc is not None else "")
        + ". Its head is global average pooling → dense over your classes, so CAM applies at its last layer. "
        "The zoo models below score ImageNet's 1000 classes.")
for spec in models.REGISTRY.values():
    with st.expander(f"{spec.title} — {spec.params_m:.1f} M parameters, input {spec.input_size}×{spec.input_size}"):
        st.markdown(
            f"- **Parameters:** {spec.params_m:.2f} M · **depth:** {spec.depth} layers with weights\n"
            f"- **Input:** {spec.input_size}×{spec.input_size}, preprocessing `{spec.preprocess_mode}`\n"
            f"- **Reported ImageNet top-1:** {spec.top1:.1f} %"
            + (f" (measured here: {spec.measured_top1:.1f} % on {spec.measured_on})" if spec.measured_top1 else "")
            + "\n"
            f"- **Weights:** {spec.weights_source} — licence {spec.licence}\n"
            f"- **Classifier head:** {'global average pooling → dense (CAM applies)' if spec.gap_dense else 'fully connected layers (CAM does not apply)'}\n"
            f"- **Explainable layers ({len(spec.layers)}, early → late):** " + ", ".join(f"`{n}`" for n in spec.layers))

st.header("8 · References")
papers = {m.url: m.paper for m in methods.REGISTRY.values()}  # a paper with two methods is listed once
st.markdown("\n".join(f"- {paper} — [{url.split('//')[1]}]({url})" for url, paper in papers.items()))
