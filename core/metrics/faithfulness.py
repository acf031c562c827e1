"""Faithfulness: does the model's confidence follow the map?

- :func:`deletion` / :func:`insertion` (Petsiuk et al., RISE, BMVC 2018): rank the pixels of the model
  input (S×S) by the map, most important first; remove (deletion) or reveal (insertion) them in ``steps``
  equal parts; record the class probability after each part. The curve has ``steps + 1`` points, at
  fractions 0, 1/steps, …, 1; its area (trapezoid rule over 0..1) is the score: low is good for deletion
  (the probability falls fast), high for insertion. Removed pixels take a fill from
  :func:`core.cam.occlusion.apply_fill` (gray, 128, by default, as the Occlude page); insertion starts
  from the photo blurred as the Occlude page's "blur" fill does, as in the paper. All the curve's images
  go through the model in one batch.
- :func:`confidence_change` (Chattopadhyay et al., Grad-CAM++, WACV 2018): the class probability on the
  photo multiplied by the map scaled to 0..1; the *drop* is max(0, Y − O) / Y (the paper's "average
  drop" once averaged, here a fraction, not a percentage) and *increase* is whether O > Y.
  :func:`kept_visible` is the share of the photo that explanation map keeps (the mean of the map scaled to
  0..1): a map that keeps most of the photo scores a low drop without pointing at the object.

The map's pixel order: the map is upsampled (bilinear) to S×S and sorted by value, highest first; equal
values keep raster order (a stable sort), so the curve is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cam import occlusion
from ..imaging import images, render

STEPS = 20
DELETION_FILL = "gray"
INSERTION_START = "blur"


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve.

    Attributes:
        kind: 'deletion' or 'insertion'.
        fractions: (steps + 1,) share of the pixels removed (deletion) or revealed (insertion), 0..1.
        probs: (steps + 1,) the class probability at each fraction.
        auc: the area under ``probs`` over ``fractions`` (trapezoid rule).
    """

    kind: str
    fractions: np.ndarray
    probs: np.ndarray
    auc: float


