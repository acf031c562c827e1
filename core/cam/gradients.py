"""Gradient methods at the model input: guided backpropagation, Guided Grad-CAM, integrated gradients and
SmoothGrad. Their registry entries are :data:`ENTRIES` (listed by :data:`core.cam.methods.EVERY`)."""
from __future__ import annotations

from .interface import Method

ENTRIES: tuple[Method, ...] = ()
