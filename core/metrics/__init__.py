"""Measuring explanations. :mod:`.localisation`: top-1 accuracy and the Grad-CAM box against
annotated boxes (the ImageNet localisation error)."""
from .localisation import cam_box, evaluate, iou, read_boxes

__all__ = ["cam_box", "evaluate", "iou", "read_boxes"]
