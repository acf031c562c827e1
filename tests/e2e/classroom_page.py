"""What the classroom test (``test_classroom_load.py``) does in one participant's or the instructor's page: the
JavaScript it reads them with, and one step of a participant (join, the quiz, the next exercise, an answer, a
submit timed to its feedback). A participant here is the test's ``Learner``: its nickname, answers, and the dicts
``times`` (step → seconds), ``clicked`` (submit → when) and ``shown`` (submit → the feedback's alert)."""
from __future__ import annotations

import re
import time

TIMEOUT_MS = 180_000  # one step of 30 pages at once on 2 cores; generous, it is not a timing assertion

# idle: the script is not running, no element is still a skeleton, and every picture of the main area has arrived
IDLE_JS = """() => {
  const el = document.querySelector('[data-test-script-state]');
  const imgs = [...document.querySelectorAll('[data-testid="stMain"] img')];
  return !!el && el.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stMain"] [data-testid="stSkeleton"]')
    && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""
# the first alert of the main area: its kind (Success, Warning, Info, Error) and text
ALERT_JS = """() => {
  const a = document.querySelector('[data-testid="stMain"] [data-testid^="stAlertContent"]');
  return a ? {kind: a.dataset.testid.slice(14), text: a.innerText} : null;
}"""
# what a page shows: its whole text, its exceptions, and any bold/italic/link element (a nickname drawn as HTML or
# Markdown would make one)
READ_JS = """() => ({
  text: document.body.innerText,
  exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText.slice(0, 300)),
  styled: [...document.querySelectorAll('[data-testid="stMain"] b, [data-testid="stMain"] i, [data-testid="stMain"] a')]
    .map(e => e.textContent)
})"""

# the instructor's table as the page draws it: the data grid is a canvas, with an accessible table of the rows in
# view beside it (header and cells by column index)
GRID_JS = """() => {
  const t = document.querySelector('[data-testid="stDataFrame"] table[role="grid"]');
  if (!t) return null;
  const cells = (r, sel) => Object.fromEntries([...r.querySelectorAll(sel)]
    .map(c => [c.getAttribute('aria-colindex'), c.innerText]));
  return {head: cells(t.querySelector('thead tr'), 'th'), count: +t.getAttribute('aria-rowcount'),
          rows: [...t.querySelectorAll('tbody tr')].map(r => [r.getAttribute('aria-rowindex'), cells(r, 'td')])};
}"""


async def idle(pg) -> None:
    await pg.wait_for_timeout(250)  # the run a click asked for has begun
    await pg.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS, polling=100)


async def join(le, pg, url: str) -> None:
    t0 = time.perf_counter()
    await pg.goto(url, timeout=TIMEOUT_MS)
    box = pg.get_by_label("Nickname")
    await box.wait_for(timeout=TIMEOUT_MS)
    le.times["open"] = time.perf_counter() - t0
    await box.fill(le.nickname)
    t0 = time.perf_counter()
    await pg.get_by_role("button", name="Join").click()
    await pg.get_by_text("You are in room").wait_for(timeout=TIMEOUT_MS)
    le.times["join"] = time.perf_counter() - t0
    await idle(pg)


async def answer_quiz(le, pg, lesson) -> None:
    radios = pg.locator('[data-testid="stMain"] [data-testid="stRadio"]')
    for j, q in enumerate(lesson.quiz):
        await radios.nth(j).locator('[data-testid="stRadioOption"]').nth(le.quiz[q.id]).click()
    await idle(pg)


async def submit(le, pg, name: str, button: str) -> None:
    """Click ``button`` and time it to the first alert of the main area (the feedback); keep what it says."""
    await pg.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS, polling=100)
    t0 = le.clicked[name] = time.perf_counter()
    await pg.get_by_role("button", name=button, exact=True).click()
    await pg.wait_for_function(ALERT_JS, timeout=TIMEOUT_MS, polling=20)
    le.times[name] = time.perf_counter() - t0
    le.shown[name] = await pg.evaluate(ALERT_JS)
    await idle(pg)


async def next_to(pg, step: int) -> None:
    """Next, until the page shows exercise ``step``."""
    heading = pg.get_by_role("heading", name=re.compile(rf"^Exercise {step} of \d+"))
    while not await heading.count():
        # clicked while a run is going, Next would still carry the step that run began with: wait for its end
        await pg.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS, polling=100)
        now = await pg.evaluate("() => document.querySelector('[data-testid=stMain] h2')?.innerText ?? ''")
        await pg.get_by_role("button", name="Next").click()
        await pg.wait_for_function("(t) => (document.querySelector('[data-testid=stMain] h2')?.innerText ?? '') "
                                   "!== t", arg=now, timeout=TIMEOUT_MS, polling=50)
    await idle(pg)


async def draw_box(le, pg) -> None:
    if le.box[0] == 0.0:  # the left edge from 25 % to 0 % by the keyboard, as a learner may
        thumb = pg.locator('[data-testid="stMain"] [data-testid="stSlider"]').first.locator("input[type=range]").first
        await thumb.focus()
        await thumb.press("Home")
        await pg.wait_for_timeout(600)  # the slider sends its value after a short pause
    await idle(pg)


async def choose(le, pg) -> None:
    await pg.locator('[data-testid="stMain"] [data-testid="stRadioOption"]').nth(le.choice).click()
    await idle(pg)


async def enter_value(le, pg) -> None:
    field_ = pg.get_by_label(re.compile(r"^Your answer"))
    await field_.fill(f"{le.value}")
    await field_.press("Enter")
    await idle(pg)


async def read_grid(pg, rows_at_most: int, need: set[str]) -> dict:
    """Every row of the instructor's table, scrolling its grid down and across (only the cells in view are in the
    page; the grid draws them a moment after a scroll, and redraws them at each of the page's refreshes, so it goes
    over the table again, up to six times, until every row has the columns ``need``): nickname → {column title: cell
    text}."""
    scroller = pg.locator('[data-testid="stDataFrame"] .dvn-scroller').first
    await scroller.wait_for(timeout=TIMEOUT_MS)
    await pg.locator('[data-testid="stDataFrame"] table[role="grid"] tbody tr').first.wait_for(
        state="attached", timeout=TIMEOUT_MS)
    rows: dict[str, dict] = {}
    for _ in range(6):
        await scroller.evaluate("e => { e.scrollTop = 0; }")
        for _ in range(4 * rows_at_most):
            for across in (0.0, 0.5, 1.0):
                await scroller.evaluate("(e, f) => { e.scrollLeft = f * (e.scrollWidth - e.clientWidth); }", across)
                await pg.wait_for_timeout(200)
                seen = await pg.evaluate(GRID_JS)
                for index, cells in seen["rows"]:
                    rows.setdefault(index, {}).update({seen["head"].get(i, f"column {i}"): t
                                                       for i, t in cells.items()})
            if await scroller.evaluate("e => e.scrollTop + e.clientHeight >= e.scrollHeight - 1"):
                break
            await scroller.evaluate("e => { e.scrollTop += e.clientHeight * 0.6; }")
        if len(rows) >= seen["count"] - 1 and all(need <= set(row) for row in rows.values()):
            break
    await scroller.evaluate("e => { e.scrollTop = 0; e.scrollLeft = 0; }")
    return {row.get("nickname"): row for row in rows.values()}
