"""Maps that explain nothing, so a score can be read against chance.

- :func:`random_map`: uniform noise on the layer's grid (seeded), upsampled like any method's map: it has
  a method's resolution and puts its mass anywhere.
- :func:`centre_map`: a Gaussian in the middle (σ a fraction of each side). ImageNet objects sit near the
  centre, so this prior already scores well on the pointing game; a method must beat it to prove anything.

Both return raw maps (non-negative, max 1) that every metric takes like a method's map.
"""
from __future__ import annotations

import zlib

import numpy as np

BASELINES = ("random", "centre")
CENTRE_SIGMA = 0.25  # of each side: the measured range is ½–¼; ¼ is the tighter, stronger prior


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


def baseline(name: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """The map of baseline ``name`` ('random' or 'centre') on an (height, width) grid."""
    if name == "random":
        return random_map(height, width, seed)
    if name == "centre":
        return centre_map(height, width)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
