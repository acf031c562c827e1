"""Maps that explain nothing, so a score can be read against chance.

- :func:`random_map`: uniform noise on the layer's grid (seeded), upsampled like any method's map: it has
  a method's resolution and puts its mass anywhere.
- :func:`centre_map`: a Gaussian in the middle (σ a fraction of each side). ImageNet objects sit near the
  centre, so this prior already scores well on the pointing game; a method must beat it to prove anything.
- :func:`edges_map`: the photo's edges (Sobel gradient magnitude of its grayscale, Gaussian-smoothed). It
  never looks at the model, yet edges sit on objects, so it scores well on some metrics (ROAD above all); the
  sanity check is what catches it: randomising the model leaves it unchanged.

All return raw maps (non-negative, max 1; an all-zero map for a flat photo) that every metric takes like a
method's map. :func:`baseline` draws any of them by name: random and centre need only a size, edges the photo.
"""
from __future__ import annotations

import zlib

import numpy as np

BASELINES = ("random", "centre", "edges")
MODEL_FREE = BASELINES  # every baseline ignores the model: its map is the same under the sanity cascade
AT_LAYER = ("random",)  # the baselines drawn on the layer's grid (centre: the photo's size; edges: the model input's)
CENTRE_SIGMA = 0.25  # of each side: the measured range is ½–¼; ¼ is the tighter, stronger prior
EDGES_SIGMA = 0.01  # of the shorter side: 2.24 px at 224, enough to join an edge's two Sobel ridges
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's "L" and OpenCV's grayscale


def seed_for(name: str, seed: int = 0) -> int:
    """A seed that depends only on a photo's name and a base seed (the same in every worker process)."""
    return (zlib.crc32(str(name).encode()) + int(seed)) % 2**32


def random_map(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(height, width) uniform noise in [0, 1), from ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed).random((height, width))


def centre_map(height: int, width: int, sigma: float = CENTRE_SIGMA) -> np.ndarray:
    """(height, width) Gaussian centred on the grid, σ = ``sigma`` × each side, peak 1.

    Sampled at cell centres; dataset evaluation draws it at the photo's own size (a coarse grid would
    turn the bell into a bilinear pyramid).
    """
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    y = (np.arange(height) + 0.5) / height - 0.5
    x = (np.arange(width) + 0.5) / width - 0.5
    return np.exp(-0.5 * ((y[:, None] / sigma) ** 2 + (x[None, :] / sigma) ** 2))


def edges_map(rgb: np.ndarray, height: int, width: int, sigma: float = EDGES_SIGMA) -> np.ndarray:
    """(height, width) edge strength of the photo, max 1.

    The photo is resized (bilinear, as the model input) to height × width, turned to grayscale (BT.601 luma,
    0..255), filtered with the 3×3 Sobel kernels in x and y (``scipy.ndimage.sobel``, edges reflected), and
    the magnitude √(gx² + gy²) is smoothed with a Gaussian of σ = ``sigma`` × the shorter side (at least
    0.5 px), then divided by its maximum. A flat photo gives an all-zero map.
    """
    from scipy import ndimage

    if sigma < 0:
        raise ValueError("sigma must not be negative")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("the edges baseline needs an (H, W, 3) RGB photo")
    if rgb.shape[:2] == (height, width):
        photo = rgb.astype(np.float64)
    else:
        from PIL import Image

        im = Image.fromarray(np.asarray(rgb, np.uint8), "RGB").resize((width, height), Image.BILINEAR)
        photo = np.asarray(im, np.float64)
    gray = photo @ np.asarray(LUMA)
    mag = np.hypot(ndimage.sobel(gray, axis=1, mode="reflect"), ndimage.sobel(gray, axis=0, mode="reflect"))
    if sigma > 0:
        mag = ndimage.gaussian_filter(mag, max(0.5, sigma * min(height, width)), mode="reflect")
    top = float(mag.max())
    return mag / top if top > 0 else np.zeros_like(mag)


def baseline(name: str, height: int, width: int, seed: int = 0, rgb: np.ndarray | None = None) -> np.ndarray:
    """The map of baseline ``name`` ('random', 'centre' or 'edges') on an (height, width) grid; 'edges' needs
    the photo ``rgb`` ((H, W, 3) uint8, resized to the grid)."""
    if name == "random":
        return random_map(height, width, seed)
    if name == "centre":
        return centre_map(height, width)
    if name == "edges":
        if rgb is None:
            raise ValueError("the edges baseline needs the photo")
        return edges_map(rgb, height, width)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
