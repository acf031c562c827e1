"""Real-browser checks of what a first-time student tripped over (issue 22, items 2, 7, 8 and 13): one
`streamlit run app.py` server and one headless Chromium (1400 px wide) for the whole module.

- Offline: every page asks only the app's own server for what it shows (no font server for the favicon).
- The sidebar's texts fit their boxes (the model's name is not cut off).
- Explain's top-k chart for two rows: a row per bar, tall enough that the class labels do not overlap, and the
  title says the real k.
- An uploaded photo follows the person to another page through the sidebar's navigation links; the URL then names
  no sample.
Screenshots go to artifacts/e2e/ (first-user-browser-*.png).
"""
import re
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.browser import ARTIFACTS, arm, wait_idle, wait_settled

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PAGES = {"": "Explain a prediction", "occlude": "Occlusion studio", "compare": "Compare methods",
         "measure": "Measure", "learn": "Learn", "train": "Train on your own classes"}  # path → its title's start
LOCAL = {"127.0.0.1", "localhost"}

# every address the page points at (icons, stylesheets, scripts, pictures, frames) and every resource it loaded:
# headless Chromium does not fetch a favicon, so the icon's address is read from the document
ADDRESSES_JS = """() => [
  ...[...document.querySelectorAll('link[href]')].map(e => e.href),
  ...[...document.querySelectorAll('img[src], script[src], iframe[src], source[src], video[src], audio[src]')].map(e => e.src),
  ...performance.getEntriesByType('resource').map(e => e.name),
]"""
# sidebar text cut off: a text box (a selectbox shows its value in one) or an element with text of its own that is
# wider inside than its box, or that reaches past the sidebar's right edge
CLIPPED_JS = """() => {
  const side = document.querySelector('[data-testid="stSidebarContent"]') || document.querySelector('[data-testid="stSidebar"]');
  const right = side.getBoundingClientRect().right;
  const out = [];
  for (const e of side.querySelectorAll('*')) {
    const own = e.matches('input[type="text"]') ? e.value
      : [...e.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim()).join(' ');
    if (!own || e.getClientRects().length === 0) continue;
    const r = e.getBoundingClientRect();
    if ((e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1) || r.right > right + 1)
      out.push({text: own, scroll: e.scrollWidth, client: e.clientWidth, right: r.right, sidebar: right});
  }
  return out;
}"""
# the top-k chart (the Vega chart below the "Top-… predictions" heading): its y labels and bars (screen boxes)
TOPK_JS = """() => {
  const svg = [...document.querySelectorAll('[data-testid="stVegaLiteChart"] svg')]
    .find(s => [...s.querySelectorAll('g.role-axis-label text')].some(t => /\\[\\d+\\]$/.test(t.textContent)));
  if (!svg) return null;
  const box = e => { const r = e.getBoundingClientRect(); return {t: r.top, b: r.bottom, l: r.left, r: r.right}; };
  return {labels: [...svg.querySelectorAll('g.role-axis-label text')].filter(t => /\\[\\d+\\]$/.test(t.textContent))
            .map(t => ({text: t.textContent, ...box(t)})),
          bars: [...svg.querySelectorAll('g.mark-rect.role-mark path')].map(box).filter(b => b.b - b.t > 0.5)};
}"""
HEADLINE_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stMarkdownContainer"]')]
  .map(e => e.innerText).find(t => /^Explaining |of the photo occluded/.test(t)) || null"""

SERVER_LOG = "e2e-first-user-browser-streamlit.log"  # the module's server and page: tests/e2e/conftest.py


def wait_page(pg, title: str, timeout_s: float = 240) -> None:
    """Until the page's title shows and its script has stopped running (for half a second)."""
    pg.get_by_role("heading", name=re.compile("^" + re.escape(title))).first.wait_for(timeout=timeout_s * 1000)
    pg.wait_for_function("""() => {
      const el = document.querySelector('[data-test-script-state]');
      const idle = !!el && el.getAttribute('data-test-script-state') === 'notRunning';
      if (!idle) { window.__idleSince = null; return false; }
      window.__idleSince = window.__idleSince || performance.now();
      return performance.now() - window.__idleSince > 500;
    }""", timeout=timeout_s * 1000, polling=50)


