"""The map methods: small functions of one layer's activations and gradients, and the registry of every method.

Every gradient method takes ``A`` (h, w, c) activations and ``G`` (h, w, c) gradients of the
class logit at the same layer — both from the one cached engine pass — and returns the raw map
(h, w), float64, after the method's own ReLU: no normalisation (that is for display, in
:mod:`core.imaging.render`). Eigen-CAM needs no gradient; Score-CAM runs batched forward passes; CAM
reads the classifier's weights and applies only where the layer feeds GAP → Dense; occlusion
(:mod:`.occlusion`) slides a patch over the model input.

The gradient methods at the model input (guided backpropagation, Guided Grad-CAM, integrated gradients,
SmoothGrad) are in :mod:`.gradients`, the perturbation methods (RISE, Ablation-CAM) in :mod:`.perturbation`.

Each method is registered once (:data:`EVERY`) as a :class:`~core.cam.interface.Method` whose ``fn`` takes one
:class:`~core.cam.interface.Context`; adding a method is its function and its entry here.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import occlusion
from ..engine import PassResult
from .interface import Context, Method, NotApplicable, Tunable, of_pass

EPS = 1e-7


def channel_weights(G: np.ndarray) -> np.ndarray:
    """Grad-CAM's α_k: the spatial mean of ∂y^c/∂A^k (Selvaraju et al., eq. 1)."""
    G = np.asarray(G)
    return G.reshape(-1, G.shape[-1]).mean(axis=0, dtype=np.float64)


