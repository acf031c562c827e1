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
The load test (``tests/e2e/test_load.py``) drives the same :class:`Server` with eight sessions at once.
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]

# what the main area shows: its text and the end of every picture's address (a data URL's end is its pixels')
FINGERPRINT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return '';
  return main.innerText + '|' + [...main.querySelectorAll('img')].map(i => i.src.length + ':' + i.src.slice(-80)).join('|');
}"""
# set before an interaction: window.__ran becomes true once the script runs again. The frontend may never
# draw a quick run's "running" state (it can get the start and the end of a run at once), so what the main
# area showed is kept too: a run that changed it counts as run.
WATCH_JS = """() => {
  window.__ran = false;
  window.__before = (""" + FINGERPRINT_JS + """)();
  const el = document.querySelector('[data-test-script-state]');
  if (!el) return;
  if (window.__obs) window.__obs.disconnect();
  window.__obs = new MutationObserver((records) => {
    for (const r of records) {
      if (r.oldValue === 'running' || el.getAttribute('data-test-script-state') === 'running') window.__ran = true;
    }
  });
  window.__obs.observe(el, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
}"""
# idle: the script is not running and the page's pictures have all arrived (every page here shows some)
IDLE_JS = """() => {
  const el = document.querySelector('[data-test-script-state]');
  const imgs = [...document.querySelectorAll('[data-testid="stMain"] img')];
  return !!el && el.getAttribute('data-test-script-state') === 'notRunning'
    && imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""
# settled: the script has run since the interaction (see WATCH_JS), and the page is idle again
SETTLED_JS = ("() => (window.__ran === true || (" + FINGERPRINT_JS + ")() !== window.__before) && ("
              + IDLE_JS + ")()")


def chromium_path() -> str | None:
    """Debian's Chromium (``make browser`` installs it), or None."""
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def unavailable() -> str | None:
    """Why the browser measurements cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the dev tools (make install-dev: playwright)"
    if chromium_path() is None:
        return "needs Debian's chromium (make browser)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free local port, as ``make run`` starts it.

    Use as a context manager; ``url``, ``pid``, :meth:`cpu_s` and :meth:`peak_mb` read the server.
    """

    def __init__(self, log_path: Path | None = None, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def __enter__(self):
        log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        started = time.perf_counter()
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                self.start_s = time.perf_counter() - started
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("streamlit did not start within 120 s")

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_s(self) -> float:
        """The server's CPU time so far (user + system, seconds)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024

    def peak_mb(self) -> float:
        """The server's peak resident memory (VmHWM)."""
        return _status_kb(self.pid, "VmHWM") / 1024


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


# what a page that never settles is waiting for (for the error message)
STATE_JS = """() => {
  const el = document.querySelector('[data-test-script-state]');
  const imgs = [...document.querySelectorAll('[data-testid="stMain"] img')];
  return {script: el ? el.getAttribute('data-test-script-state') : null, ran: window.__ran === true,
          changed: (""" + FINGERPRINT_JS + """)() !== window.__before,
          pictures: imgs.length, unloaded: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length};
}"""


def wait_settled(page, timeout_s: float = 60) -> None:
    """Wait until the script has run since :func:`arm` and the page is complete; a TimeoutError that says
    what the page was waiting for otherwise."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(SETTLED_JS, timeout=timeout_s * 1000, polling=50)
    except PlaywrightTimeout:
        state = page.evaluate(STATE_JS)
        raise TimeoutError(f"the page did not settle within {timeout_s:.0f} s: script {state['script']}, "
                           f"{'ran' if state['ran'] else 'did not run'} since the interaction, the main area "
                           f"{'changed' if state['changed'] else 'did not change'}, "
                           f"{state['unloaded']} of {state['pictures']} pictures not loaded") from None


def arm(page) -> None:
    page.evaluate(WATCH_JS)


def wait_idle(page, timeout_s: float = 180) -> None:
    page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000, polling=50)


def open_view(page, url: str, text: str = "Explaining", timeout_s: float = 180) -> None:
    """Open ``url`` and wait until ``text`` shows and the page is idle."""
    page.goto(url, timeout=timeout_s * 1000)
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)
    wait_idle(page, timeout_s)


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
