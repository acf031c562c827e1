"""AppTest smoke tests of the pages: no exception, controls present and effective."""
import base64
import dataclasses
import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import models
from core.imaging import render

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(page):
    """Run the app, switch to ``page`` and check it ran without an exception."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def headline(at):
    return next(m.value for m in at.markdown if m.value.startswith("Explaining"))


def pictures(at) -> dict:
    """The Explain page's pictures by kind ("Original", "overlay", "Raw map"): (data URL, pixels)."""
    out = {}
    for element in at.image:
        for url, caption in zip(element.value, element.captions):
            head, data = url.split(",", 1)
            assert head.startswith("data:image/"), head  # sent inside the page's message
            rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), np.int16)
            out["overlay" if " overlay · " in caption else caption.split(" · ")[0]] = (url, rgb)
    assert set(out) == {"Original", "overlay", "Raw map"}, list(out)
    return out


def top_k_rows(at) -> int:
    """The rows of the top-k bar chart, as its Vega-Lite spec carries them."""
    return len(json.loads(at.get("vega_lite_chart")[0].proto.spec)["layer"][0]["data"]["values"])


def colours(rgb: np.ndarray) -> set:
    return set(map(tuple, np.asarray(rgb).reshape(-1, 3).tolist()))


def test_explain_page_renders_with_its_controls(app):
    assert app.title[0].value == "Explain a prediction"
    assert "German Shepherd" not in headline(app) and "class 285" in headline(app)  # Chelsea is top-1
    labels = {w.label for w in [*app.selectbox, *app.slider, *app.select_slider, *app.radio, *app.button]}
    for needed in ("Model", "Sample photo", "Layer (early → late)", "Top-k predictions", "Class to explain",
                   "Method", "Heatmap opacity (alpha)", "Colormap", "Reset"):
        assert needed in labels
    proto = app.get("vega_lite_chart")[0].proto  # the top-k bars
    chart = json.loads(proto.spec)
    assert chart["layer"][0]["mark"]["type"] == "bar" and chart["height"] == 34 * 5 + 30
    assert len(chart["layer"][0]["data"]["values"]) == 5  # the rows travel in the spec itself,
    assert not proto.data.data  # not as a table Streamlit builds with pandas and Arrow
    assert not app.error


def test_layer_class_and_sample_controls_are_effective(app):
    app.select_slider(key="layer_efficientnet_lite0").set_value("block5c_add").run()
    assert "`block5c_add`" in headline(app)
    radio = app.radio[0]
    assert any("German Shepherd" in o for o in radio.options)  # the dog is in the photo's top-5
    radio.set_value(235).run()
    assert "class 235" in headline(app) and app.session_state["class_index"] == 235
    app.select_slider(key="layer_efficientnet_lite0").set_value("top_activation").run()
    assert "class 235" in headline(app)  # the class is kept by index while the layer changes
    app.selectbox(key="sample").set_value("Espresso cup").run()
    assert "class 967" in headline(app)  # a new photo explains its own top-1 again
    assert not app.exception


def test_any_class_by_search_and_topk_alpha_colormap(app):
    app.selectbox(key="class_any_285").set_value(1).run()  # goldfish, not in the top-k
    assert "class 1," in headline(app)
    before = pictures(app)
    assert top_k_rows(app) == 5 and len(app.radio[0].options) == 6  # the top-5, and the searched class
    assert any(s.value == "Top-5 predictions" for s in app.subheader)

    app.slider(key="top_k").set_value(3).run()
    assert top_k_rows(app) == 3 and len(app.radio[0].options) == 4  # three bars, three classes (+ goldfish)
    assert any(s.value == "Top-3 predictions" for s in app.subheader)
    assert {k: v[0] for k, v in pictures(app).items()} == {k: v[0] for k, v in before.items()}  # same pictures

    app.slider(key="alpha").set_value(0.8).run()
    after = pictures(app)
    assert after["Original"][0] == before["Original"][0] and after["Raw map"][0] == before["Raw map"][0]
    photo = before["Original"][1]
    # the overlay is (1 − alpha)·photo + alpha·heatmap: its distance from the photo grows as 0.8 / 0.45
    away = [np.abs(pics["overlay"][1] - photo).mean() for pics in (before, after)]
    assert away[0] > 5 and away[1] / away[0] == pytest.approx(0.8 / 0.45, rel=0.03), away

    jet, viridis = colours(render.lut("jet")), colours(render.lut("viridis"))
    assert colours(after["Raw map"][1]) <= jet and not colours(after["Raw map"][1]) <= viridis
    app.selectbox(key="colormap").set_value("viridis").run()
    last = pictures(app)
    assert colours(last["Raw map"][1]) <= viridis and not colours(last["Raw map"][1]) <= jet  # the map's colours
    assert np.abs(last["overlay"][1] - after["overlay"][1]).mean() > 5  # and the overlay's
    assert last["Original"][0] == before["Original"][0]
    assert not app.exception and "class 1," in headline(app)


