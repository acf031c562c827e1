"""Train: make classes (files, a ZIP, the webcam, a public dataset), train a head (or fine-tune) beside the page,
judge it with Grad-CAM on its mistakes, keep it, and watch a planted shortcut being learned."""
import functools

import pandas as pd
import streamlit as st

from core import models
from core.imaging import images
from core.models import trainable_backbones
from core.training import DatasetError, Stamp, TrainConfig, shortcut_effect, tfds_source
from core.training.data import MAX_IMAGES, THUMB_SIDE
from core.training.head import strength_text
from core.training.shortcut import CORNERS, PATTERNS
from ui import charts, intake, training
from ui.pictures import show
from ui.text import plural, short_name
from ui.resources import feature_cache, get_engine, get_trained_engine
from ui.sidebar import sidebar

SOURCES = ["Files", "ZIP of class folders", "Webcam", "Public dataset"]
GALLERY = 6  # wrong validation images shown
SHORTCUT_IMAGES = 200  # at most this many images of the other classes measure the stamp (a pass each)
MIN_SHORTCUT_IMAGES = 20  # fine-tuned: its held-out images of the other classes, when there are this many

st.title("Train on your own classes")  # before the sidebar: on screen while a cold server starts
ctx = sidebar(watch_training=False, choose_photo=False)  # the page follows the training itself, below
if ctx is None:
    st.stop()
if st.session_state.pop("train_goto_explain", False):
    st.switch_page("app_pages/explain.py")
ds = training.dataset()
training.show_messages()
with st.expander("Open a model saved here before"):  # in every session, not only after a training
    intake.model_file(st)

# ---------------------------------------------------------------------------------------------- 1 · classes
st.header("1 · Make classes")


c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
c1.text_input("New class name", key="train_new_class", max_chars=60, placeholder="e.g. my mug")
c2.button("Add class", key="train_add_class", on_click=training.add_class_from_input, width="stretch")

for name, examples in list(ds.classes.items()):
    row = st.columns([2, 5, 1], vertical_alignment="center")
    row[0].markdown(f"**{name}** · {plural(len(examples), 'image')}")
    thumbs = row[1].columns(6)
    for col, e in zip(thumbs, examples[-6:]):
        show(col, images.thumbnail(e.thumb, 96), width=72)
    row[2].button("Remove", key=f"train_rm_{name}", on_click=ds.remove_class, args=(name,))
if ds.classes:
    st.caption(f"{plural(len(ds.classes), 'class', 'classes')} · {plural(ds.size, 'image')} · "
               f"{ds.nbytes / 2**20:.1f} MB of thumbnails "
               f"(thumbnails of at most {THUMB_SIDE}×{THUMB_SIDE}; the uploads themselves are not kept).")
else:
    st.info("Type a name and add at least two classes, then add images to each.")

source = st.radio("Add images by", SOURCES, key="train_source", horizontal=True)
targets = list(ds.classes)
target = st.selectbox("…to the class", targets, key="train_target") if targets else None

if source == "Files" and target:
    intake.files(ds, target)
elif source == "ZIP of class folders":
    st.caption("One top-level folder per class (the `image_dataset_from_directory` layout); the folders' names "
               "become the classes.")
    intake.zip_of_classes(ds)
elif source == "Webcam" and target:
    intake.webcam(ds, target)
elif source == "Public dataset":
    name = st.selectbox("Dataset", list(tfds_source.SOURCES), key="train_tfds",
                        format_func={n: s.title for n, s in tfds_source.SOURCES.items()}.get)
    src = tfds_source.SOURCES[name]
    why = st.session_state.setdefault("train_tfds_why", {})
    if name not in why:  # asked once per session and dataset (it may probe the network for two seconds)
        why[name] = tfds_source.unavailable(name)
    st.caption(f"{src.about}; the first use downloads about {src.download_mb:.0f} MB.")
    if why[name]:
        st.info(why[name])
    else:
        d1, d2 = st.columns(2)
        per = d1.select_slider("Images per class", [10, 20, 50, 100, 200], value=50, key="train_tfds_per")
        n_cls = d2.slider("Breeds (the first ones)", 2, 20, 3, key="train_tfds_n") if src.classes > 2 else 2
        room = (MAX_IMAGES - ds.size) // n_cls  # the dataset's budget: ask for no more than fits
        if room < per:
            st.caption(f"The dataset keeps at most {MAX_IMAGES:,} images; {room} of each class fit now.")
            per = room
        if st.button(f"Add {per} images of each of {n_cls} classes", key="train_tfds_go", disabled=per < 1):
            bar = st.progress(0.0, text=f"Opening {src.title}…")
            warns = []
            try:
                got = tfds_source.load(name, per, n_cls, progress=lambda f, t: bar.progress(f, text=t),
                                       warn=warns.append)
                training.tell([f"Added {ds.merge(got, warn=warns.append)} images in {len(got.classes)} classes "
                               f"from {src.title}."], "success")
            except DatasetError as exc:
                training.tell([exc], "error")
                why.pop(name, None)
            training.tell(warns)
            st.rerun()
