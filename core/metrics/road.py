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
neighbours being unknowns too: one sparse symmetric positive definite system per image, three right-hand sides
(the channels). Gaussian noise of σ = :data:`NOISE` is then added to every imputed value.

**The solver** (:class:`_Multigrid`): conjugate gradients preconditioned by one multigrid V-cycle, in float32 on
the removed pixels' bounding box, the three channels together. Coarse grids halve each side down to 8 cells;
interpolation is bilinear, each coarse operator the Galerkin product Pᵀ A P (so the kept pixels shape every
grid: scattered masks and large holes converge alike), smoothing one Jacobi sweep before and after, the coarsest
grid solved densely. It stops when the preconditioned residual, an estimate of the error, is at most
:data:`TOLERANCE` × the channel's range at every pixel (0.026 levels of 255), and adds it: 4–7 V-cycles per
image. Against the exact solution (sparse LU, float64) the values differ by at most 0.04 levels (3.1e-4 in
pytorch-grad-cam's units, (x − 127) / 128), over 4 photos × Grad-CAM, tied, edges and random maps × 18 masks.
The exact solve was the cost: one SuperLU factorisation takes 0.1 s at 90 % removed, 18 make a curve 8–14 × its
forward passes (``bench/road.py``); the multigrid solve is linear in the pixels and about 5 × faster.
:func:`imputed_batch` solves each order's removed sets, which grow as p falls, each from the previous solution.

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
import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..imaging import render

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
NOISE = 0.01 * 128.0
NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
              ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


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


_F = np.float32
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
TOLERANCE = 1e-4  # the solver's error estimate at every pixel, relative to the channel's range


def _blur(u: np.ndarray) -> np.ndarray:
    """The 3×3 window's [1 2 1]ᵀ[1 2 1]-weighted sum, zero outside, of C-contiguous (..., H, W) values: 12 × the
    neighbours' weighted sum plus 4 × the centre. The row shift runs on the flat array, minus what crossed a row's
    end (fast, contiguous)."""
    v = u * _F(2)
    v[..., 1:, :] += u[..., :-1, :]
    v[..., :-1, :] += u[..., 1:, :]
    s = v * _F(2)
    s.reshape(-1)[1:] += v.reshape(-1)[:-1]
    s.reshape(-1)[:-1] += v.reshape(-1)[1:]
    s2, v2 = s.reshape(-1, u.shape[-1]), v.reshape(-1, u.shape[-1])
    s2[1:, 0] -= v2[:-1, -1]
    s2[:-1, -1] -= v2[1:, 0]
    return s


def _at(axis: int, index) -> tuple:
    return (Ellipsis, index, slice(None)) if axis == -2 else (Ellipsis, index)


def _prolong1(v: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Bilinear interpolation along ``axis`` (-2 or -1) to ``n`` cells: fine cell 2I is coarse cell I, an odd one
    the mean of its two coarse neighbours (the last of an even ``n`` copies its one neighbour)."""
    out = np.empty(v.shape[:axis] + (n,) + v.shape[axis:][1:], v.dtype)
    k = (n - 1) // 2  # odd cells between two coarse ones
    out[_at(axis, slice(0, None, 2))] = v[_at(axis, slice(0, (n + 1) // 2))]
    odd = out[_at(axis, slice(1, 2 * k, 2))]
    np.add(v[_at(axis, slice(0, k))], v[_at(axis, slice(1, k + 1))], out=odd)
    odd *= _F(0.5)
    if n % 2 == 0:
        out[_at(axis, n - 1)] = v[_at(axis, n // 2 - 1)]
    return out


def _restrict1(v: np.ndarray, axis: int) -> np.ndarray:
    """The transpose of :func:`_prolong1` along ``axis``."""
    n = v.shape[axis]
    k = (n - 1) // 2
    out = v[_at(axis, slice(0, None, 2))].copy()
    half = v[_at(axis, slice(1, 2 * k, 2))] * _F(0.5)
    out[_at(axis, slice(0, k))] += half
    out[_at(axis, slice(1, k + 1))] += half
    if n % 2 == 0:
        out[_at(axis, n // 2 - 1)] += v[_at(axis, n - 1)]
    return out


def _prolong(v: np.ndarray, shape: tuple) -> np.ndarray:
    return _prolong1(_prolong1(v, shape[1], -1), shape[0], -2)


def _restrict(v: np.ndarray) -> np.ndarray:
    return _restrict1(_restrict1(v, -2), -1)


@functools.lru_cache(maxsize=16)
def _probes(shape: tuple) -> np.ndarray:
    """(9, *shape): the coarse grid's cells of each class (I mod 3, J mod 3), interpolated to ``shape``."""
    i, j = np.mgrid[0:(shape[0] + 1) // 2, 0:(shape[1] + 1) // 2]
    out = _prolong(((i % 3) * 3 + j % 3 == np.arange(9)[:, None, None]).astype(_F), shape)
    out.setflags(write=False)
    return out


def _stencil_apply(st: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A 9-point operator: st (3, 3, H, W), st[1 + dy, 1 + dx] couples a cell to the one at (dy, dx)."""
    h, w = u.shape[-2:]
    pad = np.zeros(u.shape[:-2] + (h + 2, w + 2), u.dtype)
    pad[..., 1:-1, 1:-1] = u
    out = st[1, 1] * u
    for dy, dx in _OFFSETS:
        if dy or dx:
            out += st[1 + dy, 1 + dx] * pad[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return out


def _galerkin(apply: Callable, shape: tuple, one_by_one: bool) -> np.ndarray:
    """Pᵀ A P as a 9-point stencil on the coarse grid, from A applied to the 9 probes (the 3×3 neighbours of a
    coarse cell are of 9 different classes, so each probe's value at the cell is one coupling). ``one_by_one``:
    a probe at a time (faster on the finest grid, measured), else all 9 in one array."""
    probes = _probes(shape)
    y = (np.concatenate([_restrict(apply(probe[None])) for probe in probes]) if one_by_one
         else _restrict(apply(probes)))
    st = np.empty((3, 3) + y.shape[1:], _F)
    for a, b in itertools.product(range(3), range(3)):
        for dy, dx in _OFFSETS:
            st[1 + dy, 1 + dx, a::3, b::3] = y[(a + dy) % 3 * 3 + (b + dx) % 3, a::3, b::3]
    return st


class _Multigrid:
    """Solves the removed pixels' system on a grid: (A u)(i) = own(i)·u(i) − Σ_d w_d·u(i + d) at each removed
    pixel i, u zero at the kept ones (their values make the right-hand side); see the module's notes."""

    COARSEST = 8  # cells on the coarsest grid's longer side, or fewer
    OMEGA = 0.8  # Jacobi damping on the coarse grids (the finest: none, ω = 1)
    RIDGE = 1e-4  # the coarsest matrix's diagonal × (1 + RIDGE): coarse cells over the same removed pixels make
    # it singular, and a preconditioner needs no exact inverse

    def __init__(self, kept: np.ndarray, own: np.ndarray):
        self.removed = (~kept).astype(_F)
        self.c_own = self.removed * (own + _F(1 / 3))
        self.c_blur = self.removed * _F(1 / 12)
        self.shapes, self.stencils = [kept.shape], [None]
        self.inv = [self._jacobi(self.removed * own)]
        apply = lambda u: self.apply(u * self.removed)
        while max(self.shapes[-1]) > self.COARSEST:
            st = _galerkin(apply, self.shapes[-1], len(self.shapes) == 1)
            self.shapes.append(st.shape[2:])
            self.stencils.append(st)
            self.inv.append(self._jacobi(np.maximum(st[1, 1] / self.OMEGA, np.abs(st).sum(axis=(0, 1)) / 2)))
            apply = functools.partial(_stencil_apply, st)
        n = math.prod(self.shapes[-1])
        a = apply(np.eye(n).reshape(n, *self.shapes[-1])).reshape(n, n)  # symmetric: rows are columns
        on = np.diag(a) > 0  # coarse cells over no removed pixel are empty rows
        a[np.diag_indices(n)] = np.where(on, np.diag(a) * (1 + self.RIDGE), 1.0)
        self.coarsest = (np.linalg.inv(a) * on[:, None] * on[None, :]).astype(_F)

    @staticmethod
    def _jacobi(scale: np.ndarray) -> np.ndarray:
        """The smoother's 1 / D from D = diagonal / ω, or half the row's absolute sum where larger: then D⁻¹A has
        no eigenvalue above 2 (Gershgorin), the smoother does not diverge and the V-cycle stays positive definite
        (on coarse grids, cells over the same few removed pixels have rows far from diagonally dominant)."""
        return np.where(scale > 0, 1 / np.where(scale > 0, scale, 1), 0).astype(_F)

    def apply(self, u: np.ndarray) -> np.ndarray:
        """A u on the finest grid (u zero at the kept pixels): own·u − (blur(u) − 4u) / 12 at the removed ones."""
        out = self.c_own * u
        out -= self.c_blur * _blur(u)
        return out

    def vcycle(self, r: np.ndarray, level: int = 0) -> np.ndarray:
        """One V-cycle on A x = r from x = 0: a symmetric positive definite approximation of A⁻¹ r."""
        if level == len(self.shapes) - 1:
            return (r.reshape(r.shape[0], -1) @ self.coarsest).reshape(r.shape)
        op = self.apply if level == 0 else functools.partial(_stencil_apply, self.stencils[level])
        inv = self.inv[level]
        x = inv * r
        e = _prolong(self.vcycle(_restrict(r - op(x)), level + 1), self.shapes[level])
        x += e * self.removed if level == 0 else e
        res = r - op(x)
        res *= inv
        x += res
        return x

    def solve(self, b: np.ndarray, x: np.ndarray, step: np.ndarray, max_iterations: int = 100) -> np.ndarray:
        """Preconditioned conjugate gradients from ``x``, each channel (leading axis) on its own, until every
        channel's preconditioned residual z ≈ A⁻¹ r (the error's estimate) is at most ``step`` (C,) at every
        pixel; returns x + z (``iterations``: how many it took)."""
        dot = functools.partial(np.einsum, "cij,cij->c")
        r = b - self.apply(x)
        z = self.vcycle(r)
        p, rz = z, dot(r, z)
        for self.iterations in range(max_iterations + 1):
            if np.all(np.abs(z).reshape(len(z), -1).max(axis=1) <= step) or self.iterations == max_iterations:
                break
            q = self.apply(p)
            alpha = rz / np.where(rz > 0, dot(p, q), 1)  # 0 for a channel already solved exactly
            x += alpha[:, None, None] * p
            r -= alpha[:, None, None] * q
            z = self.vcycle(r)
            rz, beta = dot(r, z), rz
            p = z + (rz / np.where(beta > 0, beta, 1))[:, None, None] * p
        x += z
        return x


@functools.lru_cache(maxsize=4)
def _own(height: int, width: int) -> np.ndarray:
    """Each pixel's own coefficient: the summed weights of its neighbours inside the image."""
    out = (_blur(np.ones((1, height, width), _F))[0] - 4) / _F(12)
    out.setflags(write=False)
    return out


def _solve(image: np.ndarray, kept: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(C, H, W) float32: ``image`` (C, H, W) with its removed pixels solved for (no noise) on their bounding box
    and its border, from ``start`` (C, H, W), to :data:`TOLERANCE` of each channel's range (or magnitude)."""
    removed = ~kept
    rows, cols = np.flatnonzero(removed.any(axis=1)), np.flatnonzero(removed.any(axis=0))
    out = image.copy()
    if rows.size:
        flat = image.reshape(len(image), -1)
        step = TOLERANCE * np.maximum(np.ptp(flat, axis=1), np.abs(flat).max(axis=1))
        box = (Ellipsis, slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
        k, sub = kept[box], image[box]
        solver = _Multigrid(k, np.ascontiguousarray(_own(*kept.shape)[box]))
        b = _blur(np.ascontiguousarray(sub * k))
        b *= solver.c_blur  # the kept neighbours' weighted sum, at the removed pixels
        out[box] = np.where(k, sub, solver.solve(b, (start[box] * ~k).astype(_F), step))
    return out


def _noisy(solved: np.ndarray, kept: np.ndarray, noise: float, rng: np.random.Generator | None) -> np.ndarray:
    """(H, W, C) float32: the solved (C, H, W) image plus the noise at the removed pixels (raster order)."""
    out = solved.copy()
    if noise:
        if rng is None:
            raise ValueError("noisy imputation needs a random generator")
        removed = np.flatnonzero(~kept.ravel())
        draws = noise * rng.standard_normal((out.shape[0], removed.size))
        for channel, values in zip(out.reshape(out.shape[0], -1), draws):
            channel[removed] += values.astype(_F)
    return np.moveaxis(out, 0, -1)


def _channels_first(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(np.asarray(image, _F), -1, 0))


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
    kept = np.asarray(kept, bool)
    if np.ndim(image) != 3 or kept.shape != np.shape(image)[:2]:
        raise ValueError("the kept-pixel mask must have the image's height and width")
    if not kept.any():
        raise ValueError("ROAD needs at least one kept pixel to impute from")
    img = _channels_first(image)
    start = np.broadcast_to(img[:, kept].mean(axis=1)[:, None, None], img.shape)  # each channel's mean
    return np.ascontiguousarray(_noisy(_solve(img, kept, start), kept, noise, rng))


def noise_rng(seed: int, most_relevant_first: bool, percentile: float) -> np.random.Generator:
    """The noise's generator of one imputed image (see the module's notes)."""
    return np.random.default_rng((int(seed), int(bool(most_relevant_first)), int(round(100 * float(percentile)))))


def imputed_batch(photo: np.ndarray, cam: np.ndarray, percentiles=PERCENTILES, noise: float = NOISE, seed: int = 0,
                  progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(2P, S, S, 3) float32 imputed images, MoRF at each percentile then LeRF, and (P,) the share removed.

    ``photo`` is the model-size photo (S, S, 3) in 0..255; ``cam`` the raw map at any resolution. Each order's
    removed sets grow as p falls: they are solved from the highest p down, each from the one before."""
    ps = check_percentiles(percentiles)
    s_h, s_w = photo.shape[:2]
    c = render.upsample(cam, s_w, s_h)
    order = relevance_order(c)
    img = _channels_first(photo)
    out = [None] * (2 * len(ps))
    for m, morf in enumerate((True, False)):
        solved = img
        for i in sorted(range(len(ps)), key=lambda i: -ps[i]):
            kept = kept_mask(c, ps[i], morf, order)
            solved = _solve(img, kept, solved)
            out[m * len(ps) + i] = _noisy(solved, kept, noise, noise_rng(seed, morf, ps[i]) if noise else None)
            if progress:
                progress(sum(o is not None for o in out) / len(out))
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
