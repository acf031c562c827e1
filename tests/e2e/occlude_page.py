"""What the load test reads from the Occlude page: JavaScript run in the page, and parsers of its text."""
from __future__ import annotations

import re

from tests.e2e.browser import IDLE_JS, SETTLED_JS

HEADLINE_RE = re.compile(r"^(?P<name>.+?) \(class (?P<cls>\d+)\): (?P<before>[\d.]+)% → (?P<after>[\d.]+)% "
                         r"\((?P<delta>[+\-−]?[\d.]+) points\) · (?P<frac>[\d.]+)% of the photo occluded")
# the Occlude headline's class and occluded fraction, read in the page (null while absent)
HEADLINE_JS = """() => {
  const p = [...document.querySelectorAll('[data-testid="stMain"] p')]
    .find(e => /of the photo occluded/.test(e.textContent));
  if (!p) return null;
  const m = p.textContent.match(/\\(class (\\d+)\\):.* ([\\d.]+)% of the photo occluded/);
  return m ? {cls: +m[1], frac: +m[2]} : null;
}"""
# idle (or settled), and the headline names `cls` with an occluded fraction that is (non-)zero as asked
READY_JS = ("(a) => { const h = (" + HEADLINE_JS + ")(); return !!h && h.cls === a.cls && (a.painted ? h.frac > 0 "
            ": h.frac === 0) && (a.settled ? (" + SETTLED_JS + ")() : (" + IDLE_JS + ")()); }")
# pictures in the main area that failed to load while the script is not running (they will not load any more)
BROKEN_JS = """() => {
  const el = document.querySelector('[data-test-script-state]');
  if (!el || el.getAttribute('data-test-script-state') !== 'notRunning') return [];
  return [...document.querySelectorAll('[data-testid="stMain"] img')]
    .filter(i => i.complete && i.naturalWidth === 0).map(i => i.src);
}"""
# what the drawing canvas holds: its size, and the bounds and count of its painted pixels (as the app thresholds them)
PAINTED_JS = """(c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0, x0 = c.width, x1 = -1, y0 = c.height, y1 = -1;
  for (let i = 3; i < d.length; i += 4) {
    if (d[i] < 48) continue;
    const k = (i - 3) / 4, x = k % c.width, y = (k - x) / c.width;
    n++; if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  return {width: c.width, height: c.height, n, x0, x1, y0, y1};
}"""
# the page's readings in one go: headline, before/after table rows, sidebar captions, exceptions
READ_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const p = [...main.querySelectorAll('p')].find(e => /of the photo occluded/.test(e.textContent));
  const rows = [...main.querySelectorAll('table tr')].map(r => [...r.querySelectorAll('th, td')]
    .map(c => c.innerText.trim()));
  const side = document.querySelector('[data-testid="stSidebar"]');
  const captions = side ? [...side.querySelectorAll('[data-testid="stCaptionContainer"]')].map(c => c.innerText) : [];
  const exceptions = [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText);
  return {headline: p ? p.textContent : null, rows, captions, exceptions};
}"""


def parse_headline(text: str | None) -> dict | None:
    m = HEADLINE_RE.search(text or "")
    if not m:
        return None
    return {"name": m["name"], "cls": int(m["cls"]), "before": float(m["before"]), "after": float(m["after"]),
            "frac": float(m["frac"])}


def row_probs(rows: list[list[str]], cls: int) -> tuple[float, float] | None:
    """(before, after) in % from the before/after table's row of class ``cls``."""
    for cells in rows:
        if cells and f"[{cls}]" in cells[0]:
            pcts = [float(c[:-1]) for c in cells[1:] if re.fullmatch(r"[\d.]+%", c)]
            if len(pcts) >= 2:
                return pcts[0], pcts[1]
    return None