elif not target:
    st.caption("Add a class first.")

# ---------------------------------------------------------------------------------------------- 2 · train
st.header("2 · Train")
ready = [n for n in trainable_backbones() if models.REGISTRY[n].weights_cached()]
b1, b2, b3 = st.columns(3)
backbone = b1.selectbox("Backbone", ready, index=ready.index(models.DEFAULT_MODEL) if models.DEFAULT_MODEL in ready else 0,
                        key="train_backbone", format_func={n: models.REGISTRY[n].title for n in ready}.get,
                        help="Zoo models ending in global average pooling → Dense whose weights are on this machine.")
mode = b2.radio("Mode", ["Head only", "Fine-tune the last blocks"], key="train_mode",
                help="Head only: features once per image, then a softmax head. Fine-tuning then also moves the "
                     "backbone's last blocks (flip and crop augmentation, a lower rate).")
blocks = b3.number_input("Blocks to fine-tune", 1, 6, 2, key="train_blocks", disabled=mode == "Head only")
e1, e2, e3 = st.columns(3)
ft_epochs = e1.slider("Fine-tuning epochs", 1, 20, 3, key="train_ft_epochs", disabled=mode == "Head only",
                      help="Early stopping on the held-out images may end sooner.")
val_split = e2.slider("Held out to judge fine-tuning", 0.1, 0.5, 0.2, 0.05, key="train_val", disabled=mode == "Head only",
                      help="With fine-tuning, this share of each class (stratified, seeded) is held out: training stops "
                           "early on it and the accuracy below is measured on it. Head only holds nothing out: "
                           "cross-validation judges the head on every image.")
seed = e3.number_input("Seed", 0, 10_000, 0, key="train_seed", help="The folds, the split and the augmentation.")
st.caption(training.MODES_TEXT)
title = st.text_input("Name for the model", "My model", key="train_title", max_chars=60).strip() or "My model"
with st.expander("Plant a shortcut (teaching)"):
    plant = st.checkbox("Stamp every image of one class with a mark", key="train_plant")
    s1, s2, s3, s4 = st.columns(4)
    stamp_cls = s1.selectbox("Stamped class", targets, key="train_stamp_cls", disabled=not plant) if targets else None
    size = s2.slider("Stamp side (share of the image side)", 0.05, 0.5, 0.22, 0.01, key="train_stamp_size")
    pattern = s3.selectbox("Pattern", PATTERNS, key="train_stamp_pattern")
    corner = s4.selectbox("Corner", CORNERS, key="train_stamp_corner")
    st.caption("The stamp goes on the class's training and validation images alike, as a dataset artefact would; "
               "after training, section 5 shows what it does to the other classes.")

job = st.session_state.get("train_job")
running = job is not None and job.running
if st.button("Train", key="train_go", type="primary", disabled=running):
    try:
        ds.check()
        stamp = Stamp(size, pattern, corner) if plant and stamp_cls else None
        cfg = TrainConfig(val_split=float(val_split), seed=int(seed),
                          fine_tune_blocks=int(blocks) if mode != "Head only" else 0, fine_tune_epochs=int(ft_epochs))
        engine = get_engine(backbone)
        stamp_index = list(ds.classes).index(stamp_cls) if stamp else None
        job = training.TrainJob(engine, ds, cfg, title, feature_cache(), stamp, stamp_index).start()
        st.session_state["train_job"] = job
        running = True
    except (DatasetError, ValueError, models.WeightsUnavailable) as exc:
        st.error(str(exc))


