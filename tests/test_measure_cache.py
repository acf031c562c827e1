"""The Measure page keeps every map on screen (ui/session_metrics.py): with more methods chosen than the old bound of
8 entries, a rerun that changes only the threshold computes no map, and moving the layer recomputes only the maps
that live at a layer (a map at the model input, guided backprop, and the centre and edges baselines are kept); a
region is kept at display size."""
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.imaging import render
from core.metrics import evaluation
from ui import session_metrics as ms

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
CHOSEN = ["gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "eigencam", "guidedbackprop"]


def test_nine_or_more_maps_are_computed_once_and_a_layer_move_keeps_the_input_maps(monkeypatch):
    calls = []
    real = evaluation.raw_map

    def counted(engine, rgb, res, method, layer, seed=0):
        calls.append((method, layer))
        return real(engine, rgb, res, method, layer, seed)

    monkeypatch.setattr(evaluation, "raw_map", counted)
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/measure.py").run()
    at.multiselect(key="ms_methods").set_value(CHOSEN).run()
    assert not at.exception, [e.value for e in at.exception]
    first = sorted(m for m, _ in calls)
    assert first == sorted(set(CHOSEN) | set(ms.BASELINES)) and len(first) == 10  # each map once
    calls.clear()
    at.slider(key="ms_threshold").set_value(0.5).run()  # display only
    at.selectbox(key="ms_shown").set_value("layercam").run()
    assert not at.exception and calls == []
    at.select_slider(key="layer_efficientnet_lite0").set_value("block5c_add").run()
    assert not at.exception
    # the maps at the layer (and the random baseline on its grid) again, at the new layer; the map at the model input
    # (guided backprop) and the centre and edges baselines kept
    assert sorted(calls) == sorted((m, "block5c_add") for m in set(CHOSEN) - {"guidedbackprop"} | {"random"})


def test_a_region_is_kept_at_display_size_and_draws_the_same_picture():
    rng = np.random.default_rng(0)
    cam = rng.random((7, 7))
    w, h = 3000, 2000
    up = render.upsample(cam, w, h)
    region = up >= 0.4 * up.max()
    small = render.region_at_display(region, ms.REGION_SIDE)
    assert small.shape == (480, 720) and small.dtype == bool
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    base = render.display_base(rgb, ms.REGION_SIDE)
    boxes = [(100.0, 200.0, 1500.0, 1800.0)]
    np.testing.assert_array_equal(render.region_picture(base, small, (10, 20, 900, 700), boxes, w),
                                  render.region_picture(base, region, (10, 20, 900, 700), boxes, w))
    little = rng.random((40, 60)) > 0.5
    np.testing.assert_array_equal(render.region_at_display(little, ms.REGION_SIDE), little)  # a small photo as it is
