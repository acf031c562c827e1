"""Real-browser checks of the layout a first-time student tripped over (issue 22, items 3, 11 and 14): one
`streamlit run` server and one headless Chromium (1400 px wide) for the whole module.

- Occlude: the drawing tool's four options sit on one line; the change labels of the before/after chart start
  beside the longer bar of their class, never on a bar; the canvas's toolbar, shown on hover above the canvas,
  leaves the Brush size slider above it whole.
- Measure: the canvas's toolbar, shown on hover above the canvas, leaves the caption above it readable; the
  deletion/insertion chart's legend draws each curve's line in its own dash.
Screenshots go to artifacts/e2e/ (first-user-*.png).
"""
from tests.e2e.browser import ARTIFACTS, canvas_box, wait_idle

# the option labels of the radio named `name`: their boxes and how many line boxes their text takes
RADIO_JS = """(name) => {
  const w = [...document.querySelectorAll('[data-testid="stRadio"]')]
    .find(e => e.querySelector('[data-testid="stWidgetLabel"]')?.innerText.trim() === name);
  if (!w) return null;
  return [...w.querySelectorAll('[role="radiogroup"] label')].map(l => {
    const r = l.getBoundingClientRect(), walk = document.createTreeWalker(l, NodeFilter.SHOW_TEXT), lines = new Set();
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {  // the line boxes of the option's text
      if (!t.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(t);
      [...range.getClientRects()].filter(c => c.width > 0).forEach(c => lines.add(Math.round(c.top)));
    }
    return {text: l.innerText.trim(), top: r.top, height: r.height, lines: lines.size};
  });
}"""
# the bars and the text marks of the first Vega chart whose legend names `legend` (screen boxes)
MARKS_JS = """(legend) => {
  const svg = [...document.querySelectorAll('[data-testid="stVegaLiteChart"] svg')]
    .find(s => [...s.querySelectorAll('g.role-legend')].some(g => (g.getAttribute('aria-label') || '').includes(legend)));
  if (!svg) return null;
  const box = e => { const r = e.getBoundingClientRect(); return {l: r.left, r: r.right, t: r.top, b: r.bottom}; };
  return {bars: [...svg.querySelectorAll('g.mark-rect.role-mark path')].map(box).filter(b => b.r - b.l > 0.5),
          labels: [...svg.querySelectorAll('g.mark-text.role-mark text')].map(e => ({text: e.textContent, ...box(e)}))};
}"""
# the symbols of the legend for strokeDash in the first chart that has one: their drawn stroke
DASH_LEGEND_JS = """() => {
  const g = [...document.querySelectorAll('[data-testid="stVegaLiteChart"] g.role-legend')]
    .find(e => /for strokeDash/.test(e.getAttribute('aria-label') || ''));
  if (!g) return null;
  return [...g.querySelectorAll('g.role-legend-entry .role-legend-symbol path')].map(p => {
    const s = getComputedStyle(p), r = p.getBoundingClientRect();
    return {dash: p.getAttribute('stroke-dasharray'), stroke: s.stroke, width: parseFloat(s.strokeWidth),
            opacity: parseFloat(s.opacity) * parseFloat(s.strokeOpacity), length: r.width};
  });
}"""

SERVER_LOG = "e2e-first-user-streamlit.log"  # the module's server and page: tests/e2e/conftest.py


def hover_toolbar(pg) -> dict:
    """The box of the canvas's toolbar card, shown with the mouse over the canvas (measured where it shows:
    above the canvas)."""
    c = canvas_box(pg)
    pg.mouse.move(c["x"] + c["width"] / 2, c["y"] + c["height"] / 2)  # the toolbar shows while the mouse is over
    toolbar = pg.locator(".dc-toolbar").first  # inside the component's shadow root: Playwright's CSS pierces it
    for _ in range(40):
        if toolbar.evaluate("e => getComputedStyle(e).opacity") == "1":
            break
        pg.wait_for_timeout(100)
    pg.wait_for_timeout(400)  # its move up (0.1 s after a 0.1 s delay) has ended
    assert toolbar.evaluate("e => getComputedStyle(e).opacity") == "1"
    card = pg.locator(".dc-toolbar-card").first.bounding_box()
    assert card["y"] + card["height"] <= c["y"] + 1, (card, c)
    return card


def overlap(a: dict, b: dict) -> float:
    """The area two {x, y, width, height} boxes share (0 when apart or touching)."""
    w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(0.0, w) * max(0.0, h)


