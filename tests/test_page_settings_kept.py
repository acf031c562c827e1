"""Each page's own settings are there again after a visit to another page (ui/kept.py, handed back in every run by
streamlit_app.py): Explain's method options, Compare's methods and rows, Occlude's fill and sensitivity patch,
Measure's methods, threshold and steps — and a kept value the widget can no longer take is brought back into range."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui import kept

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning or all("Session State API" not in w.value for w in at.warning)
    return at


def away_and_back(at, page):
    ok(at.switch_page("app_pages/learn.py").run())
    return ok(at.switch_page(page).run())


def test_every_page_keeps_its_own_settings():
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    at.selectbox(key="method").set_value("layercam")
    ok(at.switch_page("app_pages/compare.py").run())
    at.multiselect(key="cmp_methods").set_value(["gradcam", "eigencam"])
    ok(at.radio(key="cmp_across").set_value("layers").run())
    ok(at.multiselect(key="cmp_layers_efficientnet_lite0").set_value(["block5c_add", "top_activation"]).run())
    away_and_back(at, "app_pages/compare.py")
    assert at.multiselect(key="cmp_methods").value == ["gradcam", "eigencam"]
    assert at.multiselect(key="cmp_layers_efficientnet_lite0").value == ["block5c_add", "top_activation"]

    ok(at.switch_page("app_pages/occlude.py").run())
    at.selectbox(key="occ_fill").set_value("blur")
    at.slider(key="occ_patch").set_value(56)
    ok(at.slider(key="occ_pct").set_value(35).run())
    away_and_back(at, "app_pages/occlude.py")
    assert (at.selectbox(key="occ_fill").value, at.slider(key="occ_patch").value, at.slider(key="occ_pct").value) \
        == ("blur", 56, 35)

    ok(at.switch_page("app_pages/measure.py").run())
    at.multiselect(key="ms_methods").set_value(["gradcam", "hirescam"])
    ok(at.slider(key="ms_steps").set_value(15).run())
    away_and_back(at, "app_pages/measure.py")
    assert at.multiselect(key="ms_methods").value == ["gradcam", "hirescam"] and at.slider(key="ms_steps").value == 15

    ok(at.switch_page("app_pages/explain.py").run())
    ok(at.selectbox(key="method").set_value("scorecam").run())
    ok(at.number_input(key="exp_topn").set_value(8).run())
    away_and_back(at, "app_pages/explain.py")
    assert at.selectbox(key="method").value == "scorecam" and at.number_input(key="exp_topn").value == 8
    assert any("1 pass" in c.value or "passes" in c.value for c in at.caption)  # Score-CAM at 8 channels, kept


def test_a_kept_value_out_of_the_widget_s_range_now_is_brought_back():
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    at.session_state["occ_patch"] = 140  # an Xception-sized patch (its input is 299) kept for Lite0 (224)
    at.session_state[kept.KEPT] = {"occ_patch"}
    ok(at.switch_page("app_pages/occlude.py").run())
    assert at.slider(key="occ_patch").value == 112  # the largest Lite0 takes
