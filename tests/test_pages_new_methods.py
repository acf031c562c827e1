"""AppTest of the pages with methods whose map is at the model input (issue 25): Explain, Compare and Learn offer
every registered method from its fields alone.

A small method registered by the test (:data:`FAKE`: ignores the layer, a map at the input's resolution, passes of
its own with progress, a number and a named choice) checks the generic parts: the layer control says it is
ignored, the map is drawn at the photo's size and aspect with its colours where the map puts them, its reading
line is under it, the progress reaches 1, and a redraw (alpha, colormap, top-k, the ignored layer, Compare's rows)
never runs it again while a new option or class does. The real methods (guided backpropagation and the others) on
the sample photo are in the slow tests at the end.
"""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.cam import methods
from core.cam.interface import Method, Tunable
from core.imaging import render

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
READING = "Fake reading: the left half of the top argues against the class, the right half for it."
CALLS: list[dict] = []  # one per run of the fake method: its layer, options, class and the fractions it reported


def _fake(ctx) -> np.ndarray:
    """A signed map at the input: −1…+1 from left to right in the top half, zero in the bottom half."""
    seen = {"layer": ctx.layer, "options": dict(ctx.options), "class": ctx.result.class_index, "progress": []}
    CALLS.append(seen)
    for f in (0.25, 0.5, 1.0):
        ctx.progress(f)
        seen["progress"].append(f)
    ctx.passes = 3
    side = ctx.engine.spec.input_size
    out = np.zeros((side, side))
    out[: side // 2] = np.linspace(-1.0, 1.0, side)[None, :] * ctx.options["draws"]
    return out


FAKE = Method("fakeinput", "Fake input map", "a test's map at the model input", "Nobody, A test map, 2025",
              "https://example.org/fake", fn=_fake, needs_model=True, extra_passes=True, live=False, progress=True,
              layer="input", pixels=True, signed=True, family="perturbation", reading=READING,
              tunables=(Tunable("draws", "Fake draws", "How many.", "draws", 4, 4, 1, 64, 1),
                        Tunable("base", "Fake baseline", "Which image.", "baseline", "black", "black",
                                choices=("black", "blur"))))


@pytest.fixture
def fake(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(methods.EVERY, FAKE.name, FAKE)
    monkeypatch.setitem(methods.REGISTRY, FAKE.name, FAKE)
    yield FAKE
    CALLS.clear()


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def headline(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("Explaining"))


def pictures(at) -> dict:
    """The page's pictures by the first part of their caption: (height, width, 3) arrays."""
    import base64
    import io

    out = {}
    for element in at.image:
        for url, caption in zip(element.value, element.captions):
            data = base64.b64decode(url.split(",", 1)[1])
            out[caption.split(" · ")[0]] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)
    return out


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_a_square_input_map_is_drawn_on_a_wide_photo_where_it_points_and_signed_maps_diverge():
    side = 224
    hot = np.zeros((side, side))
    hot[: side // 4, -side // 4:] = 1.0  # the model input's top-right corner
    photo = np.full((120, 300, 3), 100, np.uint8)  # wide: the model squashed it into its square
    heat = render.heatmap(hot, 300, 120, "gray")
    assert heat.shape == (120, 300, 3)
    assert heat[5, 290, 0] == 255 and heat[5, 10, 0] == 0 and heat[110, 290, 0] == 0
    over = render.overlay(photo, hot, 0.5, "gray")
    assert over[5, 290, 0] == 178 and over[110, 10, 0] == 50  # (1 − α)·photo + α·heat, at the photo's size
    ramp = np.tile(np.linspace(-2.0, 2.0, side), (side, 1))
    unit = render.to_unit(ramp, signed=True)
    assert unit[0, 0] == 0.0 and unit[0, -1] == 1.0 and abs(unit[0, side // 2] - 0.5) < 0.01
    assert np.all(render.to_unit(np.zeros((4, 4)), signed=True) == 0.5)  # nothing either way: the middle
    spiky = np.ones((side, side))
    spiky[0, 0] = 1000.0  # one pixel's gradient would darken all the others
    assert render.pixel_scale(spiky) == 1.0 and render.pixel_scale(np.zeros((4, 4))) is None


def test_an_input_map_on_explain_is_drawn_at_the_photo_and_computed_once_per_view(fake):
    at = ok(AppTest.from_file(APP, default_timeout=300).run())
    at.selectbox(key="method").set_value(FAKE.name)
    ok(at.run())
    assert "at the model input (224×224)" in headline(at) and "with Fake input map." in headline(at)
    assert any("ignores the layer" in c.value for c in at.sidebar.caption)
    assert READING in captions(at)
    assert len(CALLS) == 1 and CALLS[0]["layer"] == "input" and CALLS[0]["progress"][-1] == 1.0
    assert CALLS[0]["options"] == {"draws": 4, "base": "black"}
    pics = pictures(at)
    raw_caption = next(c for e in at.image for c in e.captions if c.startswith("Raw map"))
    assert "224×224 at the model input's resolution" in raw_caption
    photo, raw, over = pics["Original"], pics["Raw map"], pics["Fake input map overlay"]
    own_w, own_h = Image.open(ROOT / "assets" / "cat_and_dog.jpg").size  # the photo's aspect, not the model's square
    assert raw.shape == over.shape == photo.shape and photo.shape[1] / photo.shape[0] == pytest.approx(own_w / own_h, 0.01)
    h, w = raw.shape[:2]
    jet = render.lut("jet").astype(np.int16)
    # the map's own places at the photo's size: top left its most negative (the colormap's bottom), top right its
    # most positive (the top), the bottom half zero (the middle)
    for (y, x), level in (((h // 8, 2), 0), ((h // 8, w - 3), 255), ((h * 7 // 8, w // 2), 128)):
        assert np.abs(raw[y, x] - jet[level]).max() <= 12, (y, x, raw[y, x], jet[level])

    for change in (lambda: at.slider(key="alpha").set_value(0.7), lambda: at.selectbox(key="colormap").set_value(
            "viridis"), lambda: at.slider(key="top_k").set_value(3),
            lambda: at.select_slider(key="layer_efficientnet_lite0").set_value("block5c_add")):
        change()
        ok(at.run())
    assert len(CALLS) == 1  # alpha, colormap, top-k and the layer it ignores: redraws only
    assert "at the model input (224×224)" in headline(at)
    viridis = render.lut("viridis").astype(np.int16)
    assert np.abs(pictures(at)["Raw map"][h // 8, w - 3] - viridis[255]).max() <= 12  # the new colormap, drawn

    at.number_input(key="exp_draws").set_value(8)
    ok(at.run())
    at.selectbox(key="exp_base").set_value("blur")
    ok(at.run())
    assert [c["options"] for c in CALLS[1:]] == [{"draws": 8, "base": "black"}, {"draws": 8, "base": "blur"}]
    radio = next(r for r in at.radio if r.label == "Class to explain")
    radio.set_value(235)
    ok(at.run())
    assert len(CALLS) == 4 and CALLS[-1]["class"] == 235 and "class 235" in headline(at)
    at.selectbox(key="method").set_value("gradcam")
    ok(at.run())
    assert not any("ignores the layer" in c.value for c in at.sidebar.caption) and "at layer `block5c_add`" in headline(at)


def test_compare_computes_an_input_map_once_and_shows_it_in_the_first_row(fake):
    at = ok(AppTest.from_file(APP, default_timeout=300).run())
    at.switch_page("app_pages/compare.py")
    ok(at.run())
    at.multiselect(key="cmp_methods").set_value(["gradcam", FAKE.name])
    ok(at.run())
    rows = at.multiselect(key="cmp_layers_efficientnet_lite0").value
    assert len(rows) == 3 and len(CALLS) == 1
    assert sum(c == "Fake input map ignores the layer: its map is in the first row." for c in captions(at)) == 2
    assert READING in captions(at)
    assert sum(len(e.value) for e in at.image) == len(rows) + 1  # Grad-CAM per row, the input map once
    assert at.number_input(key="cmp_draws").value == 4 and at.selectbox(key="cmp_base").value == "black"
    at.slider(key="alpha").set_value(0.8)
    ok(at.run())
    at.radio(key="cmp_across").set_value("models")
    ok(at.run())
    assert len(CALLS) == 1  # a redraw, and rows of models with the same model: the map kept for this view
    at.number_input(key="cmp_draws").set_value(2)
    ok(at.run())
    assert len(CALLS) == 2 and CALLS[-1]["options"]["draws"] == 2


def test_learn_lists_every_method_with_its_family_and_what_each_family_measures(fake):
    at = ok(AppTest.from_file(APP, default_timeout=300).run())
    at.switch_page("app_pages/learn.py")
    ok(at.run())
    table = next(m.value for m in at.markdown if m.value.startswith("| method | family |"))
    for m in methods.REGISTRY.values():
        assert f"**{m.title}**" in table
    assert "| **Fake input map** (Nobody) | perturbation | a test's map at the model input | at the model input |" \
        in table
    assert "| **Grad-CAM** (Selvaraju et al.) | CAM |" in table
    families = next(m.value for m in at.markdown if m.value.startswith("**What each family measures.**"))
    assert all(f"*{name}*" in families for name in ("CAM", "gradients", "perturbation"))
    headers = [h.value for h in at.header]
    assert headers[3] == "4 · Guided Grad-CAM step by step, on your photo" and headers[-1] == "8 · References"
    assert "arxiv" not in FAKE.url and "example.org/fake" in " ".join(m.value for m in at.markdown)


# --- the registered methods themselves, on the sample photo (slow: RISE and Score-CAM run their passes) ----------

@pytest.fixture
def spied(monkeypatch):
    """Every registered method's function wrapped: runs counted by name, and the progress each one reported."""
    import dataclasses
    import functools

    runs, reported = {}, {}

    def wrap(name, fn):
        @functools.wraps(fn)  # keeps its module: the Learn page's family column reads it
        def spy(ctx):
            runs[name] = runs.get(name, 0) + 1
            given = ctx.progress
            reported[name] = []
            if given is not None:
                ctx.progress = lambda f: (reported[name].append(f), given(f))[1]
            return fn(ctx)
        return spy

    for name, m in list(methods.EVERY.items()):
        entry = dataclasses.replace(m, fn=wrap(name, m.fn))
        monkeypatch.setitem(methods.EVERY, name, entry)
        if name in methods.REGISTRY:
            monkeypatch.setitem(methods.REGISTRY, name, entry)
    return runs, reported


def test_every_registered_method_on_explain_once_per_view(spied):
    runs, reported = spied
    at = ok(AppTest.from_file(APP, default_timeout=600).run())
    for name in methods.names():
        m = methods.REGISTRY[name]
        at.selectbox(key="method").set_value(name)
        ok(at.run())
        assert f"with {m.title}." in headline(at), name
        raw = next(c for e in at.image for c in e.captions if c.startswith("Raw map"))
        assert ("224×224 at the model input's resolution" in raw) == m.pixels, (name, raw)
        assert not m.reading or m.reading in captions(at), name
        complete = [c for c in captions(at) if c.startswith("Completeness: the attributions add up to")]
        assert len(complete) == (name == "integratedgradients"), name  # its sum beside the score's change
        assert (m.layer is not None) == any("ignores the layer" in c.value for c in at.sidebar.caption), name
        if m.on_pass is None:
            assert runs[name] == 1, name
            assert not m.progress or reported[name][-1] == pytest.approx(1.0), (name, reported[name])
            at.slider(key="alpha").set_value(0.3 if at.slider(key="alpha").value != 0.3 else 0.6)
            ok(at.run())
            assert runs[name] == 1, name  # a redraw: the kept map


def test_compare_with_the_gradient_methods_at_the_input(spied):
    runs, _ = spied
    at = ok(AppTest.from_file(APP, default_timeout=600).run())
    at.switch_page("app_pages/compare.py")
    ok(at.run())
    chosen = ["gradcam", "guidedbackprop", "guidedgradcam", "integratedgradients"]
    at.multiselect(key="cmp_methods").set_value(chosen)
    ok(at.run())
    assert len(at.multiselect(key="cmp_layers_efficientnet_lite0").value) == 3
    # the two that ignore the layer once, Guided Grad-CAM (Grad-CAM of each layer) once per row
    assert (runs["guidedbackprop"], runs["integratedgradients"], runs["guidedgradcam"]) == (1, 1, 3)
    assert sum("ignores the layer: its map is in the first row" in c for c in captions(at)) == 4
    assert sum(len(e.value) for e in at.image) == 3 + 1 + 3 + 1
    for name in chosen[1:]:
        assert methods.REGISTRY[name].reading in captions(at)
    at.slider(key="alpha").set_value(0.7)
    ok(at.run())
    assert (runs["guidedbackprop"], runs["integratedgradients"], runs["guidedgradcam"]) == (1, 1, 3)
    at.number_input(key="cmp_steps").set_value(8)
    ok(at.run())
    assert (runs["guidedbackprop"], runs["integratedgradients"], runs["guidedgradcam"]) == (1, 2, 3)


def _r(text: str, what: str) -> float:
    """The correlation the Learn page states after ``what`` ("r = **0.97**")."""
    return float(text.split(what, 1)[1].split("r = **", 1)[1].split("**", 1)[0])


def test_learn_opens_guided_grad_cam_on_the_photo(spied):
    runs, _ = spied
    at = ok(AppTest.from_file(APP, default_timeout=600).run())
    at.switch_page("app_pages/learn.py")
    ok(at.run())
    shown = [c for e in at.image for c in e.captions if c[:4] in ("1 · ", "2 · ", "3 · ")]
    assert shown == ["1 · guided backpropagation · 224×224", "2 · Grad-CAM at `top_activation` · 7×7 upsampled to "
                     "224×224", "3 · their product: Guided Grad-CAM"]
    assert any(m.value.startswith("Picture 3 is picture 1 times picture 2") for m in at.markdown)
    why = next(m.value for m in at.markdown if m.value.startswith("**Why the product"))
    # Egyptian Mau against the runner-up tabby cat: guided backprop the same, Grad-CAM a little less at the last layer
    assert "*Egyptian Mau*" in why and "*tabby cat*" in why
    assert _r(why, "guided backpropagation for") >= 0.98 and _r(why, "Grad-CAM's maps") < _r(why, "guided backpropagation for")
    assert runs["guidedbackprop"] == 2 and runs["guidedgradcam"] == 1
    at.selectbox(key="learn_other_285").set_value(235)  # the German Shepherd beside the cat
    ok(at.run())
    why = next(m.value for m in at.markdown if m.value.startswith("**Why the product"))
    assert "*German Shepherd Dog*" in why, why
    # measured: guided backprop r = 0.80 (the photo's edges either way), Grad-CAM r = −0.36 (the cat against the dog)
    assert _r(why, "guided backpropagation for") >= 0.7 and _r(why, "Grad-CAM's maps") < 0.0, why
    at.slider(key="alpha").set_value(0.8)
    ok(at.run())
    assert runs["guidedbackprop"] == 3 and runs["guidedgradcam"] == 1  # the dog's once; the redraw none
