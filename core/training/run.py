"""Training end to end: images + class names → a :class:`~core.models.TrainedModel`, its history, and how it
does on the held-out images (the Train page and ``python -m core train`` both call :func:`train`)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..models import TrainedModel, build_classifier
from ..models.trained import HEAD_LOGITS
from .data import MAX_CLASSES, MIN_CLASSES, MIN_PER_CLASS, DatasetError
from .features import FeatureCache, compute_features
from .shortcut import Stamp
from .trainer import TrainConfig, fine_tune, stratified_split, train_head


@dataclass
class TrainResult:
    """What a training produced.

    Attributes:
        model: the trained model (None only when stopped before any epoch).
        history: one record per epoch (see :func:`core.training.trainer.fit`).
        train_idx, val_idx: indices into the images given.
        val_probs: (validation images, classes) probabilities of the trained model.
        features_seconds: network time spent on features (images already cached cost nothing).
        train_seconds: wall time of the training epochs.
        stopped: the user stopped it (the best epoch so far was kept).
    """

    model: TrainedModel | None
    history: list
    classes: list
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_probs: np.ndarray
    features_seconds: float
    train_seconds: float
    stopped: bool

    @property
    def val_pred(self) -> np.ndarray:
        return self.val_probs.argmax(1) if len(self.val_probs) else np.zeros(0, np.int64)

    @property
    def val_accuracy(self) -> float | None:
        if not len(self.val_idx):
            return None
        return float((self.val_pred == self.labels[self.val_idx]).mean())

    def confusion(self) -> np.ndarray:
        """(true class, predicted class) counts over the validation images."""
        n = len(self.classes)
        m = np.zeros((n, n), np.int64)
        for t, p in zip(self.labels[self.val_idx], self.val_pred):
            m[t, p] += 1
        return m

    def wrong(self) -> list[tuple[int, int, int]]:
        """(image index, true class, predicted class) of every validation image the model got wrong."""
        return [(int(i), int(self.labels[i]), int(p)) for i, p in zip(self.val_idx, self.val_pred)
                if p != self.labels[i]]


def check_labels(labels: np.ndarray, classes) -> None:
    """DatasetError unless there are 2–20 classes with at least 2 images each."""
    if not MIN_CLASSES <= len(classes) <= MAX_CLASSES:
        raise DatasetError(f"Training needs {MIN_CLASSES}–{MAX_CLASSES} classes; there are {len(classes)}.")
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < MIN_PER_CLASS:
        c = int(counts.argmin())
        raise DatasetError(f"Every class needs at least {MIN_PER_CLASS} images; {classes[c]!r} has {counts[c]}.")


def stamp_images(thumbs, labels, stamp: Stamp | None, stamp_class: int | None) -> list[np.ndarray]:
    """The images with ``stamp`` on every image of class ``stamp_class`` (a dataset artefact: train and
    validation images alike, which is why validation accuracy does not reveal the shortcut)."""
    if stamp is None or stamp_class is None:
        return list(thumbs)
    return [stamp.apply(t) if int(y) == int(stamp_class) else t for t, y in zip(thumbs, labels)]


def train(engine, thumbs, labels, classes, cfg: TrainConfig = TrainConfig(), title: str = "My model",
          cache: FeatureCache | None = None, on_epoch=None, progress=None, should_stop=None) -> TrainResult:
    """Train a classifier over ``classes`` on ``engine``'s backbone.

    Head only: pooled features once per image (cached), then a softmax head. With
    ``cfg.fine_tune_blocks`` = K > 0 the head trained that way then starts the fine-tuning of the last K
    blocks on the images (augmented).

    Args:
        engine: the backbone's engine (the pool's: features go through its compiled pass).
        thumbs: uint8 images (any size); labels: class index of each; classes: names in index order.
        progress: ``progress(fraction, text)``.
        should_stop: checked between batches; features stop with :class:`~core.training.features.Stopped`,
            training keeps the best epoch so far.

    Raises:
        DatasetError: too few classes or images.
    """
    labels = np.asarray(labels, np.int64)
    classes = list(classes)
    check_labels(labels, classes)
    spec = engine.spec
    tr, va = stratified_split(labels, cfg.val_split, cfg.seed)
    ft = cfg.fine_tune_blocks > 0
    say = progress or (lambda f, t: None)
    head_share = 0.25 if ft else 0.7

    say(0.0, "Computing features")
    feats, f_sec = compute_features(engine, thumbs, cache, progress=lambda f: say(0.3 * f, "Computing features"),
                                    should_stop=should_stop)
    t = time.perf_counter()
    kernel, bias, history, stopped = train_head(
        feats[tr], labels[tr], feats[va], labels[va], len(classes), cfg, on_epoch,
        lambda f: say(0.3 + head_share * f, "Training the head"), should_stop)
    weights = {HEAD_LOGITS: [kernel, bias]}
    info = {"mode": "head only", "train_images": int(len(tr)), "val_images": int(len(va)), "seed": cfg.seed}
    if ft and not stopped:
        model = build_classifier(spec.name, len(classes))
        model.get_layer(HEAD_LOGITS).set_weights([kernel, bias])
        changed, more, stopped = fine_tune(
            model, spec, HEAD_LOGITS, thumbs, labels, tr, va, cfg, on_epoch,
            lambda f: say(0.3 + head_share + (0.7 - head_share) * f, "Fine-tuning"), should_stop,
            first_epoch=len(history) + 1)
        history += more
        weights = {n: model.get_layer(n).get_weights() for n in changed}
        blocks = len(changed) - 1
        info["mode"] = f"fine-tuned the last {cfg.fine_tune_blocks} blocks ({blocks} layers with weights)"
        val_probs = _probs(_logits_of(model, spec, thumbs, va))
    else:
        val_probs = _probs(feats[va].astype(np.float64) @ kernel.astype(np.float64) + bias)
    train_seconds = time.perf_counter() - t
    result = TrainResult(None, history, classes, labels, tr, va, val_probs, f_sec, train_seconds, stopped)
    info["val_accuracy"] = result.val_accuracy
    info["epochs"] = len(history)
    if history:  # stopped before the first epoch ended: the head is untrained, no model
        result.model = TrainedModel(title=title, backbone=spec.name, classes=tuple(classes), weights=weights,
                                    info=info)
    say(1.0, "Done" if result.model is not None else "Stopped before the first epoch")
    return result


def _probs(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True) if len(logits) else e


def _logits_of(model, spec, thumbs, idx) -> np.ndarray:
    from ..imaging.images import resize_for_model

    if not len(idx):
        return np.zeros((0, model.output_shape[-1]))
    out = []
    for s in range(0, len(idx), 32):
        x = np.stack([spec.preprocess(resize_for_model(thumbs[i], spec.input_size)) for i in idx[s:s + 32]])
        out.append(np.asarray(model(x, training=False), np.float64))
    return np.concatenate(out)
