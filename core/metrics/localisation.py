"""Evaluation: top-1 accuracy and Grad-CAM localisation error on images with object boxes.

Localisation follows the ILSVRC/CAM protocol: threshold the upsampled map at a fraction of its
max, take the bounding box of the largest connected component, and count a hit when the class
is right and the box overlaps any ground-truth box with IoU ≥ 0.5 (top-1 localisation error).
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..cam import methods
from ..imaging import images, render


def read_boxes(csv_path) -> dict[str, tuple[int, list[tuple[float, float, float, float]]]]:
    """``file → (class_index, [boxes])`` from a CSV with columns file,class_index,x0,y0,x1,y1."""
    out: dict = defaultdict(lambda: [None, []])
    with open(csv_path, newline="") as fh:
        for r in csv.DictReader(fh):
            entry = out[r["file"]]
            entry[0] = int(r["class_index"])
            entry[1].append(tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1")))
    return {k: (v[0], v[1]) for k, v in out.items()}


def cam_box(cam_up: np.ndarray, threshold: float = 0.2) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the largest region above ``threshold``·max, or None if empty."""
    from scipy import ndimage

    if cam_up.max() <= 0:
        return None
    mask = cam_up >= threshold * cam_up.max()
    lab, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    ys, xs = np.nonzero(lab == int(np.argmax(sizes)) + 1)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def evaluate(engine, folder, csv_path, layer: str | None = None, threshold: float = 0.2, limit: int | None = None) -> dict:
    """Top-1 accuracy and top-1 localisation error of Grad-CAM on a folder of images with boxes."""
    layer = layer or engine.spec.default_layer
    boxes = read_boxes(csv_path)
    names = sorted(boxes)[:limit] if limit else sorted(boxes)
    correct = located = n = 0
    for name in names:
        cls, gt = boxes[name]
        img = images.load_path(Path(folder) / name)
        res = engine.run(img.rgb)
        n += 1
        if res.class_index != cls:
            continue
        correct += 1
        w, h = img.size
        box = cam_box(render.upsample(methods.gradcam(res.acts[layer], res.grads[layer]), w, h), threshold)
        if box is not None and max(iou(box, g) for g in gt) >= 0.5:
            located += 1
    return {"images": n, "top1": correct / n if n else 0.0, "top1_loc_error": 1 - located / n if n else 1.0,
            "layer": layer, "threshold": threshold}
