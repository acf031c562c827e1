"""Training on a user's own classes (transfer learning), then explaining that model like any other.

- :mod:`.data` — a :class:`Dataset` of named classes from folders, a ZIP, image files or webcam shots
  (thumbnails only), with one-line refusals (:class:`DatasetError`).
- :mod:`.features` — pooled backbone features, batched through the compiled engine and cached by pixel hash.
- :mod:`.trainer` — the head trainer, the fine-tuner of the last blocks, and the loop they share.
- :mod:`.shortcut` — the teaching stamp (:class:`Stamp`): plant a shortcut, watch Grad-CAM find it.
- :mod:`.run` — :func:`train`: images → a :class:`core.models.TrainedModel` + history + validation results.

The trained model itself (and its safe file format) lives in :mod:`core.models.trained`; the engine pool
serves it like a zoo model.
"""
from .data import Dataset, DatasetError, Example, add_files, read_folder, read_zip
from .features import FeatureCache, Stopped, compute_features
from .run import TrainResult, check_labels, stamp_images, train
from .shortcut import ShortcutEffect, Stamp, shortcut_effect
from .trainer import TrainConfig, backbone_blocks, stratified_split

__all__ = ["Dataset", "DatasetError", "Example", "FeatureCache", "ShortcutEffect", "Stamp", "shortcut_effect", "Stopped", "TrainConfig", "TrainResult",
           "add_files", "backbone_blocks", "check_labels", "compute_features", "read_folder", "read_zip",
           "stamp_images", "stratified_split", "train"]
