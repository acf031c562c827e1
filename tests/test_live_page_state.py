"""The Live page's state: its own settings are there again after another page, Freeze with a fixed class explains
that class on Explain, a snapshot drawn again (another layer, method, alpha or colormap) runs no pass and waits for
no lane of the camera frames. AppTest
in snapshot mode (streamlit-webrtc's streamer needs a real server: tests/e2e/test_live_*.py)."""
import dataclasses
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.live import LiveSettings, LiveWorker
from ui import live as ui_live

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
LAYER = "layer_efficientnet_lite0"


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def live_page(worker=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    at.session_state["live_snapshots"] = True
    if worker is not None:
        at.session_state["live_worker"] = worker
    return ok(at.switch_page("app_pages/live.py").run())


def test_the_page_s_settings_are_there_again_after_another_page():
    at = live_page()
    at.select_slider(key="live_layer_efficientnet_lite0").set_value("block5c_add")
    at.selectbox(key="live_method").set_value("layercam")
    ok(at.radio(key="live_class_mode").set_value(ui_live.FIXED).run())
    ok(at.selectbox(key="live_class_efficientnet_lite0").set_value(207).run())
    ok(at.switch_page("app_pages/explain.py").run())
    ok(at.switch_page("app_pages/compare.py").run())
    ok(at.switch_page("app_pages/live.py").run())
    assert at.select_slider(key="live_layer_efficientnet_lite0").value == "block5c_add"
    assert at.selectbox(key="live_method").value == "layercam"
    assert at.radio(key="live_class_mode").value == ui_live.FIXED
    assert at.selectbox(key="live_class_efficientnet_lite0").value == 207
    assert at.toggle(key="live_snapshots").value
    assert not at.warning  # no "set through the Session State API" warning for the kept widgets


def test_freeze_with_a_fixed_class_explains_that_class(lite_engine, photos):
    worker = LiveWorker(LiveSettings(lambda: lite_engine, class_index=5), name="test-freeze")
    frame = worker.explain(photos["coffee.jpg"].rgb)  # not the session's photo (the default sample): a new photo
    assert frame.class_index == 5
    at = live_page(worker)
    ok(at.radio(key="live_class_mode").set_value(ui_live.FIXED).run())
    ok(at.selectbox(key="live_class_efficientnet_lite0").set_value(5).run())
    ok(at.button(key="live_freeze").click().run())
    ok(at.switch_page("app_pages/explain.py").run())  # (AppTest stays on the page it was told; a browser follows)
    head = next(m.value for m in at.markdown if m.value.startswith("Explaining"))
    assert "(class 5," in head, head
    # following the top-1, the frozen frame's top-1
    at = live_page(worker)
    ok(at.button(key="live_freeze").click().run())
    ok(at.switch_page("app_pages/explain.py").run())
    head = next(m.value for m in at.markdown if m.value.startswith("Explaining"))
    assert f"(class {lite_engine.run(photos['coffee.jpg'].rgb).class_index}," in head, head


def test_a_snapshot_drawn_again_with_other_settings_runs_no_pass(lite_engine, photos, monkeypatch):
    rgb = photos["coffee.jpg"].rgb
    lite_engine.cache.clear()
    passes = []
    real_run_input = lite_engine.run_input
    monkeypatch.setattr(lite_engine, "run_input", lambda *a, **k: (passes.append(1), real_run_input(*a, **k))[1])
    monkeypatch.setattr(lite_engine, "live_pass", lambda *a, **k: passes.append("live"))
    settings = LiveSettings(lambda: lite_engine, layer="top_activation")
    worker = LiveWorker(settings, name="test-snap")
    first = worker.explain(rgb)
    assert passes == [1] and worker.stats().processed == 1
    for change in ({"layer": "block5c_add"}, {"method": "layercam"}, {"alpha": 0.9}, {"colormap": "viridis"}):
        worker.configure(dataclasses.replace(settings, **change))
        again = worker.explain(rgb)
        assert again is not None and worker.latest is again
    assert passes == [1] and worker.stats().processed == 1  # one pass, one processed frame
    assert not np.array_equal(first.overlay, again.overlay)


def test_a_snapshot_does_not_wait_for_the_camera_frames_lane(lite_engine, photos):
    """A snapshot is the page's own pass: other viewers' frames holding every lane do not hold it up."""
    import threading

    lane = threading.BoundedSemaphore(1)
    assert lane.acquire(timeout=1)  # another viewer's frame holds the only lane
    worker = LiveWorker(LiveSettings(lambda: lite_engine), name="test-lane", lanes=lane)
    got = []
    t = threading.Thread(target=lambda: got.append(worker.explain(photos["dog.jpg"].rgb)), daemon=True)
    t.start()
    t.join(60)
    lane.release()
    assert not t.is_alive() and got and got[0] is not None
