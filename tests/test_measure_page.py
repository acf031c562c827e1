"""The Measure page: AppTest of its three parts, its numbers against ``measure_photo`` and ``python -m core evaluate
--per-image`` for the same photo, class, layer and method, and the box readers (canvas, CSV, VOC XML)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.imaging import render
from core.metrics import baselines, evaluation
from core.metrics import boxes as bx

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
PHOTO = ROOT / "assets" / "cat_and_dog.jpg"  # the default sample; Chelsea (left) is the top-1
CAT_BOX = (0.0, 20.0, 560.0, 400.0)  # the photo is 940×400
METHODS = ("gradcam", "random", "centre", "edges")
TITLES = {"gradcam": "Grad-CAM", "random": "Random map (baseline)", "centre": "Centre prior (baseline)",
          "edges": "Edges of the photo (baseline)"}


def table_rows(table) -> dict[str, dict[str, str]]:
    df = table.value
    return {str(i): {c: str(df.loc[i, c]) for c in df.columns} for i in df.index}


@pytest.fixture(scope="module")
def page():
    """The Measure page on the default sample, with the cat's box uploaded as CSV and the curves computed."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/measure.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Measure an explanation"
    assert any("Draw or upload the object's box" in i.value for i in at.info)  # no box yet: no figures
    assert not at.metric
    csv = "x0,y0,x1,y1\n" + ",".join(f"{v:g}" for v in CAT_BOX) + "\n"
    at.file_uploader[0].set_value(("cat.csv", csv.encode(), "text/csv")).run()
    assert not at.exception and not at.error
    at.button(key="ms_faith_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def expected(lite_engine, photos):
    """``measure_photo`` for the same photo, class (top-1), layer (default), methods and seed as the page."""
    img = photos["cat_and_dog.jpg"]
    cls = lite_engine.run(img.rgb).class_index
    return cls, evaluation.measure_photo(lite_engine, img.rgb, cls, [CAT_BOX], methods=METHODS,
                                         seed=baselines.seed_for("cat_and_dog.jpg", 0))


def test_the_page_gives_localisation_figures_for_an_uploaded_box(page, expected):
    _cls, rec = expected
    labels = [m.label for m in page.metric]
    assert labels == ["IoU · Grad-CAM", "Pointing game · Grad-CAM", "Energy-based pointing · Grad-CAM"]
    iou, point, energy = (m.value for m in page.metric)
    assert float(iou) == pytest.approx(rec["gradcam"]["iou"], abs=5e-4)
    assert point == ("yes" if rec["gradcam"]["pointing"] else "no")
    assert float(energy) == pytest.approx(rec["gradcam"]["energy"], abs=5e-4)
    assert any("`0, 20, 560, 400`" in m.value for m in page.markdown)  # the box, read back in photo pixels
    rows = table_rows(page.table[0])
    assert set(rows) == set(TITLES.values())
    for m, t in TITLES.items():
        assert float(rows[t]["IoU"]) == pytest.approx(rec[m]["iou"], abs=5e-4)
        assert float(rows[t]["energy inside boxes"]) == pytest.approx(rec[m]["energy"], abs=5e-4)
        assert rows[t]["pointing game"] == ("yes" if rec[m]["pointing"] else "no")
    # the map puts more of its mass on the cat than the centre prior does (Chelsea sits left of the centre)
    assert rec["gradcam"]["energy"] > rec["centre"]["energy"]


def test_the_faithfulness_button_gives_finite_figures_equal_to_measure_photo(page, expected):
    _cls, rec = expected
    rows = table_rows(page.table[1])
    assert set(rows) == set(TITLES.values())
    for m, t in TITLES.items():
        r = rows[t]
        for col, field in (("deletion AUC (low = good)", "deletion_auc"), ("insertion AUC (high = good)",
                                                                           "insertion_auc"),
                           ("average drop (low = good)", "avg_drop")):
            assert math.isfinite(float(r[col])) and "nan" not in r[col].lower()
            assert float(r[col]) == pytest.approx(rec[m][field], abs=5e-4)
        assert r["increase in confidence"] == ("yes" if rec[m]["increase"] else "no")
    # the exact values the page keeps equal measure_photo's (the same functions, the same engine weights)
    kept = {k[0][4]: v for k, v in page.session_state["measure_faith"].items()}
    for m in METHODS:
        assert kept[m]["deletion_auc"] == pytest.approx(rec[m]["deletion_auc"], abs=1e-6)
        assert kept[m]["insertion_auc"] == pytest.approx(rec[m]["insertion_auc"], abs=1e-6)
    assert not page.exception


def test_moving_the_threshold_changes_iou_and_recomputes_no_curve(page, expected, lite_engine, photos):
    from core.metrics import localisation

    kept = dict(page.session_state["measure_faith"])
    page.slider(key="ms_threshold").set_value(0.5).run()
    assert not page.exception
    assert dict(page.session_state["measure_faith"]).keys() == kept.keys()
    assert all(page.session_state["measure_faith"][k] is kept[k] for k in kept)  # the same objects: no new pass
    rgb = photos["cat_and_dog.jpg"].rgb
    res = lite_engine.run(rgb, expected[0])
    cam = evaluation.raw_map(lite_engine, rgb, res, "gradcam", lite_engine.spec.default_layer)
    want = localisation.best_iou(render.upsample(cam, rgb.shape[1], rgb.shape[0]), [CAT_BOX], 0.5)
    assert float(page.metric[0].value) == pytest.approx(want, abs=5e-4)
    assert len(page.table) == 3  # the curves' table is still there, and the ranking's (no ROAD yet)


def test_the_page_equals_the_cli_per_image_lines(page, expected, tmp_path):
    from core.cli.metric_commands import main

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / PHOTO.name).symlink_to(PHOTO)
    cls, _rec = expected
    (tmp_path / "boxes.csv").write_text("file,class_index,x0,y0,x1,y1\n" +
                                        f"{PHOTO.name},{cls}," + ",".join(f"{v:g}" for v in CAT_BOX) + "\n")
    out = tmp_path / "per_image.jsonl"
    assert main(["evaluate", str(folder), "--boxes", str(tmp_path / "boxes.csv"), "--methods", ",".join(METHODS),
                 "--per-image", str(out), "--json"]) == 0
    lines = {r["method"]: r for r in map(json.loads, out.read_text().splitlines())}
    loc, faith = table_rows(page.table[0]), table_rows(page.table[1])
    kept = {k[0][4]: v for k, v in page.session_state["measure_faith"].items()}
    for m, t in TITLES.items():
        cli = lines[m]
        assert float(faith[t]["deletion AUC (low = good)"]) == pytest.approx(cli["deletion_auc"], abs=5e-4)
        assert float(faith[t]["insertion AUC (high = good)"]) == pytest.approx(cli["insertion_auc"], abs=5e-4)
        assert kept[m]["deletion_auc"] == pytest.approx(cli["deletion_auc"], abs=2e-6)  # the CLI rounds to 1e-6
        assert kept[m]["avg_drop"] == pytest.approx(cli["avg_drop"], abs=2e-6)
        assert cli["pointing"] == (loc[t]["pointing game"] == "yes")
        assert float(loc[t]["energy inside boxes"]) == pytest.approx(cli["energy"], abs=5e-4)


