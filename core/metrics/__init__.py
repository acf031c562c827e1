"""Measuring explanations (no Streamlit here).

- :mod:`.boxes` — the boxes themselves: a dataset's annotations CSV, one photo's CSV or Pascal VOC XML upload,
  a canvas's rectangles; one-line errors, bounded reads, no XML entities.
- :mod:`.localisation` — against annotated boxes: IoU of the thresholded map's box, the pointing game,
  energy-based pointing, IoU against the threshold.
- :mod:`.faithfulness` — deletion and insertion curves (RISE), average drop and increase in confidence.
- :mod:`.road` — ROAD (Rong et al. 2022): pixels removed and imputed from their neighbours, most and least
  relevant first, as pytorch-grad-cam computes it.
- :mod:`.baselines` — a random map, a centre prior and the photo's edges, to read every score against.
- :mod:`.similarity` — Spearman rank correlation and SSIM of two maps.
- :mod:`.sanity` — cascading model-parameter randomisation (Adebayo et al. 2018) on a separate copy.
- :mod:`.evaluation` — all of it per photo and over a folder of photos, in worker processes if asked.
"""
from .boxes import read_boxes
from .localisation import cam_box, evaluate, iou

__all__ = ["cam_box", "evaluate", "iou", "read_boxes"]
