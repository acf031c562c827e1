"""The Keras applications zoo: Keras's own weights cache and download, and the builders of its models.

Each model is built with ``keras.applications`` from a weights file in Keras's cache
(``~/.keras/models`` or ``$KERAS_HOME/models``), with ``classifier_activation=None`` so that its
output is the logits. :func:`fetch_weights` downloads a missing file with Keras's own
``get_file`` (hash check and cache) and reports progress.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from .registry import ModelSpec

KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"


def keras_cache_dir() -> Path:
    """Keras's own download cache for application weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def effnet_layers() -> tuple[str, ...]:
    ends = ["block1a_project_bn", "block2a_project_bn", "block2b_add", "block3a_project_bn", "block3b_add",
            "block4a_project_bn", "block4b_add", "block4c_add", "block5a_project_bn", "block5b_add", "block5c_add",
            "block6a_project_bn", "block6b_add", "block6c_add", "block6d_add", "block7a_project_bn"]
    return ("stem_activation", *ends, "top_activation")


# keras.applications' EfficientNets built with weights="imagenet" put a Rescaling by 1/sqrt(std) after
# their Normalization layer (see TensorFlow issue #49930); built from a weights file, as here, they do not.
_EFFNET_IMAGENET_STD = (0.229, 0.224, 0.225)


def _effnet_imagenet_scaling(model) -> None:
    """Give an EfficientNet built from a weights file the input scaling of ``weights="imagenet"``,
    folded into its Normalization layer's variance: (x − μ)/√var · 1/√s = (x − μ)/√(var·s)."""
    norm = next(la for la in model.layers if type(la).__name__ == "Normalization")
    mean, variance, count = norm.get_weights()
    norm.set_weights([mean, (variance * np.asarray(_EFFNET_IMAGENET_STD)).astype(variance.dtype), count])
    norm.finalize_state()  # the layer computes with tensors made from its variables here


def keras_builder(ctor_name: str, input_size: int):
    def build(weights):
        import keras

        ctor = getattr(keras.applications, ctor_name)
        model = ctor(weights=weights, include_top=True, classifier_activation=None,
                     input_shape=(input_size, input_size, 3))
        if weights is not None and ctor_name.startswith("EfficientNet"):
            _effnet_imagenet_scaling(model)
        return model
    return build


def fetch_weights(spec: ModelSpec, progress: Callable[[float], None] | None = None) -> Path | None:
    """Download a Keras model's ImageNet weights into Keras's cache (no-op when cached or Lite0).

    Uses ``keras.utils.get_file`` (Keras's own download, hash check and cache); ``progress`` is
    called with the fraction done (0..1) while it runs.

    Raises:
        WeightsUnavailable: the download failed (typically: no network).
    """
    from .registry import DEFAULT_MODEL, WeightsUnavailable

    if spec.family == "lite" or spec.weights_cached():
        if progress:
            progress(1.0)
        return spec.weights_path()
    import keras

    target = spec.weights_path()
    result: dict = {}

    def work():
        try:
            # Keras says "Downloading data from …" on stdout, which a command's JSON output owns: to its logging
            # instead (a setting of this thread only)
            keras.config.disable_interactive_logging()
            result["path"] = keras.utils.get_file(spec.weights_file, spec.weights_url, cache_subdir="models",
                                                  cache_dir=str(keras_cache_dir().parent))
        except BaseException as exc:  # noqa: BLE001 - reported below as one sentence
            result["error"] = exc

    t = threading.Thread(target=work, daemon=True)
    t.start()
    total = spec.weights_mb * 1024 * 1024
    while t.is_alive():
        t.join(0.25)
        if progress and total:
            done = sum(p.stat().st_size for p in target.parent.glob(target.name + "*") if p.exists()) \
                if target.parent.exists() else 0
            progress(min(0.99, done / total))
    if "error" in result or not spec.weights_cached():
        for p in target.parent.glob(target.name + "*"):
            if p != target or p.stat().st_size == 0:
                p.unlink(missing_ok=True)
        raise WeightsUnavailable(
            f"{spec.title} needs ImageNet weights from the internet, which cannot be reached and are not cached "
            f"in {target.parent}; run `python -m core prefetch --model {spec.name}` while online, "
            f"or use the offline default {DEFAULT_MODEL}."
        )
    if progress:
        progress(1.0)
    return Path(result["path"])
