"""AppTest of what a first-time student tripped over on Explain and in the sidebar (issue 22, items 1, 2, 6, 8
and 13): the class radio after an upload, top-k for a model with few classes, the photo's drop zone, an uploaded
photo on every page, and model names that fit the sidebar. The browser's side is in
tests/e2e/test_first_user_browser.py."""
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.imaging import images
from core.models import TrainedModel
from core.models.trained import HEAD_LOGITS

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
ASSETS = ROOT / "assets"


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def trained(classes=("dog", "bird"), title="Dogs or birds", seed=0) -> TrainedModel:
    """A head over the default backbone (random weights, seeded): a trained model without the training."""
    rng = np.random.default_rng(seed)
    n = len(classes)
    return TrainedModel(title=title, backbone="efficientnet_lite0", classes=tuple(classes), info={"mode": "head only"},
                        weights={HEAD_LOGITS: [rng.normal(0, 0.05, (1280, n)).astype(np.float32),
                                               np.zeros(n, np.float32)]})


def app_with(*models_, model=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    if models_:
        at.session_state["trained_models"] = {m.name: m for m in models_}
    if model is not None:
        at.session_state["model"] = model
    return ok(at.run())


def upload(at, file_name: str, data: bytes | None = None) -> AppTest:
    """Drop a file in the sidebar's photo drop zone (the one on screen now) and run."""
    data = (ASSETS / file_name).read_bytes() if data is None else data
    at.file_uploader(key=f"upload_{at.session_state['upload_nonce']}").set_value((file_name, data, "image/jpeg"))
    return ok(at.run())


def headline(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("Explaining"))


def class_radio(at):
    return next(r for r in at.radio if r.label == "Class to explain")


class Browser:
    """The option a browser shows selected in a radio, as Streamlit 1.67's frontend decides it
    (``useBasicWidgetState`` in its bundle): the text the server sets (``set_value``), else the text the browser
    already holds for that element id, else the ``default`` option; none when that text is not an option."""

    def __init__(self):
        self.held = {}  # element id → the option text the browser holds

    def shown(self, radio) -> str | None:
        p = radio.proto
        if p.set_value:
            text = p.raw_value
        else:
            text = self.held.get(radio.id, p.options[p.default])
        self.held[radio.id] = text
        return text if text in p.options else None


@pytest.mark.parametrize("kind", ["trained", "default"])
def test_after_an_upload_the_class_radio_shows_the_explained_class(kind):
    model = trained()
    at = app_with(model, model=model.name if kind == "trained" else None)
    browser = Browser()
    browser.shown(class_radio(at))
    for photo in ("dog.jpg", "cat.jpg", "cow.jpg", "coffee.jpg"):
        upload(at, photo)
        radio = class_radio(at)
        explained = at.session_state["class_index"]
        assert f"(class {explained}," in headline(at)
        assert radio.value == explained  # the server's value
        assert browser.shown(radio) == radio.options[radio.index], (photo, radio.options)  # and what is on screen
        assert radio.options[radio.index].startswith("#1 ")  # a new photo explains its top-1


def test_top_k_offers_at_most_the_models_classes_and_the_chart_says_the_real_k():
    two, three = trained(), trained(("mug", "cup", "glass"), "Mugs", seed=1)
    at = app_with(two, three, model=two.name)
    slider = at.slider(key="top_k")
    assert (slider.min, slider.max, slider.value) == (1, 2, 2)  # 5 asked, 2 classes
    assert "Top-2 predictions" in [h.value for h in at.subheader]
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert len(spec["layer"][0]["data"]["values"]) == 2 and spec["height"] == 34 * 2 + 30
    assert spec["autosize"]["type"] == "fit-x"  # the height is the bars' own, a row per class; the axis comes on top
    ok(at.selectbox(key="model").set_value(three.name).run())
    assert (at.slider(key="top_k").max, at.slider(key="top_k").value) == (3, 3)
    assert "Top-3 predictions" in [h.value for h in at.subheader]
    ok(at.selectbox(key="model").set_value("efficientnet_lite0").run())
    assert (at.slider(key="top_k").max, at.slider(key="top_k").value) == (10, 5)  # the person's 5 again
    assert "Top-5 predictions" in [h.value for h in at.subheader]
    ok(at.slider(key="top_k").set_value(8).run())
    ok(at.selectbox(key="model").set_value(two.name).run())
    assert at.slider(key="top_k").value == 2 and "Top-2 predictions" in [h.value for h in at.subheader]
    ok(at.selectbox(key="model").set_value("efficientnet_lite0").run())
    assert at.slider(key="top_k").value == 8


def test_the_drop_zone_is_for_the_photo_to_explain_and_a_page_can_leave_it_out():
    at = app_with()
    (zone,) = at.sidebar.get("file_uploader")
    assert "photo to explain" in zone.proto.label and not zone.proto.multiple_files
    assert "Train page" in zone.proto.help  # where training images go
    # a page that explains no photo of its own (Train) leaves the sample list and the drop zone out, and says why
    page = AppTest.from_string(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import streamlit as st\n"
        "from ui.sidebar import sidebar\n"
        "st.title('Train on your own classes')\n"
        "ctx = sidebar(watch_training=False, choose_photo=False)\n"
        "st.write(ctx.image.name)\n", default_timeout=300)
    ok(page.run())
    assert not page.sidebar.get("file_uploader") and "sample" not in [s.key for s in page.selectbox]
    (line,) = [c.value for c in page.sidebar.caption if "Training images" in c.value]
    assert "Cat and dog" in line and "\n" not in line


def test_an_uploaded_photo_follows_every_page_once_in_the_session_and_the_samples_are_one_click_away():
    at = app_with()
    upload(at, "dog.jpg")
    dog = images.pixel_hash(images.load_path(ASSETS / "dog.jpg").rgb)
    assert "class 235," in headline(at) and at.session_state["photo_key"] == dog  # the German shepherd
    assert "sample" not in at.query_params
    for page in ("occlude", "compare", "learn", "measure", "train", "explain"):
        ok(at.switch_page(f"app_pages/{page}.py").run())
        assert at.session_state["photo_key"] == dog, page
        assert at.session_state["class_index"] == 235, page
        assert "sample" not in at.query_params, page
        if page != "train":
            said = [i.value for i in at.sidebar.info]
            assert any("dog.jpg" in s for s in said), page  # every page says the upload is in use
            assert any("cannot carry" in c.value for c in at.sidebar.caption), page  # and that a link cannot
    ok(at.switch_page("app_pages/occlude.py").run())
    summary = next(m.value for m in at.markdown if "of the photo occluded" in m.value)
    assert summary.startswith("**German Shepherd Dog** (class 235)")

    # one uploaded photo per session, decoded: no file, no bytes, and the next upload replaces it
    ok(at.switch_page("app_pages/explain.py").run())
    upload(at, "cow.jpg")
    held = [v for v in at.session_state.values() if isinstance(v, images.LoadedImage)]
    assert [v.name for v in held] == ["cow.jpg"]
    assert not [v for v in at.session_state.values() if isinstance(v, (bytes, bytearray)) or hasattr(v, "getvalue")]
    assert at.file_uploader(key=f"upload_{at.session_state['upload_nonce']}").value is None  # an empty drop zone

    # a file that is not a photo: one line, and the photo before stays
    upload(at, "notes.jpg", b"not a photo at all")
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "notes.jpg" in errors[0] and "\n" not in errors[0]
    assert at.session_state["upload"].name == "cow.jpg" and at.session_state["class_index"] == 345  # the ox

    ok(at.button(key="upload_drop").click().run())  # back to the samples
    assert "upload" not in at.session_state and "class 285," in headline(at)
    assert at.query_params["sample"] == "cat_and_dog" and not at.sidebar.info
    upload(at, "dog.jpg")
    ok(at.selectbox(key="sample").set_value("Espresso cup").run())  # choosing a sample puts the upload aside too
    assert "upload" not in at.session_state and "class 967," in headline(at)


def test_model_names_fit_the_sidebar_and_the_help_names_each_in_full():
    from core import models
    from ui.sidebar import MODEL_TEXT_PX, model_texts, text_px

    # the estimate bounds what Chromium draws (measured at 14 px Source Sans; the browser test checks the real box)
    assert text_px("EfficientNet-Lite0 (offline default)") >= 194.1 and text_px("WWWWWWWWWW") >= 110.0
    long = trained(title="A model with a very long name for my mugs and cups")
    texts, help_ = model_texts({long.name: long})
    assert all(text_px(t) <= MODEL_TEXT_PX for t in texts.values()), texts
    assert texts[models.DEFAULT_MODEL] == "EfficientNet-Lite0"  # was "EfficientNet-Lite0 (offline default)", cut
    assert texts[long.name].startswith("★ A model with") and texts[long.name].endswith("… (trained)")
    for spec in models.REGISTRY.values():
        assert spec.title in help_
    assert long.title in help_
    at = app_with(long, model=long.name)
    model = at.selectbox(key="model")
    assert model.format_func(long.name) == texts[long.name] and long.title in model.help
