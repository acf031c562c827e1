"""Training on a user's own classes (transfer learning), then explaining that model like any other.

- :mod:`.data` — a :class:`Dataset` of named classes from folders, a ZIP, image files or webcam shots
  (thumbnails only), with one-line refusals (:class:`DatasetError`).
- :mod:`.features` — pooled backbone features, batched through the compiled engine and cached by pixel hash.
- :mod:`.head` — the head-only default: a logistic regression solved to convergence, its strength chosen by
  cross-validation.
- :mod:`.trainer` — the settings, the fine-tuner of the last blocks, and its loop.
- :mod:`.shortcut` — the teaching stamp (:class:`Stamp`): plant a shortcut, watch Grad-CAM find it.
- :mod:`.run` — :func:`train`: images → a :class:`core.models.TrainedModel` + history + validation results.

The trained model itself (and its safe file format) lives in :mod:`core.models.trained`; the engine pool
serves it like a zoo model.
"""
from .data import Dataset, DatasetError, Example, add_files, read_folder
from .zipdata import read_zip
from .features import FeatureCache, Stopped, compute_features
from .run import TrainResult, check_labels, stamp_images, train
from .shortcut import ShortcutEffect, Stamp, shortcut_effect
from .head import HeadFit, fit_head, wilson_interval
from .trainer import TrainConfig, backbone_blocks, stratified_split

__all__ = ["Dataset", "DatasetError", "Example", "FeatureCache", "HeadFit", "ShortcutEffect", "Stamp", "shortcut_effect", "Stopped", "TrainConfig", "TrainResult",
           "add_files", "backbone_blocks", "check_labels", "compute_features", "fit_head", "read_folder", "read_zip",
           "stamp_images", "stratified_split", "train", "wilson_interval"]