def link_app(**params):
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_opens_exactly_its_view_and_the_url_follows_changes():
    at = link_app(model="efficientnet_lite0", sample="dog", layer="block5c_add", **{"class": "207"},
                  method="gradcampp", alpha="0.3")
    assert "class 207," in headline(at) and "`block5c_add`" in headline(at) and "Grad-CAM++" in headline(at)
    assert at.selectbox(key="sample").value == "Dog (German shepherd)"
    assert at.slider(key="alpha").value == 0.3 and at.selectbox(key="method").value == "gradcampp"
    assert not at.sidebar.warning  # nothing was ignored
    assert at.query_params == {"model": "efficientnet_lite0", "sample": "dog", "layer": "block5c_add",
                               "class": "207", "method": "gradcampp", "alpha": "0.30"}
    at.slider(key="alpha").set_value(0.7).run()
    at.selectbox(key="method").set_value("layercam").run()
    at.select_slider(key="layer_efficientnet_lite0").set_value("top_activation").run()
    assert at.query_params["alpha"] == "0.70" and at.query_params["method"] == "layercam"
    assert at.query_params["layer"] == "top_activation" and at.query_params["class"] == "207"
    at.selectbox(key="sample").set_value("Espresso cup").run()
    assert at.query_params["sample"] == "coffee" and at.query_params["class"] == "967"
    # the new URL opens the same view in a new session
    again = link_app(**at.query_params)
    assert headline(again) == headline(at)


def test_a_link_with_unknown_parts_opens_their_defaults_and_says_so_in_one_line():
    at = link_app(model="alexnet", sample="dog", layer="no_such_layer", **{"class": "5000"}, method="magic",
                  alpha="nan")
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    for part in ("alexnet", "no_such_layer", "5000", "magic", "nan"):
        assert part in warnings[0]
    assert at.selectbox(key="model").value == "efficientnet_lite0" and at.slider(key="alpha").value == 0.45
    assert at.selectbox(key="sample").value == "Dog (German shepherd)"  # the valid part is kept
    assert "`top_activation`" in headline(at) and "with Grad-CAM." in headline(at)


def test_cam_and_score_cam_on_the_explain_page():
    at = link_app(method="cam", layer="block5c_add")
    assert any("feeds the classifier" in i.value for i in at.info) and "with Grad-CAM." in headline(at)
    at.select_slider(key="layer_efficientnet_lite0").set_value("top_activation").run()
    assert "with CAM." in headline(at) and not at.info
    at.selectbox(key="method").set_value("scorecam").run()
    assert not at.exception and "with Score-CAM." in headline(at)
    memo = at.session_state["explain_memo"]
    at.slider(key="alpha").set_value(0.6).run()  # a redraw: Score-CAM's map is reused, not recomputed
    assert at.session_state["explain_memo"] is memo


def test_reset_restores_defaults(app):
    app.selectbox(key="sample").set_value("Rocket launch").run()
    app.slider(key="alpha").set_value(0.9).run()
    next(b for b in app.button if b.label == "Reset").click().run()
    assert app.session_state["alpha"] == 0.45 and app.session_state["sample"] == "Cat and dog"
    assert "class 285" in headline(app)


def test_keras_model_without_weights_offers_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = dataclasses.replace(models.REGISTRY["resnet50"], weights_url="http://127.0.0.1:9/unreachable.h5")
    monkeypatch.setitem(models.REGISTRY, "resnet50", spec)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.selectbox(key="model").set_value("resnet50").run()
    assert not at.exception
    assert len(at.error) == 1 and "cannot be reached" in at.error[0].value and "\n" not in at.error[0].value
    next(b for b in at.button if "offline default" in b.label).click().run()
    assert at.session_state["model"] == models.DEFAULT_MODEL and not at.error
    assert "Explaining" in headline(at)


