#!/usr/bin/env python3
"""The sanity check's final step for every method and baseline on the shared evaluation set's first photos.

``.venv/bin/python tools/sanity_table.py [--images 20] [--methods a,b,…] [--model NAME] [--layer NAME]
[--top-n 256] [--seed 0] [--out FILE.json]``

For each of the first N photos by name of the shared set (``bench.eval_dir()``: 400 ImageNet validation photos),
each method's map is computed on the intact model (for its top-1 class) and on the fully randomised one (every
block re-initialised, as :func:`core.metrics.sanity.cascade` ends: Glorot-uniform kernels, zero biases, seed
``--seed``), and compared by Spearman's rank correlation and SSIM (:func:`core.metrics.sanity.compare`). One
private engine serves the whole run: every photo's original maps first, then :func:`~core.metrics.sanity.randomise`
once, then every photo's maps again, so the weights are drawn once and are exactly the cascade's last step's.

Methods: default every registered method (``core.cam.methods.EVERY``, occlusion included) and the baselines
random, centre and edges, each with its default tunables, except Score-CAM, which uses the ``--top-n`` most
active channels (default 256, what the pages use; its default is all of the layer's channels).

Prints one JSON object (``per_image``: method → photo → {spearman, ssim, empty}; ``summary``: method →
{n, mean, min, max, ssim_mean, seconds}) and then a Markdown table of the Spearman correlations; ``--out`` also
writes the JSON to a file. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import eval_dir  # noqa: E402

TOP_N = 256


def photos(n: int) -> list[str]:
    """The first ``n`` photos of the shared set, by name."""
    from core.metrics import read_boxes

    folder = eval_dir()
    if not (folder / "annotations.csv").is_file():
        raise SystemExit(f"error: the shared evaluation set is not at {folder}: set GRADCAM_STUDIO_EVAL_DIR")
    return sorted(read_boxes(folder / "annotations.csv"))[:n]


def every_method() -> list[str]:
    from core.cam import methods
    from core.metrics import baselines

    return methods.names(every=True) + list(baselines.BASELINES)


def options_for(method: str, top_n: int) -> dict:
    return {"top_n": top_n} if method == "scorecam" else {}


def measure(files: list[str], names: list[str], model: str = "efficientnet_lite0", layer: str | None = None,
            top_n: int = TOP_N, seed: int = 0, log=print, folder: Path | None = None) -> dict:
    """The final step's Spearman and SSIM of every method on every photo (names in ``folder``/images, default
    the shared set's), and their summary (see the module)."""
    from core import models
    from core.imaging import images, render
    from core.metrics import sanity

    spec = models.get_spec(model)
    layer = layer or spec.default_layer
    engine = sanity.private_engine(spec, models.load_model(spec.name))
    seconds = {m: 0.0 for m in names}
    originals, classes = {}, {}

    def maps(f, rgb):
        out = {}
        for m in names:
            t = time.perf_counter()
            out[m] = sanity.map_of(engine, rgb, m, layer, classes[f], seed, options_for(m, top_n))
            seconds[m] += time.perf_counter() - t
        return out

    rgbs = {f: images.load_path((folder or eval_dir()) / "images" / f).rgb for f in files}
    for i, f in enumerate(files):
        classes[f] = engine.run_input(engine.prepare(rgbs[f])).class_index
        originals[f] = maps(f, rgbs[f])
        log(f"intact {i + 1}/{len(files)} {f}")
    blocks = sanity.randomise(engine, seed)
    per_image = {m: {} for m in names}
    for i, f in enumerate(files):
        for m, cam in maps(f, rgbs[f]).items():
            rho, ssim = sanity.compare(originals[f][m], cam, spec.input_size)
            per_image[m][f] = {"spearman": round(rho, 6), "ssim": round(ssim, 6), "empty": bool(render.is_empty(cam))}
        log(f"randomised {i + 1}/{len(files)} {f}")
    summary = {}
    for m in names:
        rho = np.array([r["spearman"] for r in per_image[m].values()])
        summary[m] = {"n": len(rho), "mean": round(float(rho.mean()), 4), "min": round(float(rho.min()), 4),
                      "max": round(float(rho.max()), 4),
                      "ssim_mean": round(float(np.mean([r["ssim"] for r in per_image[m].values()])), 4),
                      "seconds": round(seconds[m], 1)}
    return {"model": spec.name, "layer": layer, "seed": seed, "scorecam_top_n": top_n,
            "randomised_blocks": blocks, "images": files, "classes": classes, "per_image": per_image,
            "summary": summary}


def markdown(result: dict) -> str:
    """The summary as a Markdown table: method, photos, mean, min, max of the final Spearman, mean SSIM."""
    rows = ["| method | photos | mean ρ | min ρ | max ρ | mean SSIM |", "|---|---|---|---|---|---|"]
    for m, s in result["summary"].items():
        rows.append(f"| `{m}` | {s['n']} | {s['mean']:.3f} | {s['min']:.3f} | {s['max']:.3f} | {s['ssim_mean']:.3f} |")
    return "\n".join(rows).replace("-0.", "−0.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20, help="the first N photos by name (default 20)")
    p.add_argument("--methods", default=None, help="comma-separated (default: every method and baseline)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--layer", default=None, help="default: the model's last explainable layer")
    p.add_argument("--top-n", type=int, default=TOP_N, help="Score-CAM's channels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="the re-initialisation's seed (and the random baseline's)")
    p.add_argument("--out", default=None, metavar="FILE.json", help="also write the JSON here")
    args = p.parse_args(argv)
    names = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else every_method()
    unknown = sorted(set(names) - set(every_method()))
    if unknown or args.images < 1:
        print(f"error: unknown methods {', '.join(unknown)}" if unknown else "error: --images must be at least 1",
              file=sys.stderr)
        return 2
    result = measure(photos(args.images), names, args.model, args.layer, args.top_n, args.seed,
                     log=lambda msg: print(msg, file=sys.stderr, flush=True))
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print()
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
