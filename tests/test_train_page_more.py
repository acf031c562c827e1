"""AppTest of the Train page's other paths: the Stop button (during the feature pass, and during fine-tuning,
where the best epoch so far is kept), fine-tuning from the page, a training that ends while the user is on
another page, and the other pages explaining a trained model with the user's class names."""
import time
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.models import TrainedModel
from core.models.trained import HEAD_LOGITS
from core.training import Dataset, FeatureCache, TrainConfig
from core.training.data import example_from_rgb
from core.training.features import compute_features

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def dataset(per_class: int, seed: int) -> Dataset:
    """Two classes a backbone tells apart (warm stripes, cool blobs), with noise; a fresh seed gives pixels no
    other test has cached features of."""
    rng = np.random.default_rng(seed)
    ds = Dataset()
    y, x = np.mgrid[0:96, 0:128]
    for i in range(per_class):
        stripes = (np.sin(x / (3 + i % 3) + rng.uniform(0, 6)) > 0)[..., None] * np.array([230, 120, 20])
        cy, cx = rng.uniform(20, 76), rng.uniform(20, 108)
        blobs = (((y - cy) ** 2 + (x - cx) ** 2) < 400)[..., None] * np.array([20, 90, 230])
        for name, pat in (("orange stripes", stripes), ("blue blobs", blobs)):
            rgb = np.clip(pat + rng.normal(0, 20, (96, 128, 3)) + 20, 0, 255).astype(np.uint8)
            ds.add(name, example_from_rgb(rgb, f"{name} {i}.png"))
    return ds


def train_page(ds: Dataset) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["train_ds"] = ds
    ok(at.run())
    ok(at.switch_page("app_pages/train.py").run())
    return at


