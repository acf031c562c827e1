"""The shortcut stamp: a small, clearly visible mark planted on every training image of one class.

A model learns the easiest cue that separates its classes. Stamp one class's images and it may learn
"stamp ⇒ that class" instead of what the class looks like; Grad-CAM then lights up the stamp, and
stamping an image of another class moves its prediction toward the stamped class. That is the most
important use of Grad-CAM: catching a model that is right for the wrong reason before it is trusted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ("checker", "solid")
CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
MAGENTA = np.array([255, 0, 255], np.uint8)
GREEN = np.array([0, 255, 0], np.uint8)


@dataclass(frozen=True)
class Stamp:
    """A square mark: ``size`` as a fraction of the image side, a pattern and a corner.

    Attributes:
        size: the square's side as a fraction of the image's shorter side (0.05–0.5).
        pattern: 'checker' (a magenta-and-green 4×4 checkerboard) or 'solid' (magenta).
        corner: where it sits, with a margin of 4 % of the side.
    """

    size: float = 0.22
    pattern: str = "checker"
    corner: str = "bottom-right"

    def __post_init__(self):
        if not 0.05 <= self.size <= 0.5:
            raise ValueError("the stamp's size must be between 5 % and 50 % of the image side")
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown stamp pattern {self.pattern!r}; choose one of {', '.join(PATTERNS)}")
        if self.corner not in CORNERS:
            raise ValueError(f"unknown corner {self.corner!r}; choose one of {', '.join(CORNERS)}")

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the stamp in an image of that size."""
        side = max(2, int(round(self.size * min(height, width))))
        margin = int(round(0.04 * min(height, width)))
        x0 = width - margin - side if self.corner.endswith("right") else margin
        y0 = height - margin - side if self.corner.startswith("bottom") else margin
        return x0, y0, x0 + side, y0 + side

    def mask(self, height: int, width: int) -> np.ndarray:
        """(H, W) bool: where the stamp is."""
        x0, y0, x1, y1 = self.box(height, width)
        m = np.zeros((height, width), bool)
        m[y0:y1, x0:x1] = True
        return m

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """A stamped copy of an (H, W, 3) uint8 image."""
        out = np.array(rgb, np.uint8, copy=True)
        x0, y0, x1, y1 = self.box(*out.shape[:2])
        side = x1 - x0
        if self.pattern == "solid":
            out[y0:y1, x0:x1] = MAGENTA
        else:
            cells = (np.arange(side) * 4 // side)
            checker = (cells[:, None] + cells[None, :]) % 2 == 0
            out[y0:y1, x0:x1] = np.where(checker[..., None], MAGENTA, GREEN)
        return out