def test_occlude_page_without_a_drawing_and_its_actions():
    at = open_page("app_pages/occlude.py")
    assert at.title[0].value == "Occlusion studio"
    summary = next(m.value for m in at.markdown if "of the photo occluded" in m.value)
    assert "0.0% of the photo occluded" in summary and "+0.0 points" in summary
    assert {"Tool", "Brush size"} <= {w.label for w in [*at.radio, *at.slider]}
    assert at.selectbox(key="occ_fill").options == ["gray", "black", "blur", "noise", "mean"]
    at.button(key="occ_top").click().run()
    removed = at.metric[0]
    assert removed.label.startswith("p(") and removed.delta.startswith("-")
    at.button(key="occ_keep").click().run()
    assert not at.exception
    at.slider(key="occ_patch").set_value(112).run()
    at.slider(key="occ_stride").set_value(56).run()
    at.button(key="occ_run").click().run()
    assert not at.exception
    key, smap, passes, _secs = at.session_state["occ_sens"]
    assert key[3:5] == (112, 56) and passes == 1 and smap.shape == (224, 224)  # 3×3 positions, one batch
    at.selectbox(key="occ_fill").set_value("blur").run()
    at.select_slider(key="layer_efficientnet_lite0").set_value("block5c_add").run()
    assert not at.exception
    # at block4b_add, Grad-CAM is positive on 40 % of the photo: asking for the top 60 % says what it kept
    at.select_slider(key="layer_efficientnet_lite0").set_value("block4b_add")
    at.slider(key="occ_pct").set_value(60).run()
    at.button(key="occ_keep").click().run()
    said = [c for i in at.image for c in i.captions if c.startswith("Keeping only the top 60 % of the map")]
    assert said == ["Keeping only the top 60 % of the map: only 40% of the photo has positive evidence"], said


def test_compare_page_grid_and_controls():
    at = open_page("app_pages/compare.py")
    assert at.title[0].value == "Compare methods"
    assert at.multiselect(key="cmp_methods").value == ["gradcam", "gradcampp", "hirescam", "layercam", "eigencam"]
    assert not [n for n in at.number_input if n.key == "cmp_topn"]  # Score-CAM's setting only when it is chosen
    assert len(at.multiselect(key="cmp_layers_efficientnet_lite0").value) == 3
    at.multiselect(key="cmp_methods").set_value(["gradcam", "cam", "scorecam"]).run()
    at.number_input(key="cmp_topn").set_value(16).run()
    assert not at.exception
    # CAM says why it does not apply at the two earlier layers, and is drawn at the last one
    infos = [i.value for i in at.info]
    assert sum("feeds the classifier" in t for t in infos) == 2
    at.multiselect(key="cmp_layers_efficientnet_lite0").set_value(["stem_activation", "block5c_add"]).run()
    assert not at.exception and sum("feeds the classifier" in i.value for i in at.info) == 2
    at.radio(key="cmp_across").set_value("models").run()
    assert not at.exception and at.multiselect(key="cmp_models").value == ["efficientnet_lite0"]
    at.multiselect(key="cmp_methods").set_value([]).run()
    assert any("at least one method" in i.value for i in at.info)


def test_learn_page_uses_the_current_photo_and_layer():
    at = open_page("app_pages/learn.py")
    headers = [h.value for h in at.header]
    assert len(headers) == 8 and headers[-1] == "8 · References"
    text = " ".join(m.value for m in at.markdown)
    assert "Egyptian Mau" in text and "1280 activation maps" in text and "7×7" in text
    assert len(at.latex) >= 2
    assert "arxiv.org/abs/1610.02391" in text and "arxiv.org/abs/2008.00299" in text
    flat = "Each gradient is one flat colour"  # at the last layer (GAP → Dense) the page says why, not a blank square
    assert any(c.value.startswith(flat) for c in at.caption)
    at.select_slider(key="layer_efficientnet_lite0").set_value("block5c_add").run()
    text = " ".join(m.value for m in at.markdown)
    assert not at.exception and "112 activation maps" in text and "14×14" in text
    assert not any(c.value.startswith(flat) for c in at.caption)  # the gradients vary from cell to cell there
    assert len(at.expander) == len(models.REGISTRY)  # a card per model
    at.radio[0].set_value(235).run()  # the dog, not the top-1: the page says both
    text = " ".join(m.value for m in at.markdown)
    assert not at.exception and "The model's first answer for this photo is **Egyptian Mau** (39.3%)" in text
    from ui.charts import channel_weights_chart  # a layer of 16 channels: the chart's title counts 16

    assert channel_weights_chart(np.linspace(-1, 1, 16)).to_dict()["encoding"]["x"]["title"] == \
        "the 16 channels with the largest |α| (of 16)"


