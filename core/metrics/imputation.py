"""Noisy linear imputation, as ROAD (Rong et al., ICML 2022) and pytorch-grad-cam's ``NoisyLinearImputer`` define
it: the pixels where a mask is False are filled from their neighbours, then noise is added (:mod:`.road` uses it).

**Noisy linear imputation** (their ``NoisyLinearImputer``): every removed pixel takes the weighted mean of its
eight neighbours (weight 1/6 for the four sharing a side, 1/12 for the diagonals; neighbours outside the image
drop out and the weights of the others are not renormalised, the pixel's own coefficient is their sum), removed
neighbours being unknowns too: one sparse symmetric positive definite system per image, three right-hand sides
(the channels). Gaussian noise of σ = :data:`NOISE` is then added to every imputed value.

**The solver** (:class:`Multigrid`): conjugate gradients preconditioned by one multigrid V-cycle, in float32 on
the removed pixels' bounding box, the three channels together. Coarse grids halve each side down to 8 cells;
interpolation is bilinear, each coarse operator the Galerkin product Pᵀ A P (so the kept pixels shape every
grid: scattered masks and large holes converge alike), smoothing one Jacobi sweep before and after, the coarsest
grid solved densely. It stops when the preconditioned residual, an estimate of the error, is at most
:data:`TOLERANCE` × the channel's range at every pixel (0.026 levels of 255), and adds it: 4–7 V-cycles per
image. Against the exact solution (sparse LU, float64) the values differ by at most 0.04 levels (3.1e-4 in
pytorch-grad-cam's units, (x − 127) / 128), over 4 photos × Grad-CAM, tied, edges and random maps × 18 masks.
The exact solve was the cost: one SuperLU factorisation takes 0.1 s at 90 % removed, 18 make a curve 8–14 × its
forward passes (``bench/road.py``); the multigrid solve is linear in the pixels and about 5 × faster.
:func:`core.metrics.road.imputed_batch` solves each order's removed sets, which grow as p falls, each from
the previous solution (:func:`solve`'s ``start``).
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Callable

import numpy as np

NOISE = 0.01 * 128.0  # σ in pixel levels: pytorch-grad-cam's 0.01 on an input scaled by (x − 127) / 128
NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
              ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))

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


class Multigrid:
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


def solve(image: np.ndarray, kept: np.ndarray, start: np.ndarray) -> np.ndarray:
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
        solver = Multigrid(k, np.ascontiguousarray(_own(*kept.shape)[box]))
        b = _blur(np.ascontiguousarray(sub * k))
        b *= solver.c_blur  # the kept neighbours' weighted sum, at the removed pixels
        out[box] = np.where(k, sub, solver.solve(b, (start[box] * ~k).astype(_F), step))
    return out


def noisy(solved: np.ndarray, kept: np.ndarray, noise: float, rng: np.random.Generator | None) -> np.ndarray:
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


def channels_first(image: np.ndarray) -> np.ndarray:
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
    img = channels_first(image)
    start = np.broadcast_to(img[:, kept].mean(axis=1)[:, None, None], img.shape)  # each channel's mean
    return np.ascontiguousarray(noisy(solve(img, kept, start), kept, noise, rng))
