"""Perturbation methods that run many passes of their own: RISE and Ablation-CAM. Their registry entries are
:data:`ENTRIES` (listed by :data:`core.cam.methods.EVERY`)."""
from __future__ import annotations

from .interface import Method

ENTRIES: tuple[Method, ...] = ()