def test_the_sanity_cascade_destroys_grad_cams_map_and_leaves_the_pool_alone(page, lite_engine, photos):
    from ui.resources import engine_pool

    pooled = engine_pool().get("efficientnet_lite0")
    batch = lite_engine.prepare(photos["dog.jpg"].rgb)
    before = pooled.predict(batch)
    page.button(key="ms_sanity_run").click().run()
    assert not page.exception and not page.error
    (cascade,) = page.session_state["measure_sanity"].values()
    assert cascade.method == "gradcam" and cascade.layer == lite_engine.spec.default_layer
    assert len(cascade.steps) > 10 and cascade.steps[0].randomised_from == "predictions"
    last = cascade.steps[-1]
    assert abs(last.spearman) <= 0.2
    verdict = next(m.value for m in page.markdown if m.value.startswith("With every block random"))
    assert f"**{last.spearman:.3f}**" in verdict and "gone with the model" in verdict
    np.testing.assert_array_equal(pooled.predict(batch), before)  # the pool's engine kept its weights
    np.testing.assert_allclose(before, lite_engine.predict(batch), atol=1e-5)


def test_can_this_be_fooled_ranks_grad_cam_edges_and_random_with_real_numbers(page, expected, lite_engine, photos):
    from core.metrics import road

    page.button(key="ms_fooled_run").click().run()
    assert not page.exception and not page.error, [e.value for e in page.exception]
    panel = page.table[-1].value
    assert list(panel.index) == ["Grad-CAM", "Edges of the photo (baseline)", "Random map (baseline)"]
    assert list(panel.columns) == ["pointing game", "energy in boxes", "deletion AUC", "insertion AUC",
                                   "ROAD combined", "sanity: final |ρ|"]
    value = {(m, c): float(panel.loc[m, c].split()[0]) for m in panel.index for c in panel.columns}
    rank = {(m, c): int(panel.loc[m, c].split("#")[1].split()[0]) for m in panel.index for c in panel.columns}
    # the figures are the metrics' own: ROAD of the edges map with the CLI's seed for this photo
    rgb, cls = photos["cat_and_dog.jpg"].rgb, expected[0]
    res = lite_engine.run(rgb, cls)
    edges = evaluation.raw_map(lite_engine, rgb, res, "edges", lite_engine.spec.default_layer)
    want = road.road(lite_engine, rgb, edges, cls, seed=baselines.seed_for("cat_and_dog.jpg", 0))
    assert value["Edges of the photo (baseline)", "ROAD combined"] == pytest.approx(want.combined, abs=5e-4)
    assert value["Grad-CAM", "deletion AUC"] == pytest.approx(expected[1]["gradcam"]["deletion_auc"], abs=5e-4)
    # measured on this photo: Grad-CAM ranks first on every metric and on the sanity check; the edges map never
    # beats it, but it beats the random map on deletion and ROAD; the cascade leaves both model-free maps intact
    assert all(rank["Grad-CAM", c] == 1 for c in panel.columns)
    assert rank["Edges of the photo (baseline)", "deletion AUC"] < rank["Random map (baseline)", "deletion AUC"]
    assert rank["Edges of the photo (baseline)", "ROAD combined"] < rank["Random map (baseline)", "ROAD combined"]
    assert value["Edges of the photo (baseline)", "sanity: final |ρ|"] == 1.0
    assert value["Random map (baseline)", "sanity: final |ρ|"] == 1.0 and value["Grad-CAM", "sanity: final |ρ|"] < 0.2
    note = next(m.value for m in page.markdown if m.value.startswith("Edges of the photo (baseline) never looks"))
    assert "ranks below every method" in note and "The sanity check catches it" in note
    # ROAD's own table on the page shows the same maps, and a second click has nothing left to compute
    assert page.button(key="ms_fooled_run").disabled and page.button(key="ms_road_run").label.startswith("Compute ROAD (1")