def progress_panel():
    job = st.session_state.get("train_job")
    if job is None:
        return
    st.progress(job.fraction, text=job.text)
    curve = job.result.head.curve if job.result is not None and job.result.head is not None else job.curve
    if curve:
        st.altair_chart(charts.regularisation_chart(curve))
        st.caption("The head is a logistic regression on the backbone's features. Each strength λ of its L2 "
                   "penalty is tried on k folds: trained on the others, judged on the images each fold left out. "
                   "Strong λ keeps the weights small (a simple model that may underfit); weak λ lets them fit the "
                   "training images closely (which may not carry over). The one whose left-out images are predicted "
                   "best (lowest loss) is chosen, and the head is fitted again on every image with it.")
    if job.history:
        st.altair_chart(charts.history_chart(job.history))
    if job.running:
        st.button("Stop", key="train_stop", on_click=job.stop)
    elif not job.collected:  # finished since the last look: keep the model, then draw the whole page again
        training.collect()
        st.rerun()


st.fragment(progress_panel, run_every=1.0 if running else None)()
if job is None or job.running or not job.collected:
    st.stop()
if job.error:
    st.warning(job.error)
if stopped := training.stopped_text(job):
    st.info(stopped)
if job.result is None or job.result.model is None:
    st.stop()

# ---------------------------------------------------------------------------------------------- 3 · judge
res, model = job.result, job.result.model
engine = get_trained_engine(model)
st.header("3 · Judge it")
m1, m2, m3, m4 = st.columns(4)
acc, interval = res.val_accuracy, res.interval()
cv = res.evaluation == "cross-validation"
m1.metric("Cross-validated accuracy" if cv else "Held-out accuracy", "—" if acc is None else f"{acc:.1%}",
          help=None if acc is None else f"{res.val_right} of {len(res.val_idx)} images right ({res.describe()})")
m2.metric("Images", f"{len(res.labels)}", help=f"{len(res.train_idx)} fitted on" + ("" if cv else f", {len(res.val_idx)} held out"))
m3.metric("Strength λ", strength_text(res.head.l2), help="The L2 strength cross-validation chose for the head.")
m4.metric("Time", f"{res.features_seconds + res.train_seconds:.1f} s",
          help=f"{res.features_seconds:.1f} s features · {res.train_seconds:.1f} s fitting")
if acc is not None:
    judged = ("each predicted by the one of the " f"{res.head.folds} fold models that did not see it" if cv
              else "held out of training")
    st.caption(f"**{res.val_right} of {len(res.val_idx)}** images right, {judged}; on this many images the 95 % "
               f"interval of the accuracy is {interval[0]:.0%}–{interval[1]:.0%}"
               + (" — too few images to tell small differences apart." if interval[1] - interval[0] > 0.2 else "."))
st.caption(f"{model.title}: {model.info.get('mode', '')} on {models.REGISTRY[model.backbone].title}, "
           f"{plural(len(model.classes), 'class', 'classes')}; {res.features_seconds:.1f} s features, "
           f"{res.train_seconds:.1f} s fitting" + (f", {plural(len(res.history), 'fine-tuning epoch')}" if res.history else "")
           + (" (stopped)" if res.stopped else "") + ".")
if len(res.val_idx):
    c1, c2 = st.columns([2, 3])
    c1.subheader("Confusion matrix")
    c1.altair_chart(charts.confusion_chart(res.confusion(), res.classes))
    c2.subheader("What it got wrong, and why")
    wrong = res.wrong()
    if not wrong:
        c2.success("Every image is classified right by the model that did not see it." if cv
                   else "Every held-out image is classified right.")
    else:
        c2.caption(f"{len(wrong)} of {len(res.val_idx)} {'images (each judged by the fold model that left it out)' if cv else 'held-out images'} "
                   f"are wrong; the first {min(GALLERY, len(wrong))} with Grad-CAM (last layer) of the final model's "
                   "predicted class and of the true class.")
        for i, t, p in wrong[:GALLERY]:
            g = c2.columns(3)
            thumb = job.thumbs[i]
            over_p, prob_p, _ = training.gradcam_overlay(engine, thumb, p, ctx.alpha, ctx.colormap)
            over_t, prob_t, _ = training.gradcam_overlay(engine, thumb, t, ctx.alpha, ctx.colormap)
            show(g[0], thumb, caption=short_name(job.sources[i]))
            show(g[1], over_p, caption=f"predicted: {res.classes[p]} · {prob_p:.0%}")
            show(g[2], over_t, caption=f"true: {res.classes[t]} · {prob_t:.0%}")

