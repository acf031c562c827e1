"""Occlusion: masks → perturbed photos, and sliding-window occlusion sensitivity.

Masks are boolean arrays at the **original photo's** resolution (True = occluded). A mask drawn
at another size (the canvas, a mask file) is mapped back by pixel centres: original pixel (x, y)
takes the value of the mask pixel under its centre, so any aspect ratio and scale map exactly.
"""
from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from ..imaging import images

FILLS = ("gray", "black", "blur", "noise", "mean")
GRAY = 128
BATCH = 16  # perturbed copies per forward pass: as fast as 32 here, and peak memory stays under 1.1 GB


class MaskError(ValueError):
    """A mask that cannot be used; ``str(err)`` is one sentence for the user."""


def resample_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Map a 2-D mask of any size onto a width×height grid by pixel centres (exact, no blur)."""
    m = np.asarray(mask, bool)
    if m.ndim != 2 or m.size == 0:
        raise MaskError("the mask must be a non-empty 2-D array")
    mh, mw = m.shape
    if (mh, mw) == (height, width):
        return m.copy()
    ys = np.minimum(((np.arange(height) + 0.5) * mh / height).astype(np.int64), mh - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * mw / width).astype(np.int64), mw - 1)
    return m[ys[:, None], xs[None, :]]


def canvas_mask(rgba: np.ndarray | None, width: int, height: int, alpha_threshold: int = 48) -> np.ndarray:
    """The occlusion mask at the photo's size from the canvas's RGBA rendering (painted = alpha ≥ threshold).

    The canvas renders every object type (rectangles, circles, polygons, brush strokes, moved or
    rotated ones) exactly as the user sees it; anti-aliased edge pixels below the threshold do not count.
    """
    if rgba is None:
        return np.zeros((height, width), bool)
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] != 4:
        raise MaskError("the canvas did not return RGBA image data")
    return resample_mask(a[..., 3] >= alpha_threshold, width, height)


def load_mask(data: bytes, width: int, height: int, name: str = "mask") -> np.ndarray:
    """A mask image file (any size and format) scaled to the photo; non-zero = occluded.

    Fully transparent pixels never occlude. Raises :class:`MaskError` with one sentence.
    """
    try:
        im = Image.open(io.BytesIO(data))
        im.seek(0)
        if im.size[0] * im.size[1] > images.MAX_PIXELS:
            raise MaskError(f"{name}: the mask has too many pixels.")
        im.load()
    except MaskError:
        raise
    except Exception:  # noqa: BLE001 - any decoding failure is one sentence
        raise MaskError(f"{name}: not an image file that can be used as a mask.") from None
    if "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        m = (rgba[..., 3] > 0) & (rgba[..., :3].max(axis=2) > 0)
    elif im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        m = np.nan_to_num(np.asarray(im, np.float64)) != 0
    else:
        a = np.asarray(im.convert("RGB"))
        m = a.max(axis=2) > 0
    return resample_mask(m, width, height)


def apply_fill(rgb: np.ndarray, mask: np.ndarray, fill: str = "gray", seed: int = 0) -> np.ndarray:
    """A new photo with the masked pixels replaced; the original is not modified.

    Args:
        rgb: (H, W, 3) uint8 photo.
        mask: (H, W) bool, True = occluded.
        fill: 'gray' (128, the seeds' "graying out"), 'black', 'blur' (a strong Gaussian blur of the
            photo), 'noise' (uniform random colours, seeded), or 'mean' (the photo's mean colour).
        seed: for 'noise'.
    """
    if fill not in FILLS:
        raise MaskError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")
    src = np.asarray(rgb, np.uint8)
    m = np.asarray(mask, bool)
    if m.shape != src.shape[:2]:
        raise MaskError(f"mask {m.shape} does not match the photo {src.shape[:2]}")
    out = src.copy()
    if not m.any():
        return out
    if fill == "gray":
        out[m] = GRAY
    elif fill == "black":
        out[m] = 0
    elif fill == "mean":
        out[m] = np.rint(src.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    elif fill == "noise":
        out[m] = np.random.default_rng(seed).integers(0, 256, (int(m.sum()), 3), dtype=np.uint8)
    else:  # blur
        radius = max(4.0, 0.04 * max(src.shape[:2]))
        blurred = np.asarray(Image.fromarray(src).filter(ImageFilter.GaussianBlur(radius)), np.uint8)
        out[m] = blurred[m]
    return out


def top_fraction_mask(cam_up: np.ndarray, percent: float) -> np.ndarray:
    """Pixels where an (upsampled) map is in its top ``percent`` % — only where it is positive."""
    c = np.nan_to_num(np.asarray(cam_up, np.float64))
    pos = c > 0
    if not pos.any() or percent <= 0:
        return np.zeros(c.shape, bool)
    k = int(math.ceil(c.size * min(percent, 100.0) / 100.0))
    threshold = np.partition(c.ravel(), c.size - k)[c.size - k]
    return pos & (c >= threshold)


AUTO_ACTIONS = ("remove", "keep")


def occlude_hottest(rgb: np.ndarray, cam_up: np.ndarray, percent: float, action: str = "remove",
                    fill: str = "gray") -> tuple[np.ndarray, np.ndarray] | None:
    """The photo with the ``percent`` % hottest pixels of a map filled (``action="remove"``), or with
    everything else filled (``"keep"``), and the filled mask; None where the map is zero everywhere.

    Args:
        cam_up: the map upsampled to the photo's (H, W).
    """
    if action not in AUTO_ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(AUTO_ACTIONS)}")
    hot = top_fraction_mask(cam_up, percent)
    if not hot.any():
        return None
    filled = hot if action == "remove" else ~hot
    return apply_fill(rgb, filled, fill), filled


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top-left offsets along one axis so that patches of ``patch`` px cover 0..size, edges included."""
    if patch <= 0 or stride <= 0:
        raise MaskError("patch and stride must be positive")
    patch = min(patch, size)
    pos = list(range(0, size - patch + 1, stride))
    if pos[-1] != size - patch:
        pos.append(size - patch)
    return pos


def sensitivity(engine, rgb: np.ndarray, class_index: int, patch: int = 32, stride: int = 16, batch: int = BATCH,
                fill: str = "gray", progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, int]:
    """Occlusion sensitivity (Zeiler & Fergus): slide a filled patch over the model input and record
    the drop of the class probability.

    The patch slides over the S×S model input (S = the model's input size), the perturbed copies go
    through the compiled forward pass in batches, and each input pixel gets the mean drop of the
    patches that covered it.

    Returns:
        (map, passes): the (S, S) map of probability drops (positive = the region supports the
        class), and the number of forward passes made, ⌈N / batch⌉ for N patch positions.
    """
    size = engine.spec.input_size
    base = images.resize_for_model(rgb, size)
    offsets = [(y, x) for y in patch_positions(size, patch, stride) for x in patch_positions(size, patch, stride)]
    p = min(patch, size)
    p0 = float(engine.predict(engine.spec.preprocess(base)[None])[0, class_index])
    fill_value = {"gray": GRAY, "black": 0}.get(fill)
    if fill_value is None:
        whole = np.ones((size, size), bool)
        filled = apply_fill(base.astype(np.uint8), whole, fill).astype(np.float32)
    total = np.zeros((size, size), np.float64)
    count = np.zeros((size, size), np.float64)
    passes = 0
    for start in range(0, len(offsets), batch):
        chunk = offsets[start:start + batch]
        xs = np.repeat(base[None], len(chunk), axis=0)
        for i, (y, x) in enumerate(chunk):
            if fill_value is None:
                xs[i, y:y + p, x:x + p] = filled[y:y + p, x:x + p]
            else:
                xs[i, y:y + p, x:x + p] = fill_value
        probs = engine.predict(engine.spec.preprocess(xs))[:, class_index]
        passes += 1
        for (y, x), pc in zip(chunk, probs):
            total[y:y + p, x:x + p] += p0 - float(pc)
            count[y:y + p, x:x + p] += 1
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(offsets)))
    return total / np.maximum(count, 1), passes
