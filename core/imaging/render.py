"""Turning raw maps into pictures: upsampling, display normalisation, colormaps, overlays, and a map's region
against the object's boxes.

Raw maps are never changed here; normalisation is for display only. An all-zero map stays
zero (no division by zero, no NaN) and is reported as "no positive evidence".
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

COLORMAPS = ("jet", "viridis", "inferno", "turbo", "magma", "plasma", "gray")
NO_EVIDENCE = "No positive evidence for this class at this layer: the map is zero everywhere."


@lru_cache(maxsize=16)
def lut(name: str) -> np.ndarray:
    """A 256×3 uint8 lookup table for colormap ``name`` (matplotlib's tables)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    if name == "gray":
        g = np.arange(256, dtype=np.uint8)
        return np.stack([g, g, g], 1)
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def is_empty(cam: np.ndarray) -> bool:
    """True when a map has no positive value (or no finite value) to show."""
    c = np.asarray(cam, np.float64)
    return not np.isfinite(c).any() or float(np.nanmax(np.where(np.isfinite(c), c, 0.0))) <= 0.0


def normalise(cam: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Scale a map to 0..1 for display: divide by its max (or by ``vmax`` for a shared scale).

    Negative and non-finite values show as 0; an all-zero map stays all zero.
    """
    c = np.nan_to_num(np.asarray(cam, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    c = np.maximum(c, 0.0)
    top = float(c.max()) if vmax is None else float(vmax)
    if top <= 0.0 or not np.isfinite(top):
        return np.zeros_like(c)
    return np.clip(c / top, 0.0, 1.0)


PIXEL_PERCENTILE = 99.5  # a pixel-space map's display top: its few brightest pixels would darken all the others


def pixel_scale(cam: np.ndarray) -> float | None:
    """The display maximum of a map at the model input's resolution: the 99.5th percentile of its magnitude
    (pixel gradients are heavy-tailed: a few pixels hold most of the range), or None (its own maximum) where that
    is zero."""
    c = np.abs(np.nan_to_num(np.asarray(cam, np.float64), nan=0.0, posinf=0.0, neginf=0.0))
    top = float(np.percentile(c, PIXEL_PERCENTILE)) if c.size else 0.0
    return top if top > 0.0 else None


def to_unit(cam: np.ndarray, vmax: float | None = None, signed: bool = False) -> np.ndarray:
    """A map scaled to 0..1 for display: :func:`normalise` (negatives as 0), or with ``signed`` (a method whose map has
    both signs: :attr:`core.cam.interface.Method.signed`) a diverging scale,
    −``vmax`` → 0, zero → 0.5, +``vmax`` → 1 (``vmax`` default: the largest magnitude)."""
    if not signed:
        return normalise(cam, vmax)
    c = np.nan_to_num(np.asarray(cam, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(np.abs(c).max()) if vmax is None else float(vmax)
    if top <= 0.0 or not np.isfinite(top):
        return np.full_like(c, 0.5)
    return np.clip(0.5 + 0.5 * c / top, 0.0, 1.0)


def upsample(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear upsampling of a (h, w) map to (height, width), float32, values preserved in range."""
    c = np.nan_to_num(np.asarray(cam, np.float32))
    if c.shape == (height, width):
        return c
    return np.asarray(Image.fromarray(c, "F").resize((width, height), Image.BILINEAR), np.float32)


def colorize(unit: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Map values in 0..1 to RGB uint8 with a colormap."""
    idx = np.clip(np.rint(np.asarray(unit, np.float32) * 255), 0, 255).astype(np.uint8)
    return lut(colormap)[idx]


def display_base(rgb: np.ndarray, max_side: int = 720) -> np.ndarray:
    """The photo at display size, keeping its aspect ratio (never squashed)."""
    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return np.asarray(rgb, np.uint8)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(np.asarray(rgb, np.uint8)).resize(size, Image.BILINEAR), np.uint8)


def heatmap(cam: np.ndarray, width: int, height: int, colormap: str = "jet", vmax: float | None = None,
            signed: bool = False) -> np.ndarray:
    """The coloured map at (height, width), RGB uint8 (``signed``: on the diverging scale of :func:`to_unit`)."""
    if signed and vmax is None:  # the scale of the map itself: upsampling may not reach its extreme cells
        vmax = float(np.abs(np.nan_to_num(np.asarray(cam, np.float64))).max())
    return colorize(to_unit(upsample(cam, width, height), vmax, signed), colormap)


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5, colormap: str = "jet",
            vmax: float | None = None, signed: bool = False) -> np.ndarray:
    """Blend the coloured map over the photo at the photo's own size and aspect ratio.

    Args:
        rgb: (H, W, 3) uint8 photo (already at display size).
        cam: raw map at the layer's resolution.
        alpha: weight of the heatmap, 0..1.
        colormap: a name from :data:`COLORMAPS`.
        vmax: shared display maximum (for grids that must share a colour scale); default the map's max.
        signed: draw negative values too, on a diverging scale (zero at the colormap's middle).
    """
    alpha = float(np.clip(alpha, 0.0, 1.0))
    h, w = rgb.shape[:2]
    heat = heatmap(cam, w, h, colormap, vmax, signed).astype(np.float32)
    out = (1.0 - alpha) * np.asarray(rgb, np.float32) + alpha * heat
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB array (for downloads)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def upsample_nearest(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Blocky (nearest) enlargement of a small RGB map, to show its true resolution."""
    return np.asarray(Image.fromarray(np.asarray(rgb, np.uint8)).resize((width, height), Image.NEAREST), np.uint8)


def region_at_display(region: np.ndarray, max_side: int = 720) -> np.ndarray:
    """A (H, W) bool region at :func:`display_base`'s size for ``max_side`` (nearest neighbour, as
    :func:`region_picture` draws it): what a page keeps instead of a photo-sized mask."""
    h, w = region.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return np.asarray(region, bool)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(region.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0


def region_picture(base: np.ndarray, region: np.ndarray, cam_box, boxes, photo_w: int) -> np.ndarray:
    """The display photo with the map's thresholded region bright (the rest dimmed), the box of its largest
    connected part in yellow and the object boxes in green.

    Args:
        base: (h, w, 3) uint8 photo at display size.
        region: (H, W) bool at the photo's size or at ``base``'s (:func:`region_at_display`): the map ≥
            threshold × its maximum.
        cam_box: (x0, y0, x1, y1) in photo pixels, or None.
        boxes: the object boxes in photo pixels.
        photo_w: the photo's width (the scale from photo to display).
    """
    h, w = base.shape[:2]
    s = w / photo_w
    small = np.asarray(Image.fromarray(region.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
    out = np.where(small[..., None], base.astype(np.float32), base.astype(np.float32) * 0.35 + 20)
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    line = max(2, round(w / 240))
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([x0 * s, y0 * s, x1 * s - 1, y1 * s - 1], outline=(40, 220, 60), width=line)
    if cam_box is not None:
        x0, y0, x1, y1 = cam_box
        draw.rectangle([x0 * s, y0 * s, x1 * s - 1, y1 * s - 1], outline=(255, 215, 0), width=line)
    return np.asarray(img)
