"""A small model trained here for the live tests: two classes ("my mug", "my dog") made from two bundled photos by
flips and crops, the Train page's head-only training on EfficientNet-Lite0 (a few seconds)."""
from __future__ import annotations

import numpy as np

PHOTOS = {"my mug": "coffee.jpg", "my dog": "dog.jpg"}  # class name → bundled photo
TITLE = "mug or dog"


def variants(rgb: np.ndarray, n: int = 8) -> list[np.ndarray]:
    """``n`` pictures of a photo: crops of 70-95 % of each side at different places, every other one mirrored."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        f = 0.70 + 0.25 * i / max(n - 1, 1)
        ch, cw = int(h * f), int(w * f)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = rgb[y:y + ch, x:x + cw]
        out.append(np.ascontiguousarray(crop[:, ::-1] if i % 2 else crop))
    return out


def train_mug_or_dog(engine, photos: dict):
    """The trained model (:class:`core.models.TrainedModel`) over ``PHOTOS``' classes; ``photos``: file name →
    loaded photo (the tests' ``photos`` fixture)."""
    from core.training import TrainConfig, train

    thumbs, labels = [], []
    for k, (name, file) in enumerate(PHOTOS.items()):
        pics = variants(photos[file].rgb)
        thumbs += pics
        labels += [k] * len(pics)
    result = train(engine, thumbs, np.array(labels), list(PHOTOS), TrainConfig(seed=0), title=TITLE)
    return result.model
