"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient Evaluation
Strategy for Attribution Methods", ICML 2022), as pytorch-grad-cam's ``pytorch_grad_cam.metrics.road`` computes it.

For each percentile p of :data:`PERCENTILES` (10, 20, …, 90) a share of the model input's pixels is removed
and **imputed** from its neighbours, so that the model sees no sharp hole whose shape gives the answer away:

- **MoRF** (most relevant first, pytorch-grad-cam's ``ROADMostRelevantFirst(p)``): the pixels above the
  map's p-th percentile are removed, the p % least relevant kept; the class probability should fall.
- **LeRF** (least relevant first, ``ROADLeastRelevantFirst(p)``): the p % most relevant are kept, the rest
  removed; the probability should stay.

Each figure is the class probability on the imputed image **minus** the probability on the photo (what
pytorch-grad-cam's metrics return with ``ClassifierOutputSoftmaxTarget``); :class:`Road` averages them over the
percentiles (``ROADMostRelevantFirstAverage``, ``ROADLeastRelevantFirstAverage``) and combines them as
``ROADCombined``: (mean LeRF − mean MoRF) / 2, high = good.

**Noisy linear imputation** (their ``NoisyLinearImputer``): every removed pixel takes the weighted mean of its
eight neighbours (weight 1/6 for the four sharing a side, 1/12 for the diagonals; neighbours outside the image
drop out and the weights of the others are not renormalised, the pixel's own coefficient is their sum), removed
neighbours being unknowns too: one sparse linear system per image, three right-hand sides (the channels),
solved exactly (SuperLU, :func:`scipy.sparse.linalg.splu`, with a nested-dissection ordering of the grid).
Gaussian noise of σ = :data:`NOISE` is then added to every imputed value.

Definitions, where they differ from pytorch-grad-cam's:

- **Which pixels.** The kept count at percentile p is ⌈(N − 1)·p / 100⌉ of the N pixels, the count
  pytorch-grad-cam's ``map < np.percentile(map, p)`` keeps on a map without ties; ties are broken in raster
  order (as :mod:`.faithfulness` orders pixels). On a map with ties at the threshold (Grad-CAM's zeros) their
  strict comparison keeps fewer (none at all, then a singular system and NaN, where the ties cover the
  percentile).
- **Units.** The imputation runs on the model input's pixels (0..255, before the model's preprocessing; it is
  affine-equivariant, so it commutes with any per-channel affine preprocessing), the noise σ being
  0.01 × 128 = 1.28 levels: pytorch-grad-cam's 0.01 on an input scaled to [−1, 1] by (x − 127) / 128, as
  EfficientNet-Lite0's. Imputed values are not clipped (neither are theirs).
- **Noise.** Drawn from ``numpy.random.default_rng((seed, morf, round(100 p)))``, a (3, n) standard normal
  for the n removed pixels in raster order (theirs: ``torch.randn_like``), so a curve is reproducible.
- **The map.** The raw map upsampled (bilinear) to the model input's size, in float32, as it is (theirs are
  usually min-max scaled first, which only moves float ties).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..imaging import render

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
NOISE = 0.01 * 128.0
NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
              ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))
LEAF = 64  # cells of a nested-dissection leaf, ordered in raster order


@dataclass(frozen=True)
class Road:
    """A ROAD measurement of one map.

    Attributes:
        percentiles: (P,) the percentiles p; the share removed at p is ``removed``.
        removed: (P,) the share of the pixels removed at each percentile (about 1 − p/100, the same for both).
        original: the class probability on the photo.
        morf: (P,) the probability after removing the most relevant pixels, minus ``original``.
        lerf: (P,) the same, the least relevant removed.
    """

    percentiles: tuple
    removed: np.ndarray
    original: float
    morf: np.ndarray
    lerf: np.ndarray

    @property
    def morf_mean(self) -> float:
        """Mean MoRF change (low = good: removing what the map points at hurts)."""
        return float(np.mean(self.morf))

    @property
    def lerf_mean(self) -> float:
        """Mean LeRF change (high = good: removing what the map ignores does not hurt)."""
        return float(np.mean(self.lerf))

    @property
    def combined(self) -> float:
        """pytorch-grad-cam's ``ROADCombined``: (mean LeRF − mean MoRF) / 2 (high = good)."""
        return (self.lerf_mean - self.morf_mean) / 2.0


