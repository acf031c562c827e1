"""AppTest of the Train page: classes from dropped files, head-only training beside the page, the model in the
sidebar, and the Explain page explaining it with the user's class names."""
import io
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.training.head import strength_text

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def pictures(kind: str, n: int, seed: int) -> list[tuple[str, bytes, str]]:
    """``n`` small pictures of two kinds a backbone tells apart: warm stripes or cool blobs, with noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y, x = np.mgrid[0:96, 0:128]
        if kind == "stripes":
            pat = (np.sin(x / (3 + i % 3) + rng.uniform(0, 6)) > 0)[..., None] * np.array([230, 120, 20])
        else:
            cy, cx = rng.uniform(20, 76), rng.uniform(20, 108)
            pat = (((y - cy) ** 2 + (x - cx) ** 2) < 400)[..., None] * np.array([20, 90, 230])
        rgb = np.clip(pat + rng.normal(0, 20, (96, 128, 3)) + 20, 0, 255).astype(np.uint8)
        out.append((f"{kind}_{i}.png", png(rgb), "image/png"))
    return out


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_make_classes_train_head_only_and_explain_it():
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    ok(at.switch_page("app_pages/train.py").run())
    assert at.title[0].value == "Train on your own classes"
    for name in ("orange stripes", "blue blobs"):
        at.text_input(key="train_new_class").set_value(name)
        ok(at.button(key="train_add_class").click().run())
    ok(at.text_input(key="train_new_class").set_value("   ").run())
    ok(at.button(key="train_add_class").click().run())
    assert [e.value for e in at.error] == ["A class needs a name."]  # one line, and the session goes on
    ds = at.session_state["train_ds"]
    assert list(ds.classes) == ["orange stripes", "blue blobs"]

    ok(at.selectbox(key="train_target").set_value("orange stripes").run())
    at.file_uploader(key="train_files_0").set_value(pictures("stripes", 6, 1) + [("notes.txt", b"hello", "text/plain")])
    ok(at.run())
    assert ds.counts() == {"orange stripes": 6, "blue blobs": 0}
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "notes.txt" in warnings[0] and "\n" not in warnings[0]
    assert any("Added 6 of 7 images" in s.value for s in at.success)
    assert at.session_state["train_files_nonce"] == 1  # a fresh uploader: the batch's bytes are let go

    ok(at.selectbox(key="train_target").set_value("blue blobs").run())
    ok(at.button(key="train_go").click().run())  # one class has no images yet: one sentence, nothing starts
    assert any("at least 2 images" in e.value for e in at.error) and "train_job" not in at.session_state
    at.file_uploader(key="train_files_1").set_value(pictures("blobs", 6, 2))
    ok(at.run())
    assert ds.counts() == {"orange stripes": 6, "blue blobs": 6}

    ok(at.text_input(key="train_title").set_value("Stripes or blobs").run())
    ok(at.button(key="train_go").click().run())
    job = at.session_state["train_job"]
    assert job.wait(120) and job.error is None, job.error
    ok(at.run())  # the page's fragment collects the finished job and draws the whole page again
    if not job.collected:
        ok(at.run())
    model = job.result.model
    assert model.classes == ("orange stripes", "blue blobs") and model.title == "Stripes or blobs"
    assert at.session_state["trained_models"][model.name] is model
    res = job.result
    assert res.history == [] and res.evaluation == "cross-validation" and res.head.folds == 5
    assert len(job.curve) == 6 and all(np.isfinite(r["loss"]) for r in job.curve)  # the search, seen as it ran
    acc = next(m for m in at.metric if m.label == "Cross-validated accuracy")
    assert acc.value == "100.0%"  # two kinds as different as can be, each picture judged by a fold that left it out
    judged = next(c.value for c in at.caption if c.value.startswith("**12 of 12** images right"))
    assert "5 fold models that did not see it" in judged and "76%–100%" in judged  # the 95 % (Wilson) interval on 12 images
    assert next(m for m in at.metric if m.label == "Strength λ").value == strength_text(res.head.l2)
    assert any(c.value.startswith("2 classes · 12 images") for c in at.caption)
    assert "★ Stripes or blobs (trained)" in at.selectbox(key="model").options

    at.file_uploader(key="train_model_up_0").set_value(("model.keras", b"not a model", "application/octet-stream"))
    ok(at.run())
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "model.keras" in errors[0] and "\n" not in errors[0]

    ok(at.button(key="train_explain").click().run())  # to the Explain page with the trained model chosen
    assert at.title[0].value == "Explain a prediction"
    head = next(m.value for m in at.markdown if m.value.startswith("Explaining"))
    assert "of Stripes or blobs" in head and ("**orange stripes**" in head or "**blue blobs**" in head)
    assert all("stripes" in o or "blobs" in o for o in at.radio[0].options)  # the class radio: the user's names
    assert "model" not in at.query_params and "class" not in at.query_params  # a link cannot carry it
    at.switch_page("app_pages/explain.py")  # AppTest stays on the page it was told (the browser follows the switch)
    ok(at.selectbox(key="method").set_value("cam").run())
    head = next(m.value for m in at.markdown if m.value.startswith("Explaining"))
    assert "with CAM." in head and not at.info  # GAP → Dense over the user's classes: CAM applies at the last layer
    ok(at.selectbox(key="model").set_value("efficientnet_lite0").run())
    head = next(m.value for m in at.markdown if m.value.startswith("Explaining"))
    assert "class 285" in head  # back on ImageNet's classes: the photo's top-1 again
    assert at.query_params["model"] == "efficientnet_lite0"

    # plant a shortcut: stamp the blobs, train again, and the page measures what the stamp does to the stripes
    at.switch_page("app_pages/train.py")
    ok(at.run())
    ok(at.checkbox(key="train_plant").check().run())
    ok(at.selectbox(key="train_stamp_cls").set_value("blue blobs").run())
    ok(at.slider(key="train_stamp_size").set_value(0.3).run())
    ok(at.button(key="train_go").click().run())
    job = at.session_state["train_job"]
    assert job.wait(120) and job.error is None, job.error
    ok(at.run())
    if not job.collected:
        ok(at.run())
    assert "5 · The shortcut it learned" in [h.value for h in at.header]
    model2, effect = at.session_state["train_shortcut"]
    assert model2 == job.result.model.name != model.name and len(at.session_state["trained_models"]) == 2
    stripes = [i for i in range(len(job.labels)) if job.labels[i] == 0]
    assert effect.n == len(stripes) == 6  # measured on every image of the other class, not a handful
    assert np.isfinite(effect.prob_stamped).all() and 0.05 < effect.area < 0.15
    shown = {m.label: m.value for m in at.metric}
    assert shown["Grad-CAM mass on the stamp"] == f"{effect.mass_ratio:.1f}× its area"
    assert shown["p(blue blobs) rises with the stamp"] == f"{effect.rise_count} of 6"  # a count beside every share
    assert shown["Predicted blue blobs with the stamp"] == f"{effect.flip_count} of 6"
    verdict = effect.verdict("blue blobs")
    assert f"on {effect.rise_count} of 6 images" in verdict
    assert any(v.value == verdict for v in list(at.info) + list(at.success))
    assert any("hard to tell apart" in m.value for m in at.markdown)


def test_a_model_saved_before_opens_in_a_fresh_session():
    """The opener is there before any training: a file downloaded in another session comes back into the sidebar."""
    from core.models import TrainedModel
    from core.models.trained import HEAD_LOGITS

    kernel = np.random.default_rng(3).normal(0, 0.05, (1280, 2)).astype(np.float32)
    saved = TrainedModel(title="Mugs", backbone="efficientnet_lite0", classes=("mine", "yours"),
                         weights={HEAD_LOGITS: [kernel, np.zeros(2, np.float32)]}).to_bytes()
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    ok(at.switch_page("app_pages/train.py").run())
    assert not any(h.value.startswith("4 ·") for h in at.header)  # nothing trained in this session
    at.file_uploader(key="train_model_up_0").set_value(("Mugs.keras", saved, "application/octet-stream"))
    ok(at.run())
    assert any(s.value.startswith("Opened Mugs (2 classes)") for s in at.success)
    assert "★ Mugs (trained)" in at.selectbox(key="model").options
