"""How alike two maps are: Spearman rank correlation and SSIM (what the sanity check reports).

SSIM follows Wang et al., "Image quality assessment: from error visibility to structural similarity",
IEEE TIP 2004: local means, variances and covariance under a Gaussian window (σ = 1.5, truncated at 3.5 σ,
so 11×11), K1 = 0.01, K2 = 0.03, the mean of the SSIM map with a border of the window's radius left out.
These are the choices of scikit-image's ``structural_similarity(..., gaussian_weights=True,
use_sample_covariance=False)``, which the tests check this against (scikit-image is not a dependency).
"""
from __future__ import annotations

import numpy as np

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
K1, K2 = 0.01, 0.03


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps' values (ties get their average rank).

    A constant map has no ranks to compare: the result is 0 then (scipy would give NaN).
    """
    from scipy import stats

    x = np.nan_to_num(np.asarray(a, np.float64)).ravel()
    y = np.nan_to_num(np.asarray(b, np.float64)).ravel()
    if x.size != y.size:
        raise ValueError(f"maps of different sizes: {np.shape(a)} and {np.shape(b)}")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, sigma: float = SSIM_SIGMA) -> float:
    """Mean structural similarity of two 2-D maps of the same shape, each side ≥ 11.

    Args:
        a, b: the maps (scaled to 0..``data_range``, e.g. each divided by its maximum).
        data_range: the span of possible values (L in the paper).
        sigma: the Gaussian window's σ in pixels.
    """
    from scipy import ndimage

    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"SSIM needs two 2-D maps of one shape; got {x.shape} and {y.shape}")
    radius = int(SSIM_TRUNCATE * sigma + 0.5)
    if min(x.shape) < 2 * radius + 1:
        raise ValueError(f"SSIM needs maps of at least {2 * radius + 1}×{2 * radius + 1} pixels")

    def blur(z):
        return ndimage.gaussian_filter(z, sigma, mode="reflect", truncate=SSIM_TRUNCATE)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[radius:-radius, radius:-radius].mean())


def unit(cam: np.ndarray) -> np.ndarray:
    """A map divided by its maximum, negatives and non-finite values at 0 (all zero stays zero)."""
    c = np.maximum(np.nan_to_num(np.asarray(cam, np.float64)), 0.0)
    top = c.max() if c.size else 0.0
    return c / top if top > 0 else np.zeros_like(c)
