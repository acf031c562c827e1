"""The app measured from outside: a real ``streamlit run`` server driven by headless Chromium (Playwright).

What a visitor waits for and what the shared server spends, read from ``/proc`` of the server process:

- ``first_paint_s`` / ``first_map_s``: a fresh server, from the first request to the page's title,
  sidebar and start-up message on screen, and to the first heatmap on screen (medians over a few fresh
  servers, each run's in ``first_paint_runs`` / ``first_map_runs``: the machine is noisy); the first request is sent
  as soon as the server answers on its port and a browser is up (``server_start_s``: from launching
  ``streamlit run`` to the port answering), the moment a visitor of a sleeping Community Cloud app arrives;
- ``session_cpu_s``: server CPU (user + system) for each new session that opens the default Explain
  view of a warm server (median);
- ``rerender_cpu_s``: server CPU for a layer, alpha or colormap change (median);
- ``server_peak_mb``: the server's peak resident memory.

Needs the dev tools (``playwright``) and Debian's ``chromium`` (``make browser``); without them it says so.
The server and the browser are :mod:`bench.browser`'s, which the load test (``tests/e2e/test_load.py``) also
drives, with eight sessions at once.
"""
from __future__ import annotations

import statistics
import time

from .browser import Server, arm, launch, open_view, unavailable, wait_idle, wait_settled


def settle_cpu(server: Server, quiet_s: float = 0.3, timeout_s: float = 5) -> float:
    """The server's CPU time once it has been idle for ``quiet_s`` (work after the page settled counts)."""
    deadline = time.time() + timeout_s
    last = server.cpu_s()
    while time.time() < deadline:
        time.sleep(quiet_s)
        now = server.cpu_s()
        if now - last < 0.01:
            return now
        last = now
    return last


def interact(server: Server, page, action) -> tuple[float, float]:
    """Run ``action()`` (a click, a key press) and return (seconds to a settled page, server CPU seconds)."""
    arm(page)
    cpu0, t0 = settle_cpu(server), time.perf_counter()
    action()
    try:
        wait_settled(page)
    except TimeoutError as exc:
        raise TimeoutError(f"after {getattr(action, '__name__', 'an interaction')}: {exc}") from None
    wall = time.perf_counter() - t0
    return wall, settle_cpu(server) - cpu0


def rerenders(page):
    """A layer change, an alpha change and a colormap change on the Explain page (none needs a network pass);
    each call changes the value (left and right in turn, the next colormap)."""
    turns = {"layer": 0, "alpha": 0, "colormap": 0}

    def blur():
        page.evaluate("() => document.activeElement && document.activeElement.blur()")

    def step(slider, name):
        blur()
        page.get_by_role("slider", name=slider).focus()
        page.keyboard.press(("ArrowLeft", "ArrowRight")[turns[name] % 2])
        turns[name] += 1

    def layer():
        step("Layer (early → late)", "layer")

    def alpha():
        step("Heatmap opacity (alpha)", "alpha")

    def colormap():
        blur()
        name = ("viridis", "magma", "jet")[turns["colormap"] % 3]
        page.get_by_label("Colormap").first.click()
        page.keyboard.type(name)
        page.get_by_role("option", name=name, exact=True).click()
        turns["colormap"] += 1

    return [layer, alpha, colormap]


def cold_start(server: Server, browser) -> tuple[float, float]:
    """(first paint, first map) in seconds: the first request to the fresh ``server``, from a new context."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    t0 = time.perf_counter()
    page.goto(server.url, timeout=180_000)
    page.get_by_text("Explain a prediction").first.wait_for(timeout=180_000)
    page.get_by_text("Grad-CAM Studio").first.wait_for(timeout=180_000)
    paint = time.perf_counter() - t0
    page.get_by_text("Explaining").first.wait_for(timeout=180_000)
    page.locator("img").first.wait_for(timeout=180_000)
    wait_idle(page)
    first_map = time.perf_counter() - t0
    page.context.close()
    return paint, first_map


def run(sessions: int = 5, changes: int = 3, cold_runs: int = 3) -> dict:
    """The figures of the module docstring; the cold-start figures are the medians over ``cold_runs`` fresh
    servers (each run's in ``first_paint_runs`` / ``first_map_runs``), the rest from the last of them."""
    why = unavailable()
    if why:
        return {"server": f"not measured: {why}"}
    from playwright.sync_api import sync_playwright

    out: dict = {}
    starts, paints, maps = [], [], []
    with sync_playwright() as p:
        for _ in range(cold_runs - 1):
            with Server() as server:
                browser = launch(p)  # a browser is up before the first request, as for the last server
                paint, first_map = cold_start(server, browser)
                browser.close()
            starts.append(server.start_s)
            paints.append(paint)
            maps.append(first_map)
        with Server() as server:
            browser = launch(p)
            paint, first_map = cold_start(server, browser)
            starts.append(server.start_s)
            paints.append(paint)
            maps.append(first_map)
            out["server_start_s"] = round(statistics.median(starts), 2)
            out["first_paint_s"] = round(statistics.median(paints), 2)
            out["first_map_s"] = round(statistics.median(maps), 2)
            out["first_paint_runs"] = [round(x, 2) for x in paints]
            out["first_map_runs"] = [round(x, 2) for x in maps]
            # warm: new sessions at the default view, one after the other
            cpu, wall = [], []
            for _ in range(sessions + 1):
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = ctx.new_page()
                c0, t0 = settle_cpu(server), time.perf_counter()
                open_view(page, server.url)
                wall.append(time.perf_counter() - t0)
                cpu.append(settle_cpu(server) - c0)
                ctx.close()
            cpu, wall = cpu[1:], wall[1:]  # the first warm session still pays one-time costs
            out["session_cpu_s"] = round(statistics.median(cpu), 3)
            out["session_wall_s"] = round(statistics.median(wall), 3)
            # rerenders in one session
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            open_view(page, server.url)
            rcpu, rwall = [], []
            actions = rerenders(page)
            for _ in range(changes):
                for action in actions:
                    w, c = interact(server, page, action)
                    rwall.append(w)
                    rcpu.append(c)
            out["rerender_cpu_s"] = round(statistics.median(rcpu), 3)
            out["rerender_wall_s"] = round(statistics.median(rwall), 3)
            out["server_peak_mb"] = round(server.peak_mb(), 1)
            browser.close()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