def test_a_bad_box_file_is_one_line_and_the_page_goes_on():
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/measure.py").run()
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "bbbbbbbb">]><annotation>&b;</annotation>'
    at.file_uploader[0].set_value(("bomb.xml", bomb, "text/xml")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["bomb.xml: DOCTYPE and ENTITY declarations are not accepted in a box file."]
    assert any("Draw or upload the object's box" in i.value for i in at.info)
    at.file_uploader[0].set_value(("b.csv", b"1,2,3\nx,y,z,w\n10,10,200,200\n", "text/csv")).run()
    assert not at.exception and not at.error
    assert len(at.warning) == 2 and all("skipped" in w.value for w in at.warning)
    assert len(at.metric) == 3 and all(m.value not in ("nan", "—") for m in at.metric if "Pointing" not in m.label)


def test_a_trained_model_in_the_sidebar_is_measured_with_its_own_classes():
    from core.models import TrainedModel
    from core.models.trained import HEAD_LOGITS

    rng = np.random.default_rng(0)
    mugs = TrainedModel(title="mugs", backbone="efficientnet_lite0", classes=("mine", "yours", "nobody's"),
                        weights={HEAD_LOGITS: [rng.normal(0, 0.05, (1280, 3)).astype(np.float32),
                                               np.array([0.1, -0.2, 0.0], np.float32)]})
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["trained_models"] = {mugs.name: mugs}
    at.session_state["model"] = mugs.name
    at.run()
    at.switch_page("app_pages/measure.py").run()
    at.multiselect(key="ms_methods").set_value(["gradcam", "cam"]).run()
    at.file_uploader[0].set_value(("b.csv", b"0,20,560,400\n", "text/csv")).run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert any("CAM applies at its last layer" in c.value for c in at.caption)
    assert any("Measuring the maps of **" in m.value and "(class " in m.value for m in at.markdown)
    assert set(table_rows(at.table[0])) == {"Grad-CAM", "CAM", "Random map (baseline)", "Centre prior (baseline)",
                                             "Edges of the photo (baseline)"}
    at.slider(key="ms_steps").set_value(5).run()
    at.button(key="ms_faith_run").click().run()
    assert not at.exception and not at.error
    rows = table_rows(at.table[1])
    assert all(math.isfinite(float(r["deletion AUC (low = good)"])) for r in rows.values())
    # at the last layer, CAM is Grad-CAM up to a positive factor for a GAP → Dense head: the same curves
    assert rows["CAM"]["deletion AUC (low = good)"] == rows["Grad-CAM"]["deletion AUC (low = good)"]


# --- the box readers -----------------------------------------------------------------------------------
def test_canvas_rectangles_become_photo_pixels():
    json_data = {"objects": [
        {"type": "rect", "left": 10, "top": 20, "width": 100, "height": 50, "scaleX": 1, "scaleY": 1},
        {"type": "rect", "left": 300, "top": 100, "width": 50, "height": 40, "scaleX": 2, "scaleY": 1.5,
         "originX": "center", "originY": "center"},  # 100×60 around (300, 100)
        {"type": "path", "left": 0, "top": 0, "width": 5, "height": 5},
    ]}
    got = bx.canvas_boxes(json_data, 400, 300, 800, 600)  # the canvas shows the photo at half size
    assert got == [(20.0, 40.0, 220.0, 140.0), (500.0, 140.0, 700.0, 260.0)]
    assert bx.canvas_boxes(None, 400, 300, 800, 600) == []
    # a rectangle dragged past the canvas edge is clipped to the photo
    off = {"objects": [{"type": "rect", "left": 350, "top": -10, "width": 100, "height": 50}]}
    assert bx.canvas_boxes(off, 400, 300, 800, 600) == [(700.0, 0.0, 800.0, 80.0)]


def test_csv_and_voc_box_files():
    assert bx.parse_csv(b"5,6,70,80\n1.5,2,3,4.5\n") == ([(5, 6, 70, 80), (1.5, 2, 3, 4.5)], [])
    boxes, problems = bx.parse_csv(b"\xef\xbb\xbfx0,y0,x1,y1\n5,6,70,80\n9,9,1,1\n")
    assert boxes == [(5, 6, 70, 80)] and problems == [
        "boxes.csv line 3: skipped (needs four numbers x0,y0,x1,y1 with x1 > x0 and y1 > y0)"]
    dataset = b"file,class_index,x0,y0,x1,y1\na.jpg,3,1,2,30,40\n"  # the CLI's boxes file works too
    assert bx.parse_csv(dataset)[0] == [(1, 2, 30, 40)]
    voc = (b"<annotation><size><width>400</width><height>300</height></size><object><name>cat</name><bndbox>"
           b"<xmin>10</xmin><ymin>20</ymin><xmax>110</xmax><ymax>220</ymax></bndbox></object></annotation>")
    assert bx.parse_voc(voc) == [(10, 20, 110, 220)]
    assert bx.read_upload(voc, "a.xml", 800, 600) == ([(20, 40, 220, 440)], [])  # scaled to the photo's size
    with pytest.raises(bx.BoxError, match="DOCTYPE"):
        bx.parse_voc(b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><annotation/>')
    with pytest.raises(bx.BoxError, match="larger than"):
        bx.read_upload(b"1,2,3,4\n" * 40000, "big.csv", 100, 100)
    with pytest.raises(bx.BoxError, match="not UTF-8"):
        bx.read_upload(b"\xff\xfe1\x002\x00", "u.csv", 100, 100)
    with pytest.raises(bx.BoxError, match="outside the photo"):
        bx.read_upload(b"200,200,300,300\n", "far.csv", 100, 100)
    with pytest.raises(bx.BoxError, match="no object/bndbox"):
        bx.read_upload(b"<annotation></annotation>", "e.xml", 100, 100)


def test_the_overlay_marks_the_region_and_both_boxes():
    base = np.full((60, 80, 3), 200, np.uint8)
    region = np.zeros((120, 160), bool)
    region[:, :80] = True
    pic = render.region_picture(base, region, (0, 0, 80, 120), [(80, 0, 160, 120)], 160)
    assert pic.shape == base.shape
    assert (pic[30, 20] == 200).all() and pic[30, 60].max() < 120  # bright inside the region, dimmed outside
    assert tuple(pic[0, 20]) == (255, 215, 0) and tuple(pic[30, 79]) == (40, 220, 60)
