"""Real-browser test of the Measure page: Playwright drives Debian's Chromium (headless) against `streamlit run`.

Drags a rectangle over the cat on the canvas, reads the box (photo pixels) and the IoU back from the page and
checks them against the drag and against the IoU computed in this process; then computes the curves. Screenshots
go to artifacts/e2e/ (measure.png: the localisation part at 1400×1000; measure-curves.png: the curves).
"""
import re

import pytest

from tests.e2e.browser import ARTIFACTS, canvas_box, wait_idle

PHOTO_W, PHOTO_H = 940, 400  # assets/cat_and_dog.jpg, the default sample
DRAG = (0.03, 0.06, 0.60, 0.97)  # fractions of the canvas: the cat, left of the seam at 601/940

SERVER_LOG = "e2e-measure-streamlit.log"  # the module's server and page: tests/e2e/conftest.py


def metric(pg, label: str) -> str:
    return pg.locator('[data-testid="stMetric"]', has_text=label).first.locator(
        '[data-testid="stMetricValue"]').inner_text().strip()


def test_a_box_drawn_on_the_canvas_gives_the_iou_computed_here(server, page, lite_engine, photos):
    from core.imaging import render
    from core.metrics import evaluation, localisation

    page.goto(server + "/measure", timeout=120_000)
    page.get_by_text("Draw or upload the object's box").first.wait_for(timeout=180_000)
    wait_idle(page)
    box = canvas_box(page)
    x0, y0 = box["x"] + box["width"] * DRAG[0], box["y"] + box["height"] * DRAG[1]
    x1, y1 = box["x"] + box["width"] * DRAG[2], box["y"] + box["height"] * DRAG[3]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for f in (0.25, 0.5, 0.75, 1.0):
        page.mouse.move(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, steps=5)
    page.mouse.up()
    page.locator('[data-testid="stMetric"]', has_text="IoU · Grad-CAM").first.wait_for(timeout=120_000)
    wait_idle(page)
    shown = page.locator("[data-testid=\"stMarkdownContainer\"]", has_text="Object boxes").first.inner_text()
    got = tuple(float(v) for v in re.search(r"(\d+), (\d+), (\d+), (\d+)", shown).groups())
    dragged = (DRAG[0] * PHOTO_W, DRAG[1] * PHOTO_H, DRAG[2] * PHOTO_W, DRAG[3] * PHOTO_H)
    px = PHOTO_W / box["width"]  # one screen pixel in photo pixels
    assert all(abs(g - d) <= 1.5 * px + 0.5 for g, d in zip(got, dragged)), (got, dragged)

    page_iou = float(metric(page, "IoU · Grad-CAM"))
    rgb = photos["cat_and_dog.jpg"].rgb
    res = lite_engine.run(rgb)
    cam_up = render.upsample(evaluation.raw_map(lite_engine, rgb, res, "gradcam", lite_engine.spec.default_layer),
                             PHOTO_W, PHOTO_H)
    # the page shows the box rounded to whole pixels: the IoU of any box within a pixel of it bounds the page's
    near = [localisation.best_iou(cam_up, [tuple(g + d for g, d in zip(got, shift))], 0.2)
            for shift in [(0, 0, 0, 0)] + [tuple(s if i == k else 0 for i in range(4)) for k in range(4) for s in (-1, 1)]]
    assert min(near) - 5e-4 <= page_iou <= max(near) + 5e-4, (page_iou, near)
    assert page_iou == pytest.approx(localisation.best_iou(cam_up, [dragged], 0.2), abs=0.02)
    assert page_iou > 0.5  # Grad-CAM of the top-1 (the cat) frames the cat
    assert metric(page, "Pointing game · Grad-CAM") == "yes"

    page.get_by_role("button", name=re.compile("Compute deletion and insertion curves")).click()
    page.get_by_text("deletion AUC (low = good)").first.wait_for(timeout=120_000)
    wait_idle(page)
    rows = page.locator("table", has_text="deletion AUC").first.locator("tbody tr").all_inner_texts()
    assert len(rows) == 4 and not any("nan" in r.lower() for r in rows)  # Grad-CAM and the random, centre and edges maps
    assert any(r.startswith("Edges of the photo") for r in rows)
    assert not page.locator('[data-testid="stException"]').count()
    for heading, name in (("Faithfulness", "measure-curves.png"), ("Localisation", "measure.png")):
        page.evaluate("(t) => [...document.querySelectorAll('h2')].find(e => e.textContent.startsWith(t))"
                      ".scrollIntoView({block: 'start'})", heading)
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / name))