def test_occlude_tools_fit_one_line_and_change_labels_sit_beside_the_bars(server, page):
    page.goto(server + "/occlude", timeout=120_000)
    page.locator("table tr", has_text="German Shepherd Dog [235]").first.wait_for(timeout=180_000)
    wait_idle(page)
    options = page.evaluate(RADIO_JS, "Tool")
    assert [o["text"] for o in options] == ["Rectangle", "Circle", "Polygon", "Brush"]
    assert all(o["lines"] == 1 for o in options), options  # no option's text wraps
    assert max(o["top"] for o in options) - min(o["top"] for o in options) < 1, options  # one row, Brush included
    assert max(o["height"] for o in options) < 1.5 * min(o["height"] for o in options), options

    page.get_by_text("How the top-k moved").first.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    marks = page.evaluate(MARKS_JS, "original, occluded")
    page.screenshot(path=str(ARTIFACTS / "first-user-occlude.png"))
    assert marks and len(marks["labels"]) >= 5 and len(marks["bars"]) >= 2 * len(marks["labels"]) - 1, marks
    for lab in marks["labels"]:
        assert lab["text"].endswith(" pts")  # percentage points, as the headline and the table say
        row = [b for b in marks["bars"] if b["b"] > lab["t"] - 3 and b["t"] < lab["b"] + 3]  # its class's bars
        assert row, lab
        end = max(b["r"] for b in row)
        assert end + 1 <= lab["l"] <= end + 12, (lab, row)  # beside the longer bar's end
        for b in marks["bars"]:
            assert min(b["r"], lab["r"]) <= max(b["l"], lab["l"]) or min(b["b"], lab["b"]) <= max(b["t"], lab["t"]), \
                (lab, b)  # on no bar


def test_occlude_toolbar_leaves_the_brush_size_slider(server, page):
    page.goto(server + "/occlude", timeout=120_000)
    page.locator("table tr", has_text="German Shepherd Dog [235]").first.wait_for(timeout=180_000)
    wait_idle(page)
    card = hover_toolbar(page)
    slider = page.locator('[data-testid="stSlider"]', has_text="Brush size").first.bounding_box()
    page.screenshot(path=str(ARTIFACTS / "first-user-occlude-toolbar.png"))
    assert overlap(card, slider) == 0, (card, slider)


def test_measure_toolbar_leaves_the_caption_and_the_legend_shows_each_curves_dash(server, page):
    page.goto(server + "/measure", timeout=120_000)
    page.get_by_text("Draw or upload the object's box").first.wait_for(timeout=180_000)
    wait_idle(page)
    caption = page.locator('[data-testid="stCaptionContainer"]', has_text="Draw the object's box(es)").first
    card = hover_toolbar(page)
    cap = caption.bounding_box()
    page.screenshot(path=str(ARTIFACTS / "first-user-measure-toolbar.png"))
    assert overlap(card, cap) == 0, (card, cap)
    # the whole photo is on screen: the canvas is no wider than its column (it was 560 px in a 462-px column,
    # the dog's head cut off)
    canvas = canvas_box(page)
    column = page.locator("[data-testid=\"stColumn\"]").filter(has=page.locator("canvas.upper-canvas")).last.bounding_box()
    assert canvas["x"] + canvas["width"] <= column["x"] + column["width"] + 1, (canvas, column)

    page.mouse.move(5, 5)
    page.get_by_role("slider", name="Steps").focus()
    page.keyboard.press("Home")  # 5 steps: the legend does not depend on them
    page.get_by_text("Compute deletion and insertion curves (4 maps)").first.wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("button", name="Compute deletion and insertion curves (4 maps)").click()
    page.get_by_text("deletion AUC (low = good)").first.wait_for(timeout=180_000)
    wait_idle(page)
    page.wait_for_function(DASH_LEGEND_JS, timeout=60_000)
    symbols = page.evaluate(DASH_LEGEND_JS)
    page.locator('[data-testid="stVegaLiteChart"]').last.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "first-user-measure-curves.png"))
    assert len(symbols) == 2, symbols
    for s in symbols:  # a line drawn: a visible stroke, long enough to show a dash
        assert s["stroke"] not in ("none", "transparent") and not s["stroke"].endswith(", 0)"), symbols
        assert s["width"] >= 1 and s["opacity"] > 0.5 and s["length"] >= 15, symbols

    def period(dash):
        return [float(v) for v in (dash or "").replace(",", " ").split()]

    solid, dashed = (period(s["dash"]) for s in symbols)
    assert solid != dashed, symbols
    assert not solid or solid[1::2] == [0.0] * len(solid[1::2]), symbols  # deletion: solid (no gaps)
    assert any(g > 0 for g in dashed[1::2]), symbols  # insertion: gaps, a dashed line
