"""Getting models into memory: the registry, and how each model is built, loaded and held.

- :mod:`.registry` — one :class:`ModelSpec` per model, :func:`load_model` and :func:`load_inference`.
- :mod:`.lite` (+ :mod:`.torchpickle`, which reads its PyTorch checkpoint without torch) — the offline
  default, EfficientNet-Lite0.
- :mod:`.keras_zoo` — the Keras applications: Keras's weights cache, download and builders.
- :mod:`.vgg16` — VGG16 with its dense layers in float16, streamed from files.
- :mod:`.fold` — BatchNorm folded into the convolutions, at load time.
- :mod:`.held` — a model's weights in one NumPy buffer outside TensorFlow's allocator.
- :mod:`.trained` — a model trained on a user's classes (:class:`TrainedModel`), saved and loaded safely.

Folding and held weights live here, not with the engine, because they are how a model is *loaded*
(``load_inference`` returns the folded, held model); the engine only runs what it is given.
"""
from .keras_zoo import fetch_weights, keras_cache_dir
from .registry import (DEFAULT_MODEL, REGISTRY, ModelSpec, UnknownModel, WeightsUnavailable, get_spec,
                       layer_shapes, load_inference, load_model, static_layer_shapes)
from .trained import ModelFileError, TrainedModel, build_classifier, load_file, trainable_backbones

__all__ = ["DEFAULT_MODEL", "REGISTRY", "ModelFileError", "ModelSpec", "TrainedModel", "UnknownModel",
           "WeightsUnavailable", "build_classifier", "fetch_weights", "get_spec", "keras_cache_dir", "layer_shapes",
           "load_file", "load_inference", "load_model", "static_layer_shapes", "trainable_backbones"]
