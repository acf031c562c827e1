"""Real-browser test: Playwright drives Debian's Chromium (headless) against `streamlit run`.

Draws a rectangle over the dog on the Occlude page with the mouse and checks that the page then shows
a lower probability for the dog class. Screenshots go to artifacts/e2e/.
"""
import re
import time

import pytest

from tests.e2e.browser import ARTIFACTS

CAT_DOG_SEAM = 601 / 940  # assets/cat_and_dog.jpg: the dog is right of this fraction of the width

SERVER_LOG = "e2e-streamlit.log"  # the module's server and page: tests/e2e/conftest.py
PAGE_HEIGHT = 1100


def dog_row_probs(pg):
    """(before, after) probability of the German shepherd, read from the page's before/after table."""
    row = pg.locator("table tr", has_text="German Shepherd Dog [235]").first
    cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
    pcts = [float(m) for c in cells for m in re.findall(r"^([\d.]+)%$", c)]
    return pcts[0], pcts[1]


def test_drawing_a_rectangle_over_the_dog_lowers_its_probability(server, page):
    page.goto(server + "/occlude", timeout=120_000)
    page.get_by_text("Occlusion studio").wait_for(timeout=180_000)
    # choose the cat-and-dog sample explicitly
    page.get_by_label("Sample photo", exact=True).first.click()
    page.get_by_role("option", name="Cat and dog").click()
    page.locator("table tr", has_text="German Shepherd Dog [235]").first.wait_for(timeout=120_000)
    before, after = dog_row_probs(page)
    assert before == pytest.approx(after)  # nothing painted yet
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=60_000)
    canvas.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "occlude-before.png"), full_page=True)
    box = canvas.bounding_box()
    x0 = box["x"] + box["width"] * (CAT_DOG_SEAM + 0.02)
    x1 = box["x"] + box["width"] * 0.995
    y0, y1 = box["y"] + box["height"] * 0.01, box["y"] + box["height"] * 0.99
    page.mouse.move(x0, y0)
    page.mouse.down()
    for f in (0.25, 0.5, 0.75, 1.0):
        page.mouse.move(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, steps=5)
    page.mouse.up()
    # the component sends the drawing, the page re-runs and shows the occluded photo's probabilities
    page.wait_for_function(
        """() => [...document.querySelectorAll('p, div')].some(e => /of the photo occluded/.test(e.textContent)
              && !/ 0\\.0% of the photo occluded/.test(e.textContent))""", timeout=120_000)
    deadline = time.time() + 60
    while time.time() < deadline:
        b, a = dog_row_probs(page)
        if a < b:
            break
        time.sleep(1)
    page.screenshot(path=str(ARTIFACTS / "occlude-after.png"), full_page=True)
    assert a < b, f"dog probability did not drop: {b}% → {a}%"
    assert a < 0.5 * b
    occluded = occluded_fraction(page)
    assert 25 < occluded < 40  # the dog's side of the photo

    # the mask survives a layer change (no new canvas, no lost drawing)
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowLeft")
    page.get_by_text("block7a_project_bn · 7×7").first.wait_for(timeout=60_000)
    wait_for_fraction(page, lambda f: f == occluded)
    assert dog_row_probs(page)[1] < dog_row_probs(page)[0]
    page.screenshot(path=str(ARTIFACTS / "occlude-layer-changed.png"), full_page=True)

    # a new photo gets a fresh canvas
    page.get_by_label("Sample photo", exact=True).first.click()
    page.get_by_role("option", name="Espresso cup").click()
    wait_for_fraction(page, lambda f: f == 0.0)


def occluded_fraction(pg) -> float:
    text = pg.get_by_text(re.compile(r"of the photo occluded")).first.inner_text()
    return float(re.search(r"([\d.]+)% of the photo occluded", text).group(1))


def wait_for_fraction(pg, ok, timeout=60):
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline:
        try:
            seen = occluded_fraction(pg)
            if ok(seen):
                return seen
        except Exception:  # noqa: BLE001 - the page is re-running; read again
            pass
        time.sleep(0.5)
    raise AssertionError(f"occluded fraction stayed {seen}")
