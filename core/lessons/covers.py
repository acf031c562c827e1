"""A ``prob_after_mask`` value exercise of an ``object`` ("gray out the dog"): the figure depends on the rectangle a
learner draws over the object, so an answer the object's own box does not accept is checked against every rectangle
that covers the object and leaves the photo's other boxed objects alone (:func:`covers`), run once and kept in the
lesson cache (:func:`cover_range`)."""
from __future__ import annotations

import numpy as np

from .boxes import boxes_for
from .schema import Exercise


def covers(box, others) -> list[tuple[float, float, float, float]]:
    """The rectangles (fractions) that cover ``box`` and leave the ``others`` alone, as a learner draws one over an
    object: each side at the box's edge or moved out as far as it goes (to the photo's edge, or to the nearest other
    box on that side that faces it), every combination, without repeats."""
    x0, y0, x1, y1 = box
    facing = [o for o in others if not (o[0] < x1 and o[2] > x0 and o[1] < y1 and o[3] > y0)]  # not overlapping it
    across = [o for o in facing if o[1] < y1 and o[3] > y0]  # beside it (left or right)
    stacked = [o for o in facing if o[0] < x1 and o[2] > x0]  # above or below it
    outer = (max([o[2] for o in across if o[2] <= x0], default=0.0),
             max([o[3] for o in stacked if o[3] <= y0], default=0.0),
             min([o[0] for o in across if o[0] >= x1], default=1.0),
             min([o[1] for o in stacked if o[1] >= y1], default=1.0))
    out = []
    for pick in range(16):
        r = tuple(outer[i] if pick >> i & 1 else box[i] for i in range(4))
        if r not in out:
            out.append(r)
    return out


def cover_range(ex: Exercise, expected, engine, rgb: np.ndarray) -> tuple[float, float, int]:
    """A ``prob_after_mask`` exercise of an ``object``: the lowest and highest p(class), in the exercise's unit, over
    the :func:`covers` of the object filled with ``params.fill`` (the masked photos in batches), and how many
    rectangles that is. Kept in :data:`.checks.CACHE` beside the expected answer: computed once, for the first
    answer that the object's own box does not accept."""
    from .checks import CACHE, _fraction_mask, _key

    def make():
        from ..cam import occlusion

        h, w = rgb.shape[:2]
        box = tuple(expected.detail["box"])
        others = [b.fractions for b in boxes_for(ex.photo, ex.folder) if b.fractions != box]
        rects = covers(box, others)
        batch = np.concatenate([engine.prepare(occlusion.apply_fill(rgb, _fraction_mask(r, w, h), ex.params["fill"]))
                                for r in rects])
        p = engine.predict(batch)[:, expected.class_index] * (100 if ex.params["unit"] == "%" else 1)
        return float(p.min()), float(p.max()), len(rects)

    return CACHE.get_or_make(_key(ex, engine, rgb) + ("covers",), make, lambda _v: 0)