def assert_address(pg, path: str, timeout_s: float = 30) -> None:
    """The address ends on ``path`` with a query that names no sample, read in the page (the document's own
    location) and waited for up to ``timeout_s``: the view can be drawn a moment before the address that names it
    is read back (``page.url`` once still named the sample just after the upload's headline showed). A failure
    says what the address was."""
    try:
        pg.wait_for_function(f"""() => location.pathname.endsWith({path!r})
          && !new URLSearchParams(location.search).has('sample')""", timeout=timeout_s * 1000, polling=100)
    except PlaywrightTimeout:
        raise AssertionError(f"the address {pg.evaluate('location.href')} (Playwright: {pg.url}) is not {path} "
                             f"without a sample after {timeout_s:.0f} s") from None


def host(url: str) -> str | None:
    """The host an address goes to (None for one that goes nowhere: data:, blob:, about:)."""
    parts = urlparse(url)
    return parts.hostname if parts.scheme in ("http", "https", "ws", "wss") else None


def test_no_page_asks_anything_of_another_host(server, page):
    """Offline, nothing the app shows may need the internet: each page loads from the app's server alone."""
    asked = []

    def note(request_or_socket):
        asked.append(request_or_socket.url)

    page.on("request", note)
    page.on("websocket", note)
    try:
        for path, title in PAGES.items():
            page.goto(f"{server}/{path}", timeout=240_000)
            wait_page(page, title)
            asked.extend(page.evaluate(ADDRESSES_JS))
            page.screenshot(path=str(ARTIFACTS / f"first-user-browser-{path or 'explain'}.png"))
    finally:
        page.remove_listener("request", note)
        page.remove_listener("websocket", note)
    elsewhere = sorted({u for u in asked if host(u) is not None and host(u) not in LOCAL})
    assert not elsewhere, elsewhere
    assert any(host(u) in LOCAL for u in asked)  # the recording works: the app's own files were asked for
    icon = page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\")?.href")
    assert icon and host(icon) in LOCAL | {None}, icon


def test_the_sidebars_texts_fit_their_boxes(server, page):
    page.goto(server + "/", timeout=240_000)
    wait_page(page, PAGES[""])
    wait_idle(page)
    shown = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.locator("input").input_value()
    assert "EfficientNet-Lite0" in shown  # the model's name is there to read, whole
    page.screenshot(path=str(ARTIFACTS / "first-user-browser-sidebar.png"), clip={"x": 0, "y": 0, "width": 320,
                                                                                    "height": 1000})
    assert page.evaluate(CLIPPED_JS) == []


def test_a_top_2_chart_has_room_for_each_row(server, page):
    page.goto(server + "/", timeout=240_000)
    wait_page(page, PAGES[""])
    wait_idle(page)
    thumb = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]', has_text="Top-k predictions") \
        .get_by_role("slider")
    for key in ("Home", "ArrowRight"):  # 1, then 2
        arm(page)
        thumb.focus()
        page.keyboard.press(key)
        wait_settled(page, 120)
    page.get_by_role("heading", name="Top-2 predictions").wait_for(timeout=60_000)
    chart = page.wait_for_function("() => { const c = (" + TOPK_JS + ")(); return c && c.labels.length === 2 ? c : null; }",
                                   timeout=60_000).json_value()
    page.locator('[data-testid="stVegaLiteChart"]').first.screenshot(path=str(ARTIFACTS / "first-user-browser-top2.png"))
    (a, b), bars = sorted(chart["labels"], key=lambda e: e["t"]), chart["bars"]
    assert a["b"] <= b["t"], chart["labels"]  # the two class labels do not overlap
    assert len(bars) == 2 and all(bar["b"] - bar["t"] >= 20 for bar in bars), bars  # a bar a person can see


def test_an_uploaded_photo_follows_to_another_page(server, page):
    page.goto(server + "/", timeout=240_000)
    wait_page(page, PAGES[""])
    wait_idle(page)
    arm(page)
    page.locator('[data-testid="stSidebar"] input[type=file]').set_input_files(str(ASSETS / "dog.jpg"))
    wait_settled(page, 120)
    page.wait_for_function(HEADLINE_JS + "()?.includes('class 235')", timeout=60_000)  # the German shepherd
    assert_address(page, "/")
    page.locator('[data-testid="stSidebarNav"] a', has_text="Occlude").click()
    wait_page(page, PAGES["occlude"])
    wait_idle(page)
    summary = page.evaluate(HEADLINE_JS)
    page.screenshot(path=str(ARTIFACTS / "first-user-browser-occlude-upload.png"))
    assert summary and "(class 235)" in summary, summary  # the upload, not a sample
    assert_address(page, "/occlude")
    assert page.locator('[data-testid="stSidebar"]', has_text="dog.jpg").count()  # it says the upload is in use