def until(condition, seconds: float = 180.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def finish(at, job) -> None:
    assert job.wait(240), "the training thread did not end"
    ok(at.run())  # the sidebar keeps the finished job's model, and the page draws its results


def texts(at) -> list[str]:
    return [str(e.value) for kind in (at.markdown, at.caption, at.info, at.warning, at.error, at.success)
            for e in kind]


def test_stop_while_computing_features_ends_the_thread_and_says_no_model_was_made():
    at = train_page(dataset(150, seed=101))  # 300 images: ten batches of features
    ok(at.button(key="train_go").click().run())
    job = at.session_state["train_job"]
    until(lambda: job.fraction > 0 or not job.running)  # the first batch of features is done
    assert job.running and not job.history
    ok(at.button(key="train_stop").click().run())
    assert job.wait(60), "the training thread did not end"
    ok(at.run())
    assert job.result is None and job.collected and not at.session_state["trained_models"]
    assert [w.value for w in at.warning] == [
        "Stopped while computing features; the features computed so far are kept for the next run."]
    assert "3 · Judge it" not in [h.value for h in at.header]
    assert not any(o.startswith("★") for o in at.selectbox(key="model").options)
    assert not at.button(key="train_go").disabled  # the page can start again


def test_fine_tune_from_the_page_and_stop_it_keeping_the_best_epoch():
    at = train_page(dataset(5, seed=202))
    ok(at.radio(key="train_mode").set_value("Fine-tune the last blocks").run())
    assert any("takes seconds" in t and "takes minutes" in t and "unlike everyday photos" in t for t in texts(at))
    ok(at.number_input(key="train_blocks").set_value(1).run())
    ok(at.slider(key="train_ft_epochs").set_value(1).run())
    ok(at.text_input(key="train_title").set_value("Tuned").run())
    ok(at.button(key="train_go").click().run())
    job = at.session_state["train_job"]
    finish(at, job)
    assert job.error is None, job.error
    res, model = job.result, job.result.model
    assert not res.stopped and [r["phase"] for r in res.history].count("fine-tune") == 1
    assert model.info["mode"].startswith("fine-tuned the last 1 blocks") and not model.head_only
    assert "★ Tuned (trained)" in at.selectbox(key="model").options
    assert at.session_state["trained_models"][model.name] is model
    assert "fine-tuned the last 1 blocks" in " ".join(texts(at)) and not at.info  # not stopped: no such line
    acc = next(m for m in at.metric if m.label == "Held-out accuracy")
    assert acc.value.endswith("%") and "nan" not in acc.value.lower()
    assert res.evaluation == "held-out" and len(res.val_idx) == 2  # 20 % of each class's 5, at least one
    assert res.head is not None and model.info["l2"] == res.head.l2  # fine-tuning started from the searched head

    # again with many fine-tuning epochs, and Stop once the first of them has ended
    ok(at.slider(key="train_ft_epochs").set_value(20).run())
    ok(at.text_input(key="train_title").set_value("Stopped early").run())
    ok(at.button(key="train_go").click().run())
    job = at.session_state["train_job"]
    until(lambda: any(r["phase"] == "fine-tune" for r in job.history) or not job.running)
    assert job.running
    ok(at.button(key="train_stop").click().run())
    finish(at, job)
    res, model = job.result, job.result.model
    assert job.error is None and res.stopped and model is not None
    tuned = [r for r in res.history if r["phase"] == "fine-tune"]
    assert 1 <= len(tuned) < 20
    best = min(tuned, key=lambda r: r["val_loss"])
    assert [i.value for i in at.info] == [
        f"Stopped by you after epoch {res.history[-1]['epoch']}: the model keeps epoch {best['epoch']}, the best so "
        "far (lowest validation loss)."]
    n = len(res.history)
    assert any(f"{n} fine-tuning epoch{'s' * (n != 1)} (stopped)." in c.value for c in at.caption)
    assert "★ Stopped early (trained)" in at.selectbox(key="model").options
    # the kept model is the best epoch's: its validation loss is that epoch's
    p = res.val_probs[np.arange(len(res.val_idx)), res.labels[res.val_idx]]
    assert abs(float(-np.log(p).mean()) - best["val_loss"]) < 1e-3


def test_a_training_that_ends_on_another_page_joins_the_model_list_there():
    at = train_page(dataset(100, seed=303))
    ok(at.text_input(key="train_title").set_value("Made elsewhere").run())
    ok(at.button(key="train_go").click().run())
    job = at.session_state["train_job"]
    assert not job.collected
    ok(at.switch_page("app_pages/explain.py").run())
    assert at.title[0].value == "Explain a prediction"
    assert job.running  # 200 images of features take seconds: the sidebar follows the training
    bar = at.sidebar.get("progress")
    assert bar and bar[0].proto.text.startswith("Training Made elsewhere:")
    assert job.wait(240)
    ok(at.run())  # any next run of any page: the sidebar keeps the model
    assert job.collected and job.error is None
    model = job.result.model
    assert at.session_state["trained_models"][model.name] is model
    assert "★ Made elsewhere (trained)" in at.selectbox(key="model").options
    assert [t.value for t in at.toast] == ["★ Made elsewhere is trained: it is in the model list."]
    assert not at.sidebar.get("progress")  # nothing left to follow
    ok(at.run())
    assert not at.toast and len(at.session_state["trained_models"]) == 1  # kept once, said once


def test_occlude_compare_and_learn_name_a_trained_models_classes():
    rng = np.random.default_rng(0)
    classes = ("my mug", "your mug", "no mug")
    model = TrainedModel(title="Mugs", backbone="efficientnet_lite0", classes=classes, info={"mode": "head only"},
                         weights={HEAD_LOGITS: [rng.normal(0, 0.05, (1280, 3)).astype(np.float32),
                                                np.zeros(3, np.float32)]})
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["trained_models"] = {model.name: model}
    at.session_state["model"] = model.name
    ok(at.run())
    radio = at.radio(key=[r.key for r in at.radio if r.label == "Class to explain"][0])
    assert len(radio.options) == 3 and all(any(c in o for c in classes) for o in radio.options)
    assert not [s for s in at.selectbox if s.label.startswith("…or any of its")]  # all 3 are in the radio already
    shown = radio.options[0].split(" · ")[0].removeprefix("#1 ")  # the top-1 among the user's classes
    assert shown in classes

    ok(at.switch_page("app_pages/occlude.py").run())
    head = next(m.value for m in at.markdown if "of the photo occluded" in m.value)
    assert head.startswith(f"**{shown}** (class {classes.index(shown)})")
    ok(at.slider(key="top_k").set_value(3).run())
    rows = list(at.table[0].value.index)  # how the top-k moved: the user's classes, as "name [index]"
    assert sorted(rows) == sorted(f"{c} [{i}]" for i, c in enumerate(classes))

    ok(at.switch_page("app_pages/compare.py").run())
    head = next(m.value for m in at.markdown if m.value.startswith("Explaining"))
    assert head.startswith(f"Explaining **{shown}** (class {classes.index(shown)})")
    assert any("CAM applies" in c.value for c in at.caption)
    ok(at.radio(key="cmp_across").set_value("models").run())
    assert any("your own classes" in i.value for i in at.info)

    ok(at.switch_page("app_pages/learn.py").run())
    text = " ".join(m.value for m in at.markdown)
    assert f"The model says **{shown}**" in text
    assert "knows only your 3 classes (my mug, your mug, no mug)" in text
    assert "**★ Mugs** (yours)" in text and "head only: my mug, your mug, no mug" in text
    assert "nan" not in text.lower() and "Traceback" not in text


def test_the_sidebars_settings_survive_a_page_switch():
    """Every page draws the sidebar's widgets anew (another page, another widget for Streamlit): the user's
    opacity, colormap, top-k and method must follow them, not fall back to the widgets' first values."""
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    ok(at.slider(key="alpha").set_value(0.7).run())
    ok(at.selectbox(key="colormap").set_value("viridis").run())
    ok(at.slider(key="top_k").set_value(3).run())
    ok(at.selectbox(key="method").set_value("gradcampp").run())
    for page in ("occlude", "compare", "learn", "train"):
        ok(at.switch_page(f"app_pages/{page}.py").run())
        assert (at.slider(key="alpha").value, at.selectbox(key="colormap").value, at.slider(key="top_k").value,
                at.selectbox(key="method").value) == (0.7, "viridis", 3, "gradcampp"), page
    ok(at.switch_page("app_pages/compare.py").run())
    assert any("colormap (viridis) and alpha (0.70)" in m.value for m in at.markdown)


def test_a_stop_before_the_search_tries_a_strength_makes_no_model(lite_engine):
    """Features all cached, Stop already pressed: the head's search stops before its first solve, and nothing
    becomes a model."""
    from ui.training import TrainJob

    ds = dataset(3, seed=404)
    cache = FeatureCache()
    compute_features(lite_engine, ds.arrays()[0], cache)
    job = TrainJob(lite_engine, ds, TrainConfig(), "Never trained", cache)
    job.stop()
    assert job.start().wait(60)
    assert job.result is not None and job.result.stopped and not job.result.history
    assert job.result.head is None and not job.curve
    assert job.result.model is None and job.error == "Stopped before anything was fitted; nothing was trained."


def test_a_process_that_ends_during_a_training_stops_it_and_exits_cleanly(tmp_path):
    """The training's thread is not a daemon (one ended by Python's exit inside TensorFlow aborts the process):
    a process whose main thread ends meanwhile stops the training at its next batch and exits with status 0."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import atexit, sys, time
        from core import models
        from core.engine import Engine
        from core.training import FeatureCache, TrainConfig
        from tests.test_train_page_more import dataset
        from ui.training import TrainJob

        spec = models.get_spec("efficientnet_lite0")
        engine = Engine(spec, *models.load_inference(spec.name))
        job = TrainJob(engine, dataset(40, seed=505), TrainConfig(), "Ends with the process", FeatureCache()).start()
        while job.fraction == 0:
            time.sleep(0.01)
        print("training", flush=True)
        atexit.register(lambda: print(job.text, job.running, job.error, flush=True))  # after the thread ended
        sys.exit(0)  # the main thread ends while the features are being computed
    """)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["training", "Stopped False Stopped while computing features; the features "
                                        "computed so far are kept for the next run."]
    assert time.monotonic() - start < 120
