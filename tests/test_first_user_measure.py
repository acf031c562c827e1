"""What a first-time student tripped over (issue 22), at the level of the chart specs and of the Measure page's
AppTest: the deletion/insertion legend draws each curve's dash (item 3), the page says what average drop measures
and shows the share of the photo each map keeps beside it (item 4), and the change labels of the Occlude chart
start at the end of the longer bar (item 14). The layout itself is checked in a browser:
tests/e2e/test_first_user_layout.py."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.metrics import baselines, evaluation, faithfulness

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")


def layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def mark_of(layer: dict) -> dict:
    m = layer["mark"]
    return {"type": m} if isinstance(m, str) else m


# --- item 3: the curves' legend -------------------------------------------------------------------------
def test_the_curves_legend_draws_each_curves_line_style():
    from ui import charts

    f = np.linspace(0, 1, 6)
    results = {m: {"fractions": f, "deletion": 1 - f, "insertion": f} for m in ("gradcam", "random", "centre")}
    spec = charts.curves_chart(results, "cat").to_dict()
    dashed = [lay for lay in layers(spec) if "strokeDash" in lay.get("encoding", {})]
    assert len(dashed) == 1
    (lay,) = dashed
    enc = lay["encoding"]["strokeDash"]
    legend = enc["legend"]
    # the legend's symbols are strokes, drawn in a visible colour with the encoding's dash
    assert legend["symbolType"] == "stroke"
    assert legend["symbolStrokeColor"] not in (None, "transparent") and legend["symbolStrokeWidth"] >= 1
    assert legend["symbolSize"] >= 15 ** 2  # a stroke symbol is sqrt(size) px long: room for a dash and a gap
    # a line mark without a filled point overlay: with one, Vega-Lite draws these symbols with a transparent stroke
    assert mark_of(lay)["type"] == "line" and not mark_of(lay).get("point")
    dash = dict(zip(enc["scale"]["domain"], enc["scale"]["range"]))
    assert set(dash) == {r["curve"] for r in _rows(spec)}  # every curve has its own entry
    deletion, insertion = dash["deletion (fraction removed)"], dash["insertion (fraction revealed)"]
    assert all(g == 0 for g in deletion[1::2]) and any(g > 0 for g in insertion[1::2])  # solid vs dashed
    # the points carry no strokeDash (one legend for the curves: the line layer's)
    others = [mark_of(lay2)["type"] for lay2 in layers(spec) if lay2 is not lay]
    assert others == ["point"]


def _rows(spec: dict) -> list[dict]:
    return [r for rows in spec.get("datasets", {}).values() for r in rows]


# --- item 14: the change labels --------------------------------------------------------------------------
def test_the_change_labels_start_beside_the_longer_bar():
    from ui.charts import change_chart

    table = pd.DataFrame([
        {"class": "Egyptian Mau [285]", "index": 285, "before": 0.39, "after": 0.39, "change": 0.0, "status": ""},
        {"class": "tabby cat [281]", "index": 281, "before": 0.05, "after": 0.2, "change": 0.15, "status": ""},
        {"class": "German Shepherd Dog [235]", "index": 235, "before": 0.99, "after": 0.5, "change": -0.49,
         "status": ""}])
    spec = change_chart(table, 285).to_dict()
    bars, labels = layers(spec)
    assert mark_of(bars)["type"] == "bar" and mark_of(labels)["type"] == "text"
    text = mark_of(labels)
    assert text["align"] == "left" and text["dx"] > 0  # starts a few px right of its x
    x = labels["encoding"]["x"]
    assert "value" not in x  # not at a fixed place (0: on the bars)
    (calc,) = [t for t in labels.get("transform", []) if t.get("as") == x["field"]]
    assert calc["calculate"].replace(" ", "") == "max(datum.before,datum.after)"  # the longer bar's end
    # the scale runs past 100 %: the label of a 99 % bar fits right of it
    assert bars["encoding"]["x"]["scale"]["domain"][1] > 1.1


# --- item 4: average drop, read fairly ------------------------------------------------------------------
@pytest.fixture(scope="module")
def page():
    """The Measure page on the default sample (cat and dog), the curves computed at 5 steps."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/measure.py").run()
    at.slider(key="ms_steps").set_value(5).run()
    at.button(key="ms_faith_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def kept(lite_engine, photos):
    """map title → the share of the photo its explanation map (photo × map) keeps, computed here."""
    from ui.charts import map_title as title

    rgb = photos["cat_and_dog.jpg"].rgb
    res = lite_engine.run(rgb)
    seed = baselines.seed_for("cat_and_dog.jpg", 0)
    out = {}
    for m in ("gradcam", "random", "centre", "edges"):
        cam = evaluation.raw_map(lite_engine, rgb, res, m, lite_engine.spec.default_layer, seed)
        out[title(m)] = faithfulness.kept_visible(cam, lite_engine.spec.input_size)
    return out


def test_kept_visible_is_the_mean_of_the_weights_that_make_the_explanation_map():
    cam = np.zeros((7, 7), np.float32)
    assert faithfulness.kept_visible(cam, 224) == 0.0  # an all-zero map: a black photo, nothing kept
    assert faithfulness.kept_visible(cam + 3.0, 224) == pytest.approx(1.0)  # flat: the whole photo
    cam[:, :] = 1.0
    cam[:, 4:] = 0.0
    share = faithfulness.kept_visible(cam, 224)
    assert 0.4 < share < 0.75  # about 4/7 of the photo, the edge blurred by the bilinear upsampling
    w = faithfulness.explanation_weights(cam * 5, 224)
    assert w.shape == (224, 224) and w.max() == pytest.approx(1.0) and share == pytest.approx(float(w.mean()))


def test_the_page_says_what_average_drop_measures_with_each_maps_share_kept(page, kept):
    from ui.session_metrics import KEPT_COLUMN

    (df,) = [t.value for t in page.table if "average drop (low = good)" in t.value.columns]  # no box: no other
    assert KEPT_COLUMN in df.columns
    shown = {str(i): str(df.loc[i, KEPT_COLUMN]) for i in df.index}
    assert shown == {t: f"{v:.0%}" for t, v in kept.items()}
    note = next(m.value for m in page.markdown if m.value.startswith("**Reading average drop:**"))
    assert "share of p(Egyptian Mau) lost when the photo is multiplied by the map scaled to 0..1" in note
    assert "rewards keeping the photo visible, not pointing at the object" in note
    for t, v in kept.items():
        assert f"{t} {v:.0%}" in note
    # what the sentence claims holds on this photo: both baselines keep more of it than Grad-CAM and drop less
    drops = {str(i): float(df.loc[i, "average drop (low = good)"]) for i in df.index}
    for b in ("Random map (baseline)", "Centre prior (baseline)"):
        assert kept[b] > kept["Grad-CAM"] and drops[b] < drops["Grad-CAM"]
    assert not page.exception
