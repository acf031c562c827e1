"""The app's own memory while switching models: `streamlit run` driven by headless Chromium.

`python -m core bench --switch` measures the engines through the pool; this measures the whole
Streamlit server the way a visitor uses it. For every model whose weights are available (twice
round), it picks the model in the sidebar, then two sample photos, waits for each rerun to finish,
and prints the server's RSS and peak RSS (VmHWM) in MB. Needs the dev requirements (Playwright) and
Debian's chromium; set KERAS_HOME to use another Keras weights cache.

    .venv/bin/python tools/app_switch_memory.py [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from core import models
    from bench.browser import Server, launch

    steps = []
    with Server(env={"TF_CPP_MIN_LOG_LEVEL": "2"}) as server, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(server.url, timeout=120_000)

        def settle():
            time.sleep(1.0)  # let the rerun start, then wait until Streamlit's "running" widget is gone
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                   timeout=300_000)

        def choose(label: str, option: str):
            page.get_by_role("combobox", name=label, exact=True).click()
            page.get_by_role("option").filter(has_text=option).first.click()
            settle()

        page.get_by_text("Top-k predictions").first.wait_for(timeout=300_000)
        settle()
        rss, peak = round(server.rss_mb()), round(server.peak_mb())
        steps.append({"step": "start", "rss_mb": rss, "peak_mb": peak})
        names = [n for n, s in models.REGISTRY.items() if s.family == "lite" or s.weights_cached()]
        for r in range(args.rounds):
            for name in names:
                choose("Model", models.REGISTRY[name].title.split(" (")[0])  # the sidebar shows the short name
                choose("Sample photo", "Espresso cup")
                choose("Sample photo", "Cat and dog")
                shown = page.get_by_text(models.REGISTRY[name].title.split(" (")[0]).count() > 0
                errors = page.locator('[data-testid="stException"]').count()
                rss, peak = round(server.rss_mb()), round(server.peak_mb())
                steps.append({"step": f"{r + 1}:{name}", "rss_mb": rss, "peak_mb": peak,
                              "model_shown": shown, "exceptions": errors})
                print(json.dumps(steps[-1]), flush=True)
        browser.close()
    print(json.dumps({"peak_rss_mb": max(s["peak_mb"] for s in steps), "models": names, "rounds": args.rounds,
                      "target": {"peak_rss_mb": "<= 1200"}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
