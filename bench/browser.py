"""The app driven from outside: ``streamlit run app.py`` on a free port (:class:`Server`, which reads its CPU time
and memory from ``/proc``), Debian's headless Chromium through Playwright (:func:`launch`), and JavaScript that
tells when a page has run and settled (:func:`arm`, :func:`wait_settled`, :func:`wait_idle`).

The benchmark (:mod:`bench.server`), the real-browser tests' harness (``tests/e2e/browser.py``) and the tools
(``tools/soak.py``, ``tools/screenshots.py``) drive the app with these. Needs the dev tools (``playwright``) and
Debian's ``chromium`` (``make browser``); :func:`unavailable` says which is missing.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
