"""The head-only default: an L2-regularised multinomial logistic regression on the cached pooled features,
solved to convergence (scipy's L-BFGS), its regularisation strength chosen by stratified k-fold
cross-validation on the training images, then refit on all of them.

Why not gradient descent with early stopping: on 10–50 photos a class the validation split that early stopping
watches is a handful of images, and the epoch it keeps is noise (issue 22: 88 % where this gets 95 %). The
problem is convex: it has one answer for each strength, and the only choice left — the strength — is made on
every image once, by cross-validation. The features are cached, so the whole search costs well under a second
for a workshop's data.

Objective, per strength λ: mean cross-entropy of ``softmax(X·W + b)`` + λ·ΣW² (the bias is not penalised).
Fast and exact: the optimum's ``W`` lies in the span of the training rows (any part orthogonal to them adds
penalty and changes no score), so with fewer images than feature channels the problem is solved in the
coordinates ``Z = X·V`` of the span of all the images (``V`` from the eigenvectors of the Gram matrix ``X·Xᵀ``;
a fold's rows span a part of it) and mapped back, ``W = V·W_z`` — the same optimum, in ``n`` dimensions instead
of 1,280. Each fold walks the strengths from the strongest to the weakest, starting each solve from the previous
answer; the final fit starts from the first fold's answer at the chosen strength.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

L2_GRID = (1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5)  # a decade apart, strongest first
FOLDS = 5
GTOL = 1e-7  # the final fit: converged when no gradient component is larger (the loss is O(1), the weak λ's ~1e-4)
CV_GTOL = 1e-5  # the folds' solves: what they are for is the held-out predictions, settled well before this
MAX_ITER = 3000
_ONE_THREAD = threading.Lock()  # threadpoolctl's limit is process-wide: one search at a time sets and restores it


@dataclass
class HeadFit:
    """What :func:`fit_head` found.

    Attributes:
        kernel, bias: the head, (D, classes) and (classes,), float32.
        l2: the strength chosen (λ in mean cross-entropy + λ·ΣW²).
        folds: k of the cross-validation (0 when it could not run: a class with one image).
        curve: one record per strength tried: ``l2``, ``accuracy`` (share of all training images right when
            predicted by the fold that did not see them), ``right`` (their count), ``fold_accuracy_sd``,
            ``loss`` (mean held-out cross-entropy), ``iterations`` (mean L-BFGS iterations per fold),
            ``chosen``.
        oof_probs: (images, classes) probabilities of each image from the fold model that did not see it, at
            the chosen strength (what the page's confusion matrix and mistakes come from).
        iterations: L-BFGS iterations of the final fit on all images.
        converged: every fold solve met ``CV_GTOL`` and the final fit ``GTOL``.
        seconds: wall time of the whole search and the final fit.
        stopped: the user stopped the search; the best strength tried so far was used.
    """

    kernel: np.ndarray
    bias: np.ndarray
    l2: float
    folds: int
    curve: list = field(default_factory=list)
    oof_probs: np.ndarray | None = None
    iterations: int = 0
    converged: bool = True
    seconds: float = 0.0
    stopped: bool = False

    @property
    def cv_accuracy(self) -> float | None:
        rec = next((r for r in self.curve if r["chosen"]), None)
        return None if rec is None else rec["accuracy"]


def _softmax_logp(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def solve(Z: np.ndarray, y: np.ndarray, n_classes: int, l2: float, start: np.ndarray | None = None,
          gtol: float = GTOL):
    """Minimise mean cross-entropy + ``l2``·ΣW² over (W, b) for features ``Z`` (n, r), labels ``y``.

    Returns:
        (W (r, classes), b (classes,), the packed solution for a warm start, iterations, converged).
    """
    from scipy.optimize import minimize

    n, r = Z.shape
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0

    def loss_grad(w):
        W, b = w[:r * n_classes].reshape(r, n_classes), w[r * n_classes:]
        logp = _softmax_logp(Z @ W + b)
        d = (np.exp(logp) - onehot) / n
        loss = -(onehot * logp).sum() / n + l2 * float((W * W).sum())
        return loss, np.concatenate([(Z.T @ d + 2 * l2 * W).ravel(), d.sum(0)])

    x0 = np.zeros(r * n_classes + n_classes) if start is None else start
    res = minimize(loss_grad, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": MAX_ITER, "gtol": gtol, "ftol": 1e-15, "maxcor": 10})
    g = loss_grad(res.x)[1]
    return (res.x[:r * n_classes].reshape(r, n_classes), res.x[r * n_classes:], res.x, int(res.nit),
            bool(np.abs(g).max() <= 10 * gtol))


class _Span:
    """The coordinates of the span of some training rows: ``Z = X·V`` with orthonormal ``V`` (D, r)."""

    def __init__(self, X: np.ndarray):
        n, d = X.shape
        if n >= d:
            self.V = None
            return
        vals, vecs = np.linalg.eigh(X @ X.T)
        keep = vals > vals.max() * 1e-10 if vals.max() > 0 else np.zeros_like(vals, bool)
        vals, vecs = vals[keep], vecs[:, keep]
        self.V = X.T @ (vecs / np.sqrt(vals))  # (D, r), orthonormal columns

    def coords(self, X: np.ndarray) -> np.ndarray:
        return X if self.V is None else X @ self.V

    def back(self, W: np.ndarray) -> np.ndarray:
        return W if self.V is None else self.V @ W


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0…k-1) of each image: each class dealt round the folds in a seeded random order."""
    rng = np.random.default_rng(seed)
    f = np.empty(len(y), np.int64)
    for c in np.unique(y):
        i = rng.permutation(np.flatnonzero(y == c))
        f[i] = (np.arange(len(i)) + int(rng.integers(k))) % k
    return f


def fit_head(X, y, n_classes: int, grid=L2_GRID, folds: int = FOLDS, seed: int = 0, on_record=None,
             progress=None, should_stop=None) -> HeadFit:
    """Cross-validate the strength over ``grid``, then fit the head on every image at the chosen one.

    k = min(``folds``, the smallest class's count); the chosen strength has the lowest held-out cross-entropy
    (a smoother guide than the count of images right, which often ties on few images). With a class of one
    image there is no cross-validation and the middle of the grid is used.

    Args:
        on_record: called with each strength's record as its folds finish (from the strongest).
        progress: ``progress(fraction)`` after each fold's solve.
        should_stop: checked between solves; the search then ends with the strengths tried so far.

    The solves run with one BLAS thread: their products are small (a few hundred rows by five classes), and
    OpenBLAS's threads cost more than they give; on this project's 2-core machine the search over 1,000
    vectors of 5 classes took 6.6 s with two threads and 1.7 s with one (``bench --json``'s ``train_head_ms``).
    """
    from threadpoolctl import threadpool_limits

    t = time.perf_counter()
    with _ONE_THREAD, threadpool_limits(limits=1, user_api="blas"):
        fit = _fit_head(np.asarray(X, np.float64), np.asarray(y, np.int64), n_classes, grid, folds, seed, on_record,
                        progress, should_stop)
    fit.seconds = time.perf_counter() - t
    return fit


def _fit_head(X, y, n_classes, grid, folds, seed, on_record, progress, should_stop) -> HeadFit:
    n = len(y)
    grid = sorted((float(v) for v in grid), reverse=True)  # strongest first: each solve starts from the last
    k = int(min(folds, np.bincount(y, minlength=n_classes).min()))
    curve, oof_by_l2, warm, converged, stopped = [], {}, {}, True, False
    span = _Span(X)  # one basis: every fold's optimum lies in the span of all rows too
    Z = span.coords(X)
    if k >= 2:
        fold = stratified_folds(y, k, seed)
        spans = [(fold != j, fold == j) for j in range(k)]
        coords = [(np.ascontiguousarray(Z[tr]), Z[te]) for tr, te in spans]
        starts: list = [None] * k
        total = len(grid) * k
        for gi, l2 in enumerate(grid):
            probs, iters = np.zeros((n, n_classes)), []
            for j, (tr, te) in enumerate(spans):
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                W, b, starts[j], it, ok = solve(coords[j][0], y[tr], n_classes, l2, starts[j], CV_GTOL)
                if j == 0:
                    warm[l2] = starts[j]
                probs[te] = np.exp(_softmax_logp(coords[j][1] @ W + b))
                iters.append(it)
                converged &= ok
                if progress:
                    progress((gi * k + j + 1) / total)
            if stopped:
                break
            right = probs.argmax(1) == y
            per_fold = [float(right[fold == j].mean()) for j in range(k)]
            losses = -np.log(np.maximum(probs[np.arange(n), y], 1e-300))
            rec = {"l2": l2, "accuracy": float(right.mean()), "right": int(right.sum()), "images": n,
                   "fold_accuracy_sd": float(np.std(per_fold)), "loss": float(losses.mean()),
                   "loss_se": float(losses.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
                   "iterations": float(np.mean(iters)), "chosen": False}
            curve.append(rec)
            oof_by_l2[l2] = probs
            if on_record:
                on_record(dict(rec))
    if curve:
        best = min(curve, key=lambda r: (r["loss"], -r["right"]))
        best["chosen"] = True
        l2 = best["l2"]
    else:
        l2 = float(grid[len(grid) // 2])
    W, b, _, iters, ok = solve(Z, y, n_classes, l2, warm.get(l2))  # from the first fold's answer: close by
    return HeadFit(kernel=span.back(W).astype(np.float32), bias=b.astype(np.float32), l2=l2, folds=k if curve else 0,
                   curve=curve, oof_probs=oof_by_l2.get(l2), iterations=iters, converged=converged and ok,
                   stopped=stopped)


def strength_text(l2: float) -> str:
    """A strength as the page, its chart and the CLI write it: "1", "0.1" … "1e-5"."""
    return f"{l2:g}" if l2 >= 1e-3 else f"{l2:.0e}".replace("e-0", "e-")


def wilson_interval(right: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``right``/``n`` (what a figure on few images is worth)."""
    if n <= 0:
        return 0.0, 1.0
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


__all__ = ["FOLDS", "HeadFit", "L2_GRID", "fit_head", "solve", "strength_text", "stratified_folds", "wilson_interval"]
