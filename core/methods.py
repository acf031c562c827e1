"""Class-activation methods: small functions of one layer's activations and gradients.

Every function takes ``A`` (h, w, c) activations and ``G`` (h, w, c) gradients of the class
logit at the same layer, and returns the raw map (h, w), float64, after the method's own ReLU —
no normalisation (that is for display, in :mod:`core.render`).
"""
from __future__ import annotations

import numpy as np

from .engine import PassResult


def channel_weights(G: np.ndarray) -> np.ndarray:
    """Grad-CAM's α_k: the spatial mean of ∂y^c/∂A^k (Selvaraju et al., eq. 1)."""
    G = np.asarray(G)
    return G.reshape(-1, G.shape[-1]).mean(axis=0, dtype=np.float64)


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


METHODS = {"gradcam": gradcam, "counterfactual": counterfactual}


def compute(method: str, res: PassResult, layer: str) -> np.ndarray:
    """The raw map of ``method`` at ``layer`` from a cached engine pass."""
    try:
        fn = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}") from None
    if layer not in res.acts:
        raise ValueError(f"unknown layer {layer!r}")
    return fn(res.acts[layer], res.grads[layer])
