"""Localisation: how well a map picks out the object, against annotated boxes.

Every function here takes a map already upsampled to the photo (``cam_up``, (H, W), any scale) and the
object's boxes ``(x0, y0, x1, y1)`` in the photo's pixels. Nothing here normalises the map except where
a threshold is a fraction of its maximum.

- :func:`cam_box` / :func:`iou` / :func:`best_iou`: the ILSVRC/CAM protocol. Threshold the map at a
  fraction of its maximum, take the bounding box of the largest connected component, and compare it to
  the boxes; a hit is IoU ≥ 0.5 (with the right class: the top-1 localisation error).
- :func:`iou_curve`: that IoU at many thresholds ("IoU" depends on a choice).
- :func:`pointing`: the pointing game (Zhang et al., ECCV 2016, without its 15-px tolerance): is the
  map's maximum inside a box?
- :func:`energy`: energy-based pointing (Wang et al., Score-CAM, 2020): the share of the map's positive
  mass inside the boxes.
- :func:`evaluate`: top-1 localisation error of Grad-CAM over a folder of photos with an annotations file
  (read by :func:`core.metrics.boxes.read_boxes`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cam import methods
from ..imaging import images, render
from .boxes import read_boxes


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


def best_iou(cam_up: np.ndarray, boxes, threshold: float = 0.2) -> float:
    """The best IoU between the map's box at ``threshold`` (:func:`cam_box`) and any of ``boxes``; 0 for an
    empty map."""
    box = cam_box(np.asarray(cam_up), threshold)
    return 0.0 if box is None else max(iou(box, g) for g in boxes)


def iou_curve(cam_up: np.ndarray, boxes, thresholds=None) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, best IoU at each): by default 0.05, 0.10, …, 0.95 of the map's maximum."""
    t = np.round(np.arange(1, 20) * 0.05, 2) if thresholds is None else np.asarray(thresholds, np.float64)
    return t, np.array([best_iou(cam_up, boxes, float(v)) for v in t])


def boxes_mask(boxes, width: int, height: int) -> np.ndarray:
    """(height, width) bool: pixels whose centre lies inside any box (boxes in pixel coordinates)."""
    m = np.zeros((height, width), bool)
    xc = np.arange(width) + 0.5
    yc = np.arange(height) + 0.5
    for x0, y0, x1, y1 in boxes:
        m |= ((yc >= y0) & (yc <= y1))[:, None] & ((xc >= x0) & (xc <= x1))[None, :]
    return m


def pointing(cam_up: np.ndarray, boxes) -> bool:
    """The pointing game: True when a pixel at the map's maximum lies inside a box (any of the pixels, where
    several share the maximum, as Quantus's ``PointingGame``). A map without positive values points nowhere."""
    c = np.nan_to_num(np.asarray(cam_up, np.float64))
    top = c.max()
    if top <= 0:
        return False
    inside = boxes_mask(boxes, c.shape[1], c.shape[0])
    return bool(inside[c == top].any())


def energy(cam_up: np.ndarray, boxes) -> float:
    """Energy-based pointing: Σ ReLU(map) inside the boxes / Σ ReLU(map); 0 for a map without positive mass."""
    c = np.maximum(np.nan_to_num(np.asarray(cam_up, np.float64)), 0.0)
    total = c.sum()
    if total <= 0:
        return 0.0
    return float(c[boxes_mask(boxes, c.shape[1], c.shape[0])].sum() / total)


def evaluate(engine, folder, csv_path, layer: str | None = None, threshold: float = 0.2, limit: int | None = None) -> dict:
    """Top-1 accuracy and top-1 localisation error of Grad-CAM on a folder of images with boxes
    (the short form of :func:`core.metrics.evaluation.evaluate_dataset`)."""
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
        cam_up = render.upsample(methods.gradcam(res.acts[layer], res.grads[layer]), w, h)
        if best_iou(cam_up, gt, threshold) >= 0.5:
            located += 1
    return {"images": n, "top1": correct / n if n else 0.0, "top1_loc_error": 1 - located / n if n else 1.0,
            "layer": layer, "threshold": threshold}
