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

**Noisy linear imputation** of the removed pixels from their neighbours, with noise:
:mod:`.imputation` (its solver and accuracy there).

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

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..imaging import render
from .imputation import NOISE, channels_first, noisy, solve

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


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


def noise_rng(seed: int, most_relevant_first: bool, percentile: float) -> np.random.Generator:
    """The noise's generator of one imputed image (see the module's notes)."""
    return np.random.default_rng((int(seed), int(bool(most_relevant_first)), int(round(100 * float(percentile)))))


def _imputed(photo: np.ndarray, cam: np.ndarray, ps: tuple, noise: float, seed: int):
    """(index in :func:`imputed_batch`'s order, imputed image) in the order they are solved: each order's removed
    sets grow as p falls, so they are solved from the highest p down, each from the one before."""
    s_h, s_w = photo.shape[:2]
    c = render.upsample(cam, s_w, s_h)
    order = relevance_order(c)
    img = channels_first(photo)
    for m, morf in enumerate((True, False)):
        solved = img
        for i in sorted(range(len(ps)), key=lambda i: -ps[i]):
            kept = kept_mask(c, ps[i], morf, order)
            solved = solve(img, kept, solved)
            yield m * len(ps) + i, noisy(solved, kept, noise, noise_rng(seed, morf, ps[i]) if noise else None)


def _removed(photo: np.ndarray, ps: tuple) -> np.ndarray:
    n = photo.shape[0] * photo.shape[1]
    return np.array([1.0 - kept_count(n, p) / n for p in ps])


def imputed_batch(photo: np.ndarray, cam: np.ndarray, percentiles=PERCENTILES, noise: float = NOISE, seed: int = 0,
                  progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(2P, S, S, 3) float32 imputed images, MoRF at each percentile then LeRF, and (P,) the share removed.

    ``photo`` is the model-size photo (S, S, 3) in 0..255; ``cam`` the raw map at any resolution."""
    ps = check_percentiles(percentiles)
    out = [None] * (2 * len(ps))
    for done, (k, image) in enumerate(_imputed(photo, cam, ps, noise, seed), 1):
        out[k] = image
        if progress:
            progress(done / len(out))
    return np.stack(out), _removed(photo, ps)


def road(engine, rgb: np.ndarray, cam: np.ndarray, class_index: int, percentiles=PERCENTILES,
         noise: float = NOISE, seed: int = 0, progress: Callable[[float], None] | None = None) -> Road:
    """ROAD of one map (see the module's notes): the photo and the 2P imputed images through the model, in
    batches of the engine's largest batch size as they are ready. Each batch's forward pass runs on a helper
    thread while the next images are imputed (TensorFlow's pass leaves the interpreter free; the imputation
    needs it): the curve takes about the imputations plus the last batch's pass, not plus all of them.

    Args:
        engine: a :class:`core.engine.Engine` (its batched forward pass).
        rgb: (H, W, 3) uint8 photo.
        cam: the raw map at any resolution.
        class_index: whose probability to follow.
        progress: the fraction done (the imputations, then the model's last pass).
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..engine.passes import BATCH_SIZES
    from .faithfulness import model_photo

    ps = check_percentiles(percentiles)
    photo = model_photo(engine, rgb)
    cls, total = int(class_index), 2 * len(ps)
    probs = np.empty(1 + total)

    def forward(rows: list) -> None:
        probs[[k for k, _ in rows]] = engine.predict(engine.spec.preprocess(np.stack([x for _, x in rows])))[:, cls]

    rows, passes = [(0, photo)], []
    with ThreadPoolExecutor(1, thread_name_prefix="road-forward") as pool:
        for done, (k, image) in enumerate(_imputed(photo, cam, ps, noise, seed), 1):
            rows.append((1 + k, image))
            if len(rows) == BATCH_SIZES[-1] and done < total:
                passes.append(pool.submit(forward, rows))
                rows = []
            if progress:
                progress(0.9 * done / total)
        forward(rows)
        for p in passes:
            p.result()
    if progress:
        progress(1.0)
    p = len(ps)
    original = float(probs[0])
    return Road(ps, _removed(photo, ps), original, probs[1:p + 1] - original, probs[p + 1:] - original)