def test_results_are_not_kept_alive_by_the_page_after_the_photo_changes(app):
    """A pass's result (every layer's activations and gradients) lives only in its engine's bounded
    cache: a widget callback that captured it kept one per photo and class for the whole session,
    beyond the cache, so switching models piled up hundreds of MB."""
    import gc

    from core.engine import Engine, PassResult

    for name in ("Espresso cup", "Rocket launch", "Cow in a meadow", "Dog (German shepherd)", "Cat and dog"):
        app.selectbox(key="sample").set_value(name).run()
        assert not app.exception
    gc.collect()
    assert sum(isinstance(o, PassResult) for o in gc.get_objects()) >= 5  # in the engine's cache
    for engine in [o for o in gc.get_objects() if isinstance(o, Engine)]:
        engine.cache.clear()  # what evicting the model does
    gc.collect()
    assert [o.class_index for o in gc.get_objects() if isinstance(o, PassResult)] == []


def test_a_script_run_leaves_keras_state_alone(app):
    """Streamlit resets Keras's global state after every run of every session (for every thread); the app
    turns that off (server/runtime.py), so a model loading in one session keeps its Keras state while another
    session's run ends."""
    import keras
    from keras.src.backend.common import global_state

    with keras.StatelessScope():  # what a held model's loading is inside, in its own thread
        marker = global_state.get_global_attribute("stateless_scope")
        app.slider(key="alpha").set_value(0.5).run()  # another session's run ends meanwhile
        assert not app.exception
        assert global_state.get_global_attribute("stateless_scope") is marker


def test_without_streamlits_keras_cleanup_the_app_says_so_once_and_changes_nothing(monkeypatch, caplog):
    import logging

    from streamlit.runtime.scriptrunner import script_runner

    from server import runtime

    monkeypatch.delattr(script_runner, "_clean_problem_modules")
    with caplog.at_level(logging.WARNING, logger="server.runtime"):
        assert runtime.keep_keras_state() is False
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()


def test_start_up_work_runs_in_the_background_and_fills_the_cache(photos):
    """The cold-start work: TensorFlow, the model and its first pass on the photo, whose result the engine
    then serves from its cache (the first visitor's page needs no pass of its own)."""
    from core.engine import EnginePool
    from core.engine.warmup import STAGES, WarmUp

    pool = EnginePool(220)
    rgb = photos["cat_and_dog.jpg"].rgb
    work = WarmUp(pool.get, "efficientnet_lite0", rgb)
    assert not work.done and work.fraction == 0 and work.stage == STAGES[0]
    assert work.start() is work.start()  # starting twice starts once
    assert work.wait(300) and work.done and work.error is None and work.fraction == 1.0
    assert {"import", "load", "first_pass"} <= set(work.seconds)
    engine = pool.get("efficientnet_lite0")
    assert engine.cached(rgb)
    # the first pass ran eagerly; the compiled pass is traced afterwards, and the two agree
    assert work.wait_compiled(120) and "compile" in work.seconds
    first, compiled = engine.run(rgb), engine.run_input(engine.prepare(rgb))
    assert first.class_index == compiled.class_index == 285
    np.testing.assert_allclose(first.probs, compiled.probs, rtol=1e-4, atol=1e-7)
    for layer in engine.layers:
        for a, b in ((first.acts[layer], compiled.acts[layer]), (first.grads[layer], compiled.grads[layer])):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * float(np.abs(b).max()))
    failed = WarmUp(lambda name: (_ for _ in ()).throw(OSError("disk full")), "efficientnet_lite0").start()
    assert failed.wait(60) and isinstance(failed.error, OSError)  # reported to the page, the thread ends


@pytest.mark.parametrize("during", ["import", "load"])
def test_a_process_that_ends_during_the_start_up_work_waits_for_its_step_and_does_no_more(tmp_path, during):
    """Python ends daemon threads at its exit wherever they are; one inside TensorFlow's C++ code (importing,
    tracing) then aborts the whole process (exit status 134). A process that ends during the start-up work
    instead waits for the step under way (TensorFlow's import, the model's load) and starts no other."""
    import subprocess
    import sys

    script = textwrap.dedent("""
        import os, sys, time
        from core.engine.warmup import WarmUp

        path, during = sys.argv[1], sys.argv[2]
        log = open(path, "a", buffering=1)

        class Engine:
            def run(self, photo, eager):
                log.write("first pass\\n")

            def compile(self):
                log.write("compiled\\n")

        def load(name):
            log.write("load started\\n")
            time.sleep(1.0)
            log.write("load done\\n")
            return Engine()

        WarmUp(load, "any", photo=object()).start()
        if during == "load":  # the main thread ends once the load has started
            while not os.path.getsize(path):
                time.sleep(0.01)
    """)
    log = tmp_path / "log.txt"
    log.touch()
    done = subprocess.run([sys.executable, "-c", script, str(log), during], cwd=Path(APP).parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert log.read_text().splitlines() == ([] if during == "import" else ["load started", "load done"])
