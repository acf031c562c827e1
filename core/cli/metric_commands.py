"""``python -m core evaluate`` and ``python -m core sanity``: measuring explanations from the command line.

:func:`add_parsers` registers both commands on the main parser's sub-parsers; :data:`HANDLERS` maps their
names to the functions that run them (each returns the exit status; errors are one line, never a traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..safetext import printable

EVALUATE_HELP = """\
Measures maps against annotated boxes, per photo, then averages (see core/metrics/evaluation.py):
  loc_error      top-1 localisation error: wrong class, or IoU < 0.5 between the box of the map's largest
                 region above THRESHOLD x its max and every annotated box (over all photos)
  iou_mean       that best IoU, averaged over the photos whose top-1 is the box's class
  pointing       share of those photos where the map's maximum lies inside a box (pointing game)
  energy         share of the map's positive mass inside the boxes, over the same photos
  deletion_auc   area under the class probability as the map's top pixels are filled gray (RISE; low = good)
  insertion_auc  area as they are revealed on a blurred photo (RISE; high = good)
  avg_drop       mean of max(0, Y - O) / Y, O = probability on the photo times the map scaled to 0..1
  increase       share of photos where O > Y (Grad-CAM++ paper)
  road_morf      ROAD (Rong et al. 2022, as pytorch-grad-cam): mean change of the class probability when the
                 map's most relevant pixels are removed and imputed from their neighbours, at 10..90 % (low = good)
  road_lerf      the same, least relevant first (high = good)
  road           ROADCombined: (road_lerf - road_morf) / 2 (high = good); only with --metrics ...,road