# ---------------------------------------------------------------------------------------------- 4 · keep
st.header("4 · Keep it")
st.markdown(f"**{model.title}** is in the sidebar's model list as ★ {model.title} (trained): every page explains "
            "it with your class names. A downloaded file opens again under *Open a model saved here before*, at "
            "the top of this page.")
st.button("Explain it now", key="train_explain", type="primary",
          on_click=functools.partial(st.session_state.update, model=model.name, train_goto_explain=True))
st.download_button("Download the model (.keras)", model.to_bytes,  # saved only when clicked
                   file_name=f"{''.join(c if c.isalnum() else '_' for c in model.title)}.keras",
                   mime="application/octet-stream", key="train_download")

# ---------------------------------------------------------------------------------------------- 5 · shortcut
if job.stamp is None:
    st.stop()
st.header("5 · The shortcut it learned")
s = job.stamp_class
held = [i for i in res.val_idx if job.labels[i] != s] if not cv else []  # fine-tuned: images it never saw, if enough
others = held if len(held) >= MIN_SHORTCUT_IMAGES else [i for i in range(len(job.labels)) if job.labels[i] != s]
others = others[:SHORTCUT_IMAGES]
memo = st.session_state.get("train_shortcut")
if memo is None or memo[0] != model.name:
    bar = st.progress(0.0, text=f"Stamping {plural(len(others), 'image')} of the other classes…")
    effect = shortcut_effect(engine, [job.plain[i] for i in others], job.stamp, s,
                             progress=lambda f: bar.progress(f, text=f"Stamping images of the other classes… {f:.0%}"))
    bar.empty()
    st.session_state["train_shortcut"] = memo = (model.name, effect)
effect = memo[1]
target_name = res.classes[s]
n_eff = max(effect.n, 1)
f1, f2, f3 = st.columns(3)
f1.metric(f"p({target_name}) rises with the stamp", f"{effect.rise_count} of {effect.n}",
          help=f"{effect.rise_count / n_eff:.0%} of the images of the other classes measured")
f2.metric(f"Predicted {target_name} with the stamp", f"{effect.flip_count} of {effect.n}",
          help=f"{effect.flip_count / n_eff:.0%} of them")
f3.metric("Grad-CAM mass on the stamp", f"{effect.mass_ratio:.1f}× its area",
          help=f"the stamp covers {effect.area:.1%} of the image; 1× would be no special attention")
say = st.success if effect.meaningful() else st.info
say(effect.verdict(target_name))
st.caption(f"Measured on {plural(effect.n, 'image')} of the other classes"
           + (" held out of training" if others is held else ", every one this dataset has" if len(others) < SHORTCUT_IMAGES
              else f" (the first {SHORTCUT_IMAGES})") + ".")
st.markdown("A model learns the easiest cue that separates its classes, and a validation split stamped like the "
            "training images cannot tell you it did: Grad-CAM lighting up the stamp (or a watermark, a ruler, the "
            "grass under the cow) is how you catch a model that is right for the wrong reason before anyone trusts "
            "it — the most important use of Grad-CAM. The effect is strongest when the real classes are hard to "
            "tell apart, because then the stamp is the easy cue.")
rows = pd.DataFrame({"image": [short_name(job.sources[i], 32) for i in others],
                     f"p({target_name}) plain": effect.prob_plain, f"p({target_name}) stamped": effect.prob_stamped})
for n, i in enumerate(others[:3]):
    g = st.columns(4)
    plain, stamped = job.plain[i], job.stamp.apply(job.plain[i])
    over_a, pa, top_a = training.gradcam_overlay(engine, plain, s, ctx.alpha, ctx.colormap)
    over_b, pb, top_b = training.gradcam_overlay(engine, stamped, s, ctx.alpha, ctx.colormap)
    pred_a, pred_b = res.classes[top_a], res.classes[top_b]
    show(g[0], plain, caption=f"{res.classes[job.labels[i]]} · predicted {pred_a}")
    show(g[1], over_a, caption=f"Grad-CAM of {target_name} · p = {pa:.0%}")
    show(g[2], stamped, caption=f"stamped · predicted {pred_b}")
    show(g[3], over_b, caption=f"Grad-CAM of {target_name} · p = {pb:.0%}")
with st.expander("Every measured image"):
    st.dataframe(rows.style.format({c: "{:.1%}" for c in rows.columns[1:]}), hide_index=True)