def channel_contributions(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Each channel's share of the spatially averaged Grad-CAM sum before the ReLU: α_k · mean(A^k).

    They add up to the mean of Σ_k α_k A^k over the cells (what the Learn page ranks channels by)."""
    A = np.asarray(A)
    return channel_weights(G) * A.reshape(-1, A.shape[-1]).mean(axis=0, dtype=np.float64)


def weighted_sum(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ_k w_k A^k, before any ReLU (accumulated in the activations' precision, returned as float64)."""
    A = np.asarray(A)
    flat = A.reshape(-1, A.shape[-1]) @ np.asarray(w, A.dtype if A.dtype.kind == "f" else np.float64)
    return flat.reshape(A.shape[:-1]).astype(np.float64)


def gradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Grad-CAM: ReLU(Σ_k α_k A^k) with α_k the spatially averaged gradients."""
    return np.maximum(weighted_sum(A, channel_weights(G)), 0.0)


def counterfactual(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Counterfactual Grad-CAM: weights from the negated gradients — regions whose removal would
    raise the class's confidence (Selvaraju et al., section 5)."""
    return np.maximum(weighted_sum(A, -channel_weights(G)), 0.0)


GRADCAMPP_EPS = 1e-6


def gradcampp(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Grad-CAM++ (Chattopadhyay et al. 2018) with the closed-form weights of an exponential score:
    α_ij^k = g² / (2g² + Σ_ab A^k_ab · g³ + ε), w_k = Σ_ij α_ij^k · ReLU(g_ij^k).

    ε = 1e-6 as in pytorch-grad-cam: at intermediate layers the gradients are so small (g² ≲ 1e-6)
    that this stabiliser shapes the weights, so we use the same one to agree with the reference.
    """
    A = np.asarray(A, np.float64)
    G = np.asarray(G, np.float64)
    g2, g3 = G ** 2, G ** 3
    denom = 2 * g2 + A.sum(axis=(0, 1), keepdims=True) * g3 + GRADCAMPP_EPS
    alpha = np.where(G != 0, g2 / np.where(denom != 0, denom, EPS), 0.0)
    w = (alpha * np.maximum(G, 0)).sum(axis=(0, 1))
    return np.maximum(weighted_sum(A, w), 0.0)


def hirescam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """HiResCAM (Draelos & Carin 2020): ReLU(Σ_k G^k ⊙ A^k) — gradients kept per position, not averaged."""
    return np.maximum((np.asarray(G, np.float64) * np.asarray(A, np.float64)).sum(axis=2), 0.0)


def xgradcam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """XGrad-CAM (Fu et al. 2020): w_k = Σ_ij A^k_ij G^k_ij / Σ_ij A^k_ij."""
    A = np.asarray(A, np.float64)
    w = (np.asarray(G, np.float64) * A).sum(axis=(0, 1)) / (A.sum(axis=(0, 1)) + EPS)
    return np.maximum(weighted_sum(A, w), 0.0)


def layercam(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """LayerCAM (Jiang et al. 2021): ReLU(Σ_k ReLU(G^k) ⊙ A^k) — positive gradients as per-position weights."""
    return np.maximum((np.maximum(np.asarray(G, np.float64), 0) * np.asarray(A, np.float64)).sum(axis=2), 0.0)


def principal_projection(A: np.ndarray) -> np.ndarray:
    """The centred activations projected on their first principal component, (h, w), signed.

    An SVD's sign is arbitrary; it is fixed here so that the projection agrees with the mean
    activation over channels (pytorch-grad-cam leaves it to LAPACK, so on some images its
    Eigen-CAM shows the complementary region)."""
    A = np.asarray(A, np.float64)
    h, w, c = A.shape
    X = A.reshape(h * w, c)
    X = X - X.mean(axis=0)
    _u, _s, vt = np.linalg.svd(X, full_matrices=False)
    proj = X @ vt[0]
    if np.dot(proj, A.reshape(h * w, c).mean(axis=1)) < 0:
        proj = -proj
    return proj.reshape(h, w)


def eigencam(A: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    """Eigen-CAM (Muhammad & Yeasin 2020): ReLU of the first-principal-component projection
    (gradient-free, so the same for every class)."""
    return np.maximum(principal_projection(A), 0.0)


def scorecam(engine, rgb: np.ndarray, res: PassResult, layer: str, top_n: int | None = None, batch: int = 16,
             progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, int]:
    """Score-CAM (Wang et al. 2020): each channel, upsampled to the input (bilinear, aligned corners)
    and min–max scaled, masks the (preprocessed) input; the class logits of the masked inputs,
    softmaxed over channels, weight the channels.

    Args:
        top_n: use only the N channels with the highest mean activation (the others get weight 0).
        batch: masked inputs per forward pass.

    Returns:
        (map, forward passes).
    """
    A = np.asarray(res.acts[layer], np.float32)
    h, w, c = A.shape
    channels = np.arange(c)
    if top_n is not None and 0 < top_n < c:
        channels = np.argsort(-A.mean(axis=(0, 1)), kind="stable")[:top_n]
    x = engine.prepare(rgb)  # (1, S, S, 3) preprocessed
    size = x.shape[1]
    up_y, up_x = _bilinear_matrix(h, size), _bilinear_matrix(w, size)
    scores = np.full(c, -np.inf)
    passes = 0
    for start in range(0, len(channels), batch):
        idx = channels[start:start + batch]
        maps = np.einsum("yh,hwc,xw->cyx", up_y, A[:, :, idx], up_x)[..., None]  # (n, S, S, 1)
        lo = maps.min(axis=(1, 2, 3), keepdims=True)
        hi = maps.max(axis=(1, 2, 3), keepdims=True)
        masks = np.where(hi > lo, (maps - lo) / np.where(hi > lo, hi - lo, 1), 0.0).astype(np.float32)
        scores[idx] = engine.logits(x * masks)[:, res.class_index]
        passes += 1
        if progress:
            progress(min(1.0, (start + len(idx)) / len(channels)))
    finite = np.isfinite(scores)
    weights = np.zeros(c)
    e = np.exp(scores[finite] - scores[finite].max())
    weights[finite] = e / e.sum()
    return np.maximum(weighted_sum(A, weights), 0.0), passes


def _bilinear_matrix(n: int, size: int) -> np.ndarray:
    """(size, n) linear interpolation with aligned corners (as Score-CAM's reference upsampling)."""
    pos = np.linspace(0, n - 1, size) if size > 1 else np.zeros(1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((size, n), np.float32)
    m[np.arange(size), lo] += 1 - frac
    m[np.arange(size), hi] += frac
    return m


def dense_head(engine, layer: str) -> np.ndarray:
    """The (channels, classes) weights of the Dense classifier that ``layer`` feeds through GAP.

    Raises:
        NotApplicable: the layer does not feed global average pooling → Dense directly.
    """
    spec = engine.spec
    if not spec.gap_dense:
        raise NotApplicable(f"CAM needs a global-average-pooling → Dense head; {spec.title} has fully "
                            "connected layers after its last convolution.")
    if layer != spec.default_layer:
        raise NotApplicable(f"CAM applies only at the layer that feeds the classifier ({spec.default_layer}); "
                            f"{layer} is further from it.")
    dense = [l for l in engine.model.layers if l.__class__.__name__ == "Dense"]
    if len(dense) != 1:
        raise NotApplicable("CAM needs exactly one Dense layer after global average pooling.")
    return np.asarray(engine.layer_weights(dense[0].name)[0], np.float64)


def cam(engine, res: PassResult, layer: str) -> np.ndarray:
    """CAM (Zhou et al. 2016): ReLU(Σ_k W_kc A^k) with W the Dense classifier's weights."""
    W = dense_head(engine, layer)
    return np.maximum(weighted_sum(res.acts[layer], W[:, res.class_index]), 0.0)


def _scorecam(ctx: Context) -> np.ndarray:
    out, ctx.passes = scorecam(ctx.engine, ctx.rgb, ctx.result, ctx.layer, ctx.options["top_n"], progress=ctx.progress)
    return out


def _cam(ctx: Context) -> np.ndarray:
    return cam(ctx.engine, ctx.result, ctx.layer)


def _occlusion(ctx: Context) -> np.ndarray:
    out, ctx.passes = occlusion.sensitivity(ctx.engine, ctx.rgb, ctx.result.class_index, ctx.options["patch"],
                                            ctx.options["stride"], progress=ctx.progress)
    return out


TOP_N = Tunable("top_n", "Score-CAM channels (top-N)",
                "Score-CAM masks the input with each channel: one forward pass per channel. "
                "Using only the N most active channels keeps it fast.",
                "Score-CAM: only the N most active channels", default=None, page_default=256, low=8, high=4096, step=8,
                minimum=1)
PATCH = Tunable("patch", "Patch (px at the model input)", "The side of the gray square slid over the model input.",
                "occlusion patch size at the model input (px)", default=32, page_default=32, low=8, high=112, step=4,
                minimum=1)
STRIDE = Tunable("stride", "Stride (px)", "How far the patch moves between two positions.",
                 "occlusion stride at the model input (px)", default=16, page_default=16, low=4, high=112, step=4,
                 minimum=1)

# the methods that work at the model input or run many passes: their own modules, using the functions above
from . import gradients, perturbation  # noqa: E402

# every method, registered once, in the order the pages and the CLI list them
EVERY: dict[str, Method] = {m.name: m for m in (
    of_pass("gradcam", "Grad-CAM", "weights = spatially averaged gradients; any layer, any CNN",
            "Selvaraju et al., Grad-CAM, ICCV 2017", "https://arxiv.org/abs/1610.02391", gradcam),
    of_pass("counterfactual", "Counterfactual", "negated Grad-CAM weights: what argues against the class",
            "Selvaraju et al., Grad-CAM, ICCV 2017 (section 5)", "https://arxiv.org/abs/1610.02391", counterfactual),
    of_pass("gradcampp", "Grad-CAM++", "positive gradients with per-cell coefficients: better for several instances",
            "Chattopadhyay et al., Grad-CAM++, WACV 2018", "https://arxiv.org/abs/1710.11063", gradcampp),
    of_pass("hirescam", "HiResCAM", "gradients times activations cell by cell, no averaging",
            "Draelos & Carin, Use HiResCAM instead of Grad-CAM, 2020", "https://arxiv.org/abs/2011.08891", hirescam),
    of_pass("xgradcam", "XGrad-CAM", "activation-weighted average of the gradients (axiom-based)",
            "Fu et al., Axiom-based Grad-CAM, BMVC 2020", "https://arxiv.org/abs/2008.02312", xgradcam),
    of_pass("layercam", "LayerCAM", "positive gradients as per-cell weights: works at early, fine layers",
            "Jiang et al., LayerCAM, IEEE TIP 2021", "https://doi.org/10.1109/TIP.2021.3089943", layercam),
    of_pass("eigencam", "Eigen-CAM", "first principal component of the activations: no gradient, no class",
            "Muhammad & Yeasin, Eigen-CAM, IJCNN 2020", "https://arxiv.org/abs/2008.00299", eigencam),
    Method("scorecam", "Score-CAM", "mask the input with each channel, weight by the class score it keeps",
           "Wang et al., Score-CAM, CVPR Workshops 2020", "https://arxiv.org/abs/1910.01279", fn=_scorecam,
           needs_model=True, extra_passes=True, live=False, progress=True, tunables=(TOP_N,)),
    Method("cam", "CAM", "the classifier's own weights; only where the layer feeds global average pooling → Dense",
           "Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016",
           "https://arxiv.org/abs/1512.04150", fn=_cam, needs_model=True, needs_gap_dense=True),
    *gradients.ENTRIES,
    *perturbation.ENTRIES,
    Method("occlusion", "Occlusion", "slide a gray patch over the input and record how much the class loses",
           "Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
           "https://arxiv.org/abs/1311.2901", fn=_occlusion, needs_model=True, extra_passes=True, live=False,
           progress=True, layer="input", pixels=True, signed=True, family="perturbation", pages=False,
           reading="warm: hiding the patch here lowered the class; cool: hiding it raised the class",
           tunables=(PATCH, STRIDE)),
)}
# what the sidebar, Compare, Measure, Learn and a link's method= offer (occlusion has the Occlude page)
REGISTRY: dict[str, Method] = {name: m for name, m in EVERY.items() if m.pages}
# the methods computed from the cached pass alone: name → fn(A, G)
METHODS = {name: m.on_pass for name, m in REGISTRY.items() if m.on_pass is not None}
DEFAULT = "gradcam"  # the map a page shows where the chosen method cannot be drawn there


def get(name: str) -> Method:
    """The registry entry of ``name``; ValueError naming the valid ones otherwise."""
    try:
        return EVERY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(EVERY)}") from None


def names(every: bool = False) -> list[str]:
    """The methods the pages offer, in the registry's order; ``every``: also those with a page of their own
    (occlusion: the CLI's ``explain --method``)."""
    return list(EVERY if every else REGISTRY)


def tunables(methods: list[str] | None = None) -> list[Tunable]:
    """The tunables of ``methods`` (default: every method), each once, in the registry's order."""
    seen = {}
    for name in EVERY if methods is None else methods:
        for t in get(name).tunables:
            seen.setdefault(t.name, t)
    return list(seen.values())


def compute(method: str, res: PassResult, layer: str, engine=None, rgb: np.ndarray | None = None,
            progress: Callable[[float], None] | None = None, **options) -> np.ndarray:
    """The raw map of ``method`` at ``layer`` from a cached engine pass (or at the method's own place).

    Methods that read the model need ``engine``, those that run passes of their own the photo ``rgb`` too;
    ``options`` are tunable values by name (Score-CAM's ``top_n``).
    """
    entry = get(method)
    return entry.run(Context(res, entry.layer or layer, engine, rgb, progress, options))


def from_pass(method: str, res: PassResult, layer: str, engine=None) -> tuple[np.ndarray, Method, str | None]:
    """The map of ``method`` at ``layer`` without any pass of its own (what a page redraws on every change).

    Returns:
        (map, the method used, None) — or the default method's map, the default method, and one sentence why,
        where ``method`` runs passes of its own (Score-CAM) or does not apply here (CAM).
    """
    entry, fallback = get(method), REGISTRY[DEFAULT]
    if entry.extra_passes:
        return fallback.run(Context(res, layer)), fallback, \
            f"{entry.title} runs its own forward passes, so this page shows {fallback.title}; " \
            "the Explain and Compare pages run it."
    try:
        return entry.run(Context(res, layer, engine)), entry, None
    except NotApplicable as exc:
        return fallback.run(Context(res, layer)), fallback, f"{exc} Showing {fallback.title} instead."