def auc(y, x=None) -> float:
    """Area under y(x) by the trapezoid rule; x defaults to equal steps over 0..1."""
    y = np.asarray(y, np.float64)
    x = np.linspace(0.0, 1.0, len(y)) if x is None else np.asarray(x, np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def pixel_order(cam: np.ndarray, size: int) -> np.ndarray:
    """Flat indices of the S×S model input, most important first (the map upsampled bilinearly to S×S,
    non-finite values counted as 0, ties in raster order)."""
    c = np.nan_to_num(np.asarray(render.upsample(cam, size, size), np.float64))
    return np.argsort(-c.ravel(), kind="stable")


def step_counts(n_pixels: int, steps: int) -> np.ndarray:
    """Pixels changed after each of the ``steps`` parts: round(k · n / steps) for k = 0..steps."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    return np.rint(np.arange(steps + 1) * n_pixels / steps).astype(np.int64)


def perturbed_batch(start: np.ndarray, end: np.ndarray, order: np.ndarray, steps: int) -> np.ndarray:
    """(steps + 1, S, S, 3): image k takes the first ``counts[k]`` pixels of ``order`` from ``end``, the rest
    from ``start`` (image 0 is ``start``, the last is ``end``)."""
    s = start.shape[0]
    counts = step_counts(s * s, steps)
    rank = np.empty(s * s, np.int64)
    rank[order] = np.arange(s * s)
    changed = rank.reshape(s, s)[None] < counts[:, None, None]  # (steps + 1, S, S)
    return np.where(changed[..., None], end[None], start[None]).astype(np.float32)


def model_photo(engine, rgb: np.ndarray) -> np.ndarray:
    """The photo as the model sees it before preprocessing: (S, S, 3) float32 in 0..255."""
    return images.resize_for_model(rgb, engine.spec.input_size)


def filled(photo: np.ndarray, fill: str) -> np.ndarray:
    """The model-size photo with every pixel filled by ``fill`` (a fill of the Occlude page)."""
    whole = np.ones(photo.shape[:2], bool)
    return occlusion.apply_fill(np.clip(np.rint(photo), 0, 255).astype(np.uint8), whole, fill).astype(np.float32)


def _curve(engine, kind: str, start, end, order, class_index: int, steps: int) -> Curve:
    batch = perturbed_batch(start, end, order, steps)
    probs = engine.predict(engine.spec.preprocess(batch))[:, int(class_index)]
    fractions = step_counts(order.size, steps) / order.size
    return Curve(kind, fractions, probs, auc(probs, fractions))


def deletion(engine, rgb: np.ndarray, cam: np.ndarray, class_index: int, steps: int = STEPS,
             fill: str = DELETION_FILL) -> Curve:
    """The deletion curve: the map's most important pixels filled first (see the module's notes).

    Args:
        engine: a :class:`core.engine.Engine` (only its batched forward pass is used).
        rgb: (H, W, 3) uint8 photo.
        cam: the raw map at any resolution (the layer's own, or upsampled).
        class_index: whose probability to follow.
        steps: equal parts; the curve has steps + 1 points.
        fill: how removed pixels look (:data:`core.cam.occlusion.FILLS`).
    """
    photo = model_photo(engine, rgb)
    order = pixel_order(cam, photo.shape[0])
    return _curve(engine, "deletion", photo, filled(photo, fill), order, class_index, steps)


def insertion(engine, rgb: np.ndarray, cam: np.ndarray, class_index: int, steps: int = STEPS,
              start: str = INSERTION_START) -> Curve:
    """The insertion curve: from the blurred photo, the map's most important pixels revealed first."""
    photo = model_photo(engine, rgb)
    order = pixel_order(cam, photo.shape[0])
    return _curve(engine, "insertion", filled(photo, start), photo, order, class_index, steps)


def curves(engine, rgb: np.ndarray, cam: np.ndarray, class_index: int, steps: int = STEPS,
           fill: str = DELETION_FILL, start: str = INSERTION_START) -> tuple[Curve, Curve]:
    """Deletion and insertion together, in one batch of 2 × (steps + 1) images."""
    photo = model_photo(engine, rgb)
    order = pixel_order(cam, photo.shape[0])
    batch = np.concatenate([perturbed_batch(photo, filled(photo, fill), order, steps),
                            perturbed_batch(filled(photo, start), photo, order, steps)])
    probs = engine.predict(engine.spec.preprocess(batch))[:, int(class_index)]
    fractions = step_counts(order.size, steps) / order.size
    d, i = probs[:steps + 1], probs[steps + 1:]
    return Curve("deletion", fractions, d, auc(d, fractions)), Curve("insertion", fractions, i, auc(i, fractions))


def explanation_weights(cam: np.ndarray, size: int) -> np.ndarray:
    """(S, S) weights in 0..1 that multiply the model-size photo into :func:`confidence_change`'s explanation
    map: the map upsampled (bilinear) to S×S and divided by its maximum (negative and non-finite values as 0)."""
    return render.normalise(render.upsample(cam, size, size))


def kept_visible(cam: np.ndarray, size: int) -> float:
    """The share of the photo that :func:`confidence_change`'s explanation map keeps: the mean of
    :func:`explanation_weights` (1 = the whole photo at full brightness, 0 = a black photo).

    Average drop compares the class probability on photo × map with the photo's, so a map that keeps most of
    the photo (a broad map: a wide centre prior, noise around one half everywhere) tends to lose little
    probability, whether or not it points at the object; read its drop beside this share. Not a metric of the
    Grad-CAM++ paper."""
    return float(explanation_weights(cam, size).mean())


def confidence_change(engine, rgb: np.ndarray, cam: np.ndarray, class_index: int) -> tuple[float, bool, float, float]:
    """Average drop's and increase in confidence's per-photo terms (Grad-CAM++ paper, section 6.1).

    The explanation map is the model-size photo (0..255) times the map upsampled and divided by its
    maximum (an all-zero map gives a black photo).

    Returns:
        (drop, increase, Y, O): drop = max(0, Y − O) / Y, increase = O > Y, with Y the class probability on
        the photo and O on the explanation map.
    """
    photo = model_photo(engine, rgb)
    unit = explanation_weights(cam, photo.shape[0])
    batch = np.stack([photo, photo * unit[..., None]])
    y, o = (float(v) for v in engine.predict(engine.spec.preprocess(batch))[:, int(class_index)])
    drop = max(0.0, y - o) / y if y > 0 else 0.0
    return drop, o > y, y, o