def check_percentiles(percentiles) -> tuple:
    """The percentiles as a tuple; ValueError (one sentence) unless each is strictly between 0 and 100."""
    ps = tuple(percentiles)
    if not ps or not all(isinstance(p, (int, float)) and 0 < p < 100 for p in ps):
        raise ValueError("ROAD percentiles must be numbers strictly between 0 and 100")
    return ps


def kept_count(n: int, percentile: float) -> int:
    """Pixels kept at ``percentile``: ⌈(n − 1)·p / 100⌉ (exact for whole percentiles), at least 1."""
    if float(percentile).is_integer():
        k = -(-(n - 1) * int(percentile) // 100)
    else:
        k = math.ceil((n - 1) * float(percentile) / 100.0 - 1e-9)
    return max(1, min(n, k))


def relevance_order(cam: np.ndarray) -> np.ndarray:
    """Flat indices of a map, most relevant first (non-finite values as 0, ties in raster order)."""
    return np.argsort(-np.nan_to_num(np.asarray(cam, np.float32)).ravel(), kind="stable")


def kept_mask(cam: np.ndarray, percentile: float, most_relevant_first: bool,
              order: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool, True where the pixel stays, for a map already at the image's size.

    MoRF keeps the ``kept_count`` least relevant pixels, LeRF the most relevant; equal values are ordered in
    raster order (the earlier one counts as more relevant, as in :func:`.faithfulness.pixel_order`).
    ``order`` is :func:`relevance_order` of ``cam`` where the caller has it already.
    """
    n = int(np.size(cam))
    keep = kept_count(n, percentile)
    order = relevance_order(cam) if order is None else order
    chosen = order[n - keep:] if most_relevant_first else order[:keep]
    mask = np.zeros(n, bool)
    mask[chosen] = True
    return mask.reshape(np.shape(cam))


def _nd_order(r0: int, r1: int, c0: int, c1: int, width: int, out: list) -> None:
    h, w = r1 - r0, c1 - c0
    if h <= 0 or w <= 0:
        return
    if h * w <= LEAF:
        out.append((np.arange(r0, r1)[:, None] * width + np.arange(c0, c1)[None, :]).ravel())
    elif h >= w:  # a one-row separator splits the 8-neighbour stencil's graph in two
        m = (r0 + r1) // 2
        _nd_order(r0, m, c0, c1, width, out)
        _nd_order(m + 1, r1, c0, c1, width, out)
        out.append(m * width + np.arange(c0, c1))
    else:
        m = (c0 + c1) // 2
        _nd_order(r0, r1, c0, m, width, out)
        _nd_order(r0, r1, m + 1, c1, width, out)
        out.append(np.arange(r0, r1) * width + m)


@functools.lru_cache(maxsize=4)
def nd_rank(height: int, width: int) -> np.ndarray:
    """Each cell's place in a nested-dissection order of the (height, width) grid (flat, raster-indexed)."""
    out: list = []
    _nd_order(0, height, 0, width, width, out)
    order = np.concatenate(out)
    rank = np.empty(height * width, np.int64)
    rank[order] = np.arange(order.size)
    rank.setflags(write=False)
    return rank


def impute(image: np.ndarray, kept: np.ndarray, noise: float = NOISE,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Noisy linear imputation (see the module's notes) of the pixels where ``kept`` is False.

    Args:
        image: (H, W, C) values (any units; the solution is affine-equivariant).
        kept: (H, W) bool, at least one True.
        noise: σ of the Gaussian noise added to each imputed value (0 for none), in ``image``'s units.
        rng: the noise's generator (needed when ``noise`` > 0).

    Returns:
        (H, W, C) float32: kept pixels as they were, removed ones imputed.
    """
    from scipy import sparse
    from scipy.sparse.linalg import splu

    img = np.asarray(image, np.float64)
    h, w, ch = img.shape
    flat = np.asarray(kept, bool).ravel()
    if flat.size != h * w:
        raise ValueError("the kept-pixel mask must have the image's height and width")
    if not flat.any():
        raise ValueError("ROAD needs at least one kept pixel to impute from")
    out = img.reshape(h * w, ch).copy()
    raster = np.flatnonzero(~flat)
    n = raster.size
    if n == 0:
        return out.reshape(h, w, ch).astype(np.float32)
    missing = raster[np.argsort(nd_rank(h, w)[raster], kind="stable")]  # the unknowns in the grid's ND order
    unknown = np.full(h * w, -1, np.int64)
    unknown[missing] = np.arange(n)
    r0, c0 = np.divmod(missing, w)
    rows, cols, vals = [], [], []
    b = np.zeros((n, ch))
    own = np.zeros(n)
    for (dy, dx), weight in NEIGHBOURS:
        r, c = r0 + dy, c0 + dx
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        i = np.flatnonzero(inside)
        j = (r * w + c)[inside]
        own[i] += weight
        known = flat[j]
        b[i[known]] -= weight * out[j[known]]  # each (pixel, offset) pair once: no repeated index
        rows.append(i[~known])
        cols.append(unknown[j[~known]])
        vals.append(np.full(int((~known).sum()), weight))
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(-own)
    a = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    # symmetric and diagonally dominant: no pivoting needed, and the ND order is kept as the fill-reducing one
    x = splu(a, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True}).solve(b)
    out[missing] = x
    if noise:  # drawn for the removed pixels in raster order
        if rng is None:
            raise ValueError("noisy imputation needs a random generator")
        out[raster] += noise * rng.standard_normal((ch, n)).T
    return out.reshape(h, w, ch).astype(np.float32)


def noise_rng(seed: int, most_relevant_first: bool, percentile: float) -> np.random.Generator:
    """The noise's generator of one imputed image (see the module's notes)."""
    return np.random.default_rng((int(seed), int(bool(most_relevant_first)), int(round(100 * float(percentile)))))


def imputed_batch(photo: np.ndarray, cam: np.ndarray, percentiles=PERCENTILES, noise: float = NOISE, seed: int = 0,
                  progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(2P, S, S, 3) float32 imputed images, MoRF at each percentile then LeRF, and (P,) the share removed.

    ``photo`` is the model-size photo (S, S, 3) in 0..255; ``cam`` the raw map at any resolution."""
    ps = check_percentiles(percentiles)
    s_h, s_w = photo.shape[:2]
    c = render.upsample(cam, s_w, s_h)
    order = relevance_order(c)
    out = []
    for k, (morf, p) in enumerate([(True, p) for p in ps] + [(False, p) for p in ps]):
        kept = kept_mask(c, p, morf, order)
        out.append(impute(photo, kept, noise, noise_rng(seed, morf, p) if noise else None))
        if progress:
            progress((k + 1) / (2 * len(ps)))
    removed = np.array([1.0 - kept_count(s_h * s_w, p) / (s_h * s_w) for p in ps])
    return np.stack(out), removed


def road(engine, rgb: np.ndarray, cam: np.ndarray, class_index: int, percentiles=PERCENTILES,
         noise: float = NOISE, seed: int = 0, progress: Callable[[float], None] | None = None) -> Road:
    """ROAD of one map (see the module's notes): the photo and the 2P imputed images through the model in one
    batched call.

    Args:
        engine: a :class:`core.engine.Engine` (its batched forward pass).
        rgb: (H, W, 3) uint8 photo.
        cam: the raw map at any resolution.
        class_index: whose probability to follow.
        progress: the fraction done (the imputations, then the model's pass).
    """
    from .faithfulness import model_photo

    photo = model_photo(engine, rgb)
    step = (lambda f: progress(0.9 * f)) if progress else None
    batch, removed = imputed_batch(photo, cam, percentiles, noise, seed, step)
    probs = engine.predict(engine.spec.preprocess(np.concatenate([photo[None], batch])))[:, int(class_index)]
    if progress:
        progress(1.0)
    p = len(removed)
    original = float(probs[0])
    return Road(check_percentiles(percentiles), removed, original, probs[1:p + 1] - original,
                probs[p + 1:] - original)
