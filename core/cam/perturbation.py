"""Perturbation methods that run many passes of their own: RISE and Ablation-CAM. Their registry entries are
:data:`ENTRIES` (listed by :data:`core.cam.methods.EVERY`).

**RISE** (Petsiuk et al. 2018) hides random parts of the photo and weights each random mask by the class
probability that survives it. A mask is a 7×7 grid of cells kept with probability 0.5, upsampled bilinearly to
8 cells' width and cropped at a random shift of less than one cell (as the paper's code does), so the masks are
smooth and not aligned to one grid. The paper's map is Σ_i p_c(x ⊙ M_i) · M_i / (N · p).

*What a hidden pixel becomes*: mid-gray. A mask blends the photo with gray 127 in pixel space,
``M · photo + (1 − M) · 127``, before the model's preprocessing; every zoo model's preprocessing is affine per
pixel, so that is ``gray + M · (x − gray)`` on the preprocessed input ``x``. For Lite0's (x − 127) / 128, gray is
0 and this is exactly the preprocessed input times the mask — what the paper's code does (it multiplies the
normalised input, so a hidden pixel takes the data's mean colour, not black); for the models that read raw
0..255 pixels it is gray too, never black.

*The map drawn*: the paper's map has a floor: a pixel's value is the mean probability of the masks that show
it, which for most pixels is close to the mean probability p̄ of all the masks. We subtract that floor,
Σ_i (p_i − p̄) · M_i / (N · p): the paper's map minus p̄ times the pixel's mask density (≈ 1), the same ranking of
pixels up to sampling noise, positive where showing a pixel kept more of the class than the average mask and
negative where it kept less (:func:`rise` gives both).

**Ablation-CAM** (Desai & Ramaswamy 2020) zeroes each channel k of the layer's activations in turn and runs the
rest of the network (:mod:`core.engine.tail`): w_k = (y_c − y_c^k) / y_c with y_c the class logit and y_c^k the
logit with channel k zeroed (pytorch-grad-cam's ``AblationCAM`` weights), map = ReLU(Σ_k w_k A^k). The channels
are zeroed as in the paper, also at layers whose activations can be negative, where pytorch-grad-cam sets them to
(the smallest activation − 10⁷) instead.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..engine.passes import BATCH_SIZES
from ..engine.tail import NoTail, tail_of
from .interface import SEED, Context, Method, NotApplicable, Tunable

GRID = 7  # RISE's s: the mask grid's cells per side
KEEP = 0.5  # RISE's p: the probability that a cell is shown
GRAY = 127.0  # what a hidden pixel becomes (0..255): 0 after Lite0's (x − 127) / 128
BATCH = BATCH_SIZES[-1]  # masked inputs, or ablated activations, per compiled call (and per progress report)


def resize_matrix(n: int, size: int) -> np.ndarray:
    """(size, n) weights of a linear resize from ``n`` samples to ``size``: half-pixel centres, mirrored at the
    edges (``skimage.transform.resize(order=1, mode="reflect")``, which the RISE paper's code uses)."""
    pos = (np.arange(size) + 0.5) * n / size - 0.5
    lo = np.floor(pos).astype(int)
    frac = pos - lo

    def mirror(i):
        i = np.abs(i)
        return np.where(i > n - 1, 2 * (n - 1) - i, i)

    m = np.zeros((size, n))
    np.add.at(m, (np.arange(size), mirror(lo)), 1 - frac)
    np.add.at(m, (np.arange(size), mirror(lo + 1)), frac)
    return m.astype(np.float32)


class Masks:
    """RISE's N random masks for a square input of side ``size``, drawn once from ``seed`` (the grids and the
    shifts, a few kilobytes) and made a batch at a time, so any batching gives the same masks.

    Args:
        n: how many masks.
        size: the model input's side.
        seed: the random generator's seed.
        grid: cells per side (s).
        keep: the probability that a cell is shown (p).
    """

    def __init__(self, n: int, size: int, seed: int = 0, grid: int = GRID, keep: float = KEEP):
        if n < 1:
            raise ValueError(f"RISE needs at least one mask, not {n}")
        rng = np.random.default_rng(seed)
        self.grids = (rng.random((n, grid, grid)) < keep).astype(np.float32)
        cell = -(-size // grid)
        self.shifts = rng.integers(0, cell, (n, 2))  # (row, column) crop offsets, each < one cell
        self._up = resize_matrix(grid, (grid + 1) * cell)
        self.size, self.keep = size, keep

    def __len__(self) -> int:
        return len(self.grids)

    def take(self, start: int, stop: int) -> np.ndarray:
        """Masks ``start``..``stop`` − 1, (m, size, size) float32 in 0..1."""
        idx = np.arange(self.size)
        rows = self._up[self.shifts[start:stop, 0, None] + idx]  # (m, size, grid)
        cols = self._up[self.shifts[start:stop, 1, None] + idx]
        return rows @ self.grids[start:stop] @ cols.transpose(0, 2, 1)


def gray_input(engine) -> np.ndarray:
    """Mid-gray (:data:`GRAY`) as the model's preprocessing makes it: (1, 1, 1, 3)."""
    return engine.spec.preprocess(np.full((1, 1, 1, 3), GRAY, np.float32))


def masked_inputs(x: np.ndarray, gray: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The preprocessed photo ``x`` (1, S, S, 3) with each mask's hidden part gray (see the module's note):
    (m, S, S, 3) float32."""
    out = np.repeat(masks[..., None], 3, axis=-1)  # in place from here: the quickest way NumPy has
    out *= x - gray
    out += gray
    return out


def rise(engine, rgb: np.ndarray, class_index: int, n: int = 1000, seed: int = 0, batch: int = BATCH,
         progress: Callable[[float], None] | None = None, centred: bool = True) -> tuple[np.ndarray, int]:
    """RISE's map at the model input's resolution.

    Args:
        n: masks; seed: their seed; batch: masked inputs per engine call (and per progress report).
        progress: called with the fraction done after every batch; it may raise to stop the work (nothing is
            kept).
        centred: subtract the floor (the map drawn); False: the paper's Σ_i p_i M_i / (N p).

    Returns:
        ((S, S) float64 map, forward passes: ⌈n / batch⌉ engine calls).
    """
    masks = Masks(int(n), engine.spec.input_size, seed)
    size = masks.size
    x, gray = engine.prepare(rgb), gray_input(engine)
    weighted = np.zeros((size, size))
    cover = np.zeros((size, size))
    total, passes = 0.0, 0
    for start in range(0, len(masks), batch):
        stop = min(len(masks), start + batch)
        m = masks.take(start, stop)
        p = engine.predict(masked_inputs(x, gray, m))[:, class_index]
        weighted += np.tensordot(p, m, axes=1)
        cover += m.sum(axis=0, dtype=np.float64)
        total += float(p.sum())
        passes += 1
        if progress:
            progress(stop / len(masks))
    scale = len(masks) * masks.keep
    if not centred:
        return weighted / scale, passes
    return (weighted - total / len(masks) * cover) / scale, passes


def ablation_scores(engine, layer: str, acts: np.ndarray, class_index: int, batch: int = BATCH,
                    progress: Callable[[float], None] | None = None) -> tuple[float, np.ndarray, int]:
    """The class logit from the layer's activations, and with each channel zeroed in turn, through the tail.

    Returns:
        (y_c, (c,) y_c^k, tail calls).

    Raises:
        NoTail: the network after ``layer`` reads more than its output.
    """
    tail = tail_of(engine, layer)
    A = np.asarray(acts, tail.dtype)
    channels = A.shape[-1]
    order = np.arange(-1, channels)  # -1: nothing zeroed
    scores = np.empty(len(order))
    calls = 0
    for start in range(0, len(order), batch):
        ks = order[start:start + batch]
        a = np.repeat(A[None], len(ks), axis=0)
        zeroed = np.flatnonzero(ks >= 0)
        a[zeroed, :, :, ks[zeroed]] = 0
        scores[start:start + len(ks)] = tail.logits(a)[:, class_index]
        calls += 1
        if progress:
            progress((start + len(ks)) / len(order))
    return float(scores[0]), scores[1:], calls


def ablationcam(engine, layer: str, acts: np.ndarray, class_index: int, batch: int = BATCH,
                progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, int]:
    """Ablation-CAM: ReLU(Σ_k w_k A^k), w_k = (y_c − y_c^k) / y_c.

    Returns:
        ((h, w) float64 map, tail calls).

    Raises:
        NotApplicable: the network after ``layer`` reads more than its output, or the class logit is zero.
    """
    from .methods import weighted_sum

    try:
        score, ablated, calls = ablation_scores(engine, layer, acts, class_index, batch, progress)
    except NoTail as exc:
        raise NotApplicable(f"Ablation-CAM runs the network on from the chosen layer, but {exc}.") from None
    if score == 0.0:
        raise NotApplicable("Ablation-CAM divides by the class score, which is exactly zero here.")
    return np.maximum(weighted_sum(acts, (score - ablated) / score), 0.0), calls


def _rise(ctx: Context) -> np.ndarray:
    out, ctx.passes = rise(ctx.engine, ctx.rgb, ctx.result.class_index, ctx.options["masks"], ctx.options["seed"],
                           progress=ctx.progress)
    return out


def _ablationcam(ctx: Context) -> np.ndarray:
    out, ctx.passes = ablationcam(ctx.engine, ctx.layer, ctx.acts, ctx.result.class_index, progress=ctx.progress)
    return out


MASKS = Tunable("masks", "RISE masks", "How many random masks RISE averages: one forward pass each, in batches "
                "of 8. More masks, less noise.", "RISE: number of random masks", default=1000, page_default=1000,
                low=100, high=4000, step=100, minimum=1)

ENTRIES: tuple[Method, ...] = (
    Method("rise", "RISE", "random masks over the photo, each weighted by the class probability it keeps",
           "Petsiuk, Das & Saenko, RISE: Randomized Input Sampling for Explanation of Black-box Models, BMVC 2018",
           "https://arxiv.org/abs/1806.07421", fn=_rise, needs_model=True, extra_passes=True, live=False,
           progress=True, layer="input", pixels=True, signed=True, family="perturbation",
           reading="warm: showing these pixels kept more of the class than the average random mask; cool: less",
           tunables=(MASKS, SEED)),
    Method("ablationcam", "Ablation-CAM", "zero each channel of the layer, weight it by how much the class score drops",
           "Desai & Ramaswamy, Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free "
           "Localization, WACV 2020", "https://openaccess.thecvf.com/content_WACV_2020/html/Desai_Ablation-CAM_Visual"
           "_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.html",
           fn=_ablationcam, needs_model=True, extra_passes=True, live=False, progress=True),
)