Faithfulness figures use the box's class on every photo. Methods: every map method, plus the baselines
'random' (seeded noise on the layer's grid), 'centre' (a centred Gaussian, sigma = 1/4 of each side) and
'edges' (the photo's Sobel edges, smoothed: a map that never looks at the model).
Bad CSV rows and unreadable photos are reported one line each on stderr; the run goes on (exit status 1)."""


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {printable(msg)}", file=sys.stderr)
    return code


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parsers(sub, default_model: str) -> None:
    """Add ``evaluate`` and ``sanity`` to ``sub`` (the main parser's ``add_subparsers()``)."""
    from ..metrics.evaluation import DEFAULT_METRICS, METRICS, THRESHOLD
    from ..metrics.faithfulness import STEPS

    v = sub.add_parser("evaluate",
                       help="localisation, pointing, energy, deletion/insertion, drop, ROAD on images with boxes",
                       description=EVALUATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("folder", help="folder of images")
    v.add_argument("--boxes", default=None, metavar="CSV",
                   help="CSV file,class_index,x0,y0,x1,y1 in pixels (default: ../annotations.csv)")
    v.add_argument("--model", default=default_model, metavar="NAME|FILE", help="a zoo model or a trained .keras file")
    v.add_argument("--layer", default=None, help="explainable layer (default: the last)")
    v.add_argument("--methods", default="gradcam", help="comma-separated methods, plus random, centre and edges")
    v.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help=f"comma-separated, from {','.join(METRICS)} (default: all but road)")
    v.add_argument("--steps", type=int, default=STEPS, help="deletion/insertion steps")
    v.add_argument("--threshold", type=float, default=THRESHOLD, help="fraction of the map's max for the box")
    v.add_argument("--limit", type=int, default=None, help="only the first N photos (by name)")
    v.add_argument("--per-image", default=None, metavar="OUT.jsonl", help="one JSON line per photo and method")
    v.add_argument("--workers", type=int, default=None,
                   help="processes, each with its own engine (default 1); with --ray: Ray actors (default: the "
                        "cluster's CPUs, at most one per photo)")
    v.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run as a Ray Data pipeline, one engine per actor, same result (pip install -r "
                        "requirements-ray.txt); without ADDRESS a local Ray is started; put it after DIR")
    v.add_argument("--seed", type=int, default=0, help="for the random baseline")
    v.add_argument("--json", action="store_true", help="one JSON object")
    s = sub.add_parser("sanity", help="cascading randomisation of the model's weights (Adebayo et al. 2018)")
    s.add_argument("image", metavar="IMAGE")
    s.add_argument("--model", default=default_model, metavar="NAME|FILE", help="a zoo model or a trained .keras file")
    s.add_argument("--layer", default=None, help="explainable layer (default: the last)")
    s.add_argument("--method", default="gradcam", help="a method, or a baseline (random, centre, edges)")
    s.add_argument("--class", dest="class_index", type=int, default=None, metavar="IDX",
                   help="class to explain (default: the intact model's top-1)")
    s.add_argument("--seed", type=int, default=0, help="for the re-initialisation")
    s.add_argument("--final", action="store_true",
                   help="only the fully randomised model (every block at once): the cascade's last step, one map")
    s.add_argument("--json", action="store_true", help="one JSON object")


def _figure(v) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def cmd_evaluate(args) -> int:
    from .. import models
    from ..engine.sources import model_source, spec_for
    from ..metrics import evaluation

    folder = Path(args.folder)
    csv_path = Path(args.boxes) if args.boxes else folder.parent / "annotations.csv"
    if not folder.is_dir() or not csv_path.is_file():
        return _fail(f"need a folder of images and a boxes CSV (file,class_index,x0,y0,x1,y1); got {folder}, {csv_path}")
    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be at least 1")
    errors = []

    def report(msg):
        errors.append(msg)
        print(f"error: {msg}", file=sys.stderr, flush=True)

    methods, metrics = _csv_list(args.methods), _csv_list(args.metrics)
    if args.ray is not None:
        try:
            from ..metrics import distributed

            distributed.import_ray()
        except ImportError as exc:
            return _fail(str(exc))
    out = None
    try:
        evaluation.check(methods, metrics)
        source = model_source(args.model)  # a trained file is read here once (workers and Ray actors read it again)
        spec = spec_for(source)
        if args.layer and args.layer not in spec.layers:
            return _fail(f"unknown layer {args.layer!r} for {spec.name}; choose one of {', '.join(spec.layers)}")
        if args.per_image:
            try:
                out = open(args.per_image, "w")
            except OSError as exc:
                return _fail(f"cannot write {args.per_image}: {exc.strerror}")

        def write(rec):
            if out is not None:
                for m in methods:
                    out.write(json.dumps(evaluation.flat_record(rec, m)) + "\n")

        common = dict(model=args.model, methods=methods, metrics=metrics, layer=args.layer, threshold=args.threshold,
                      steps=args.steps, limit=args.limit, seed=args.seed, on_error=report, on_record=write)
        if args.ray is not None:
            result = distributed.evaluate_dataset_ray(folder, csv_path, address=args.ray or None,
                                                      actors=args.workers, **common)
        else:
            workers = 1 if args.workers is None else args.workers
            if workers == 1:
                common["model"] = source
            result = evaluation.evaluate_dataset(folder, csv_path, workers=workers, **common)
    except (ValueError, models.WeightsUnavailable) as exc:
        return _fail(str(exc).splitlines()[0])
    finally:
        if out is not None:
            out.close()
    first = "gradcam" if "gradcam" in methods else methods[0]
    if "loc_error" in result["methods"][first]:
        result["top1_loc_error"] = result["methods"][first]["loc_error"]
    result["model"] = spec.name
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{spec.name}: top-1 {result['top1']:.1%} on {result['images']} images; layer {result['layer']}, "
              f"threshold {result['threshold']}, {result['steps']} steps")
        fields = [f for f in evaluation.FIELDS if any(f in r for r in result["methods"].values())]
        print(f"{'method':15s}" + "".join(f"{f:>15s}" for f in fields))
        for m, r in result["methods"].items():
            print(f"{m:15s}" + "".join(f"{_figure(r.get(f)):>15s}" for f in fields))
    return 1 if errors else 0


def cmd_sanity(args) -> int:
    from .. import models
    from ..engine.sources import keras_model_for, model_source, spec_for
    from ..imaging import images
    from ..metrics import baselines, sanity
    from ..cam import methods

    try:
        source = model_source(args.model)  # a trained file is read once
        spec = spec_for(source)
        if args.layer and args.layer not in spec.layers:
            return _fail(f"unknown layer {args.layer!r} for {spec.name}; choose one of {', '.join(spec.layers)}")
        if args.method not in methods.names(every=True) + list(baselines.BASELINES):
            return _fail(f"unknown method {args.method!r}; choose one of "
                         f"{', '.join(methods.names(every=True) + list(baselines.BASELINES))}")
        if args.class_index is not None:
            spec.check_class(args.class_index)
        img = images.load_path(args.image)
        model = keras_model_for(source)
        result = sanity.cascade(spec, model, img.rgb, args.method, args.layer, args.class_index, args.seed,
                                final_only=args.final)
    except (images.ImageError, ValueError, models.WeightsUnavailable) as exc:
        return _fail(str(exc).splitlines()[0])
    record = {"image": args.image, "model": spec.name, "method": result.method, "layer": result.layer,
              "class_index": result.class_index, "steps": result.records()}
    if args.json:
        print(json.dumps(record))
    else:
        print(f"{args.image}: {result.method} at {result.layer}, class {result.class_index} "
              f"({spec.label(result.class_index)}); weights re-initialised "
              + ("all at once:" if args.final else "from the top block down:"))
        print(f"{'randomised from':18s}{'spearman':>10s}{'ssim':>10s}")
        for s in record["steps"]:
            print(f"{s['randomised_from']:18s}{s['spearman']:10.3f}{s['ssim']:10.3f}"
                  + ("  (map empty)" if s["empty"] else ""))
    return 0


HANDLERS = {"evaluate": cmd_evaluate, "sanity": cmd_sanity}


def main(argv=None) -> int:
    """``python -m core.cli.metric_commands …`` is ``python -m core …`` (the same parser and start-up)."""
    from .main import main as core_main

    return core_main(argv)


if __name__ == "__main__":
    sys.exit(main())
