"""Training end to end: images + class names → a :class:`~core.models.TrainedModel`, how it was chosen, and how
it does on images it did not learn from (the Train page and ``python -m core train`` both call :func:`train`)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..models import TrainedModel, build_classifier
from ..models.trained import HEAD_LOGITS
from .data import MAX_CLASSES, MIN_CLASSES, MIN_PER_CLASS, DatasetError
from .features import FeatureCache, compute_features
from .head import HeadFit, fit_head, wilson_interval
from .shortcut import Stamp
from .trainer import TrainConfig, fine_tune, stratified_split


@dataclass
class TrainResult:
    """What a training produced.

    Attributes:
        model: the trained model (None only when stopped before anything was fitted).
        head: the head's search (:class:`~core.training.head.HeadFit`: the cross-validation curve, the strength
            chosen; None when stopped while it ran before any strength was tried).
        history: one record per fine-tuning epoch (see :func:`core.training.trainer.fit`); empty for head only.
        train_idx: the images the model was fitted on (all of them for head only).
        val_idx, val_probs: the images the figures below are measured on, and their probabilities from a model
            that did not learn from them: head only, every image from the cross-validation fold that left it out;
            fine-tuned, the held-out split through the fine-tuned model.
        evaluation: "cross-validation" or "held-out".
        features_seconds: network time spent on features (images already cached cost nothing).
        train_seconds: wall time of the fitting (search, final fit, fine-tuning).
        stopped: the user stopped it (what was fitted so far was kept).
    """

    model: TrainedModel | None
    head: HeadFit | None
    history: list
    classes: list
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_probs: np.ndarray
    evaluation: str
    features_seconds: float
    train_seconds: float
    stopped: bool

    @property
    def val_pred(self) -> np.ndarray:
        return self.val_probs.argmax(1) if len(self.val_probs) else np.zeros(0, np.int64)

    @property
    def val_right(self) -> int:
        return int((self.val_pred == self.labels[self.val_idx]).sum()) if len(self.val_idx) else 0

    @property
    def val_accuracy(self) -> float | None:
        if not len(self.val_idx):
            return None
        return self.val_right / len(self.val_idx)

    def interval(self) -> tuple[float, float] | None:
        """95 % Wilson interval of :attr:`val_accuracy` (how much a figure on this many images can be trusted)."""
        return None if not len(self.val_idx) else wilson_interval(self.val_right, len(self.val_idx))

    def describe(self) -> str:
        """One line: what the accuracy was measured on, e.g. "5-fold cross-validation on 40 images"."""
        n = len(self.val_idx)
        if self.evaluation == "cross-validation" and self.head is not None:
            return f"{self.head.folds}-fold cross-validation on {n} image{'s' * (n != 1)}"
        return f"{n} held-out image{'s' * (n != 1)}"

    def confusion(self) -> np.ndarray:
        """(true class, predicted class) counts over the evaluated images."""
        n = len(self.classes)
        m = np.zeros((n, n), np.int64)
        for t, p in zip(self.labels[self.val_idx], self.val_pred):
            m[t, p] += 1
        return m

    def wrong(self) -> list[tuple[int, int, int]]:
        """(image index, true class, predicted class) of every evaluated image the model got wrong."""
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
          cache: FeatureCache | None = None, on_strength=None, on_epoch=None, progress=None,
          should_stop=None) -> TrainResult:
    """Train a classifier over ``classes`` on ``engine``'s backbone.

    Head only (the default): pooled features once per image (cached), then :func:`~core.training.head.fit_head`
    on all images — the strength chosen by k-fold cross-validation, the head refit on every image; the figures
    come from the cross-validation. With ``cfg.fine_tune_blocks`` = K > 0, ``cfg.val_split`` of each class is
    held out first, the head is fitted the same way on the rest, and that head starts the fine-tuning of the
    last K blocks (augmented), stopped early on the held-out images and judged on them.

    Args:
        engine: the backbone's engine (the pool's: features go through its compiled pass).
        thumbs: uint8 images (any size); labels: class index of each; classes: names in index order.
        on_strength: called with each regularisation strength's cross-validation record.
        on_epoch: called with each fine-tuning epoch's record.
        progress: ``progress(fraction, text)``.
        should_stop: checked between batches and solves; features stop with
            :class:`~core.training.features.Stopped`, the search keeps the strengths tried, fine-tuning its best
            epoch so far.

    Raises:
        DatasetError: too few classes or images.
    """
    labels = np.asarray(labels, np.int64)
    classes = list(classes)
    check_labels(labels, classes)
    spec = engine.spec
    ft = cfg.fine_tune_blocks > 0
    tr, va = stratified_split(labels, cfg.val_split, cfg.seed) if ft else (np.arange(len(labels)), np.zeros(0, np.int64))
    say = progress or (lambda f, t: None)
    head_share = 0.05 if ft else 0.6

    say(0.0, "Computing features")
    feats, f_sec = compute_features(engine, thumbs, cache, progress=lambda f: say(0.4 * f, "Computing features"),
                                    should_stop=should_stop)
    t = time.perf_counter()
    head = fit_head(feats[tr], labels[tr], len(classes), cfg.l2_grid, cfg.folds, cfg.seed, on_strength,
                    lambda f: say(0.4 + head_share * f, "Choosing the regularisation by cross-validation"), should_stop)
    result = TrainResult(None, head, [], classes, labels, tr, tr, head.oof_probs, "cross-validation", f_sec, 0.0,
                         head.stopped)
    if head.stopped and not head.curve:  # stopped before a single strength was tried: nothing to keep
        result.head, result.val_idx, result.val_probs = None, np.zeros(0, np.int64), np.zeros((0, len(classes)))
        result.train_seconds = time.perf_counter() - t
        say(1.0, "Stopped before anything was fitted")
        return result
    weights = {HEAD_LOGITS: [head.kernel, head.bias]}
    info = {"mode": "head only", "train_images": int(len(tr)), "val_images": 0, "seed": cfg.seed,
            "l2": head.l2, "folds": head.folds, "cv_accuracy": head.cv_accuracy}
    if ft and not head.stopped:
        model = build_classifier(spec.name, len(classes))
        model.get_layer(HEAD_LOGITS).set_weights([head.kernel, head.bias])
        changed, history, stopped = fine_tune(
            model, spec, HEAD_LOGITS, thumbs, labels, tr, va, cfg, head.l2, on_epoch,
            lambda f: say(0.4 + head_share + (0.6 - head_share) * f, "Fine-tuning"), should_stop)
        result.history, result.stopped = history, stopped
        weights = {n: model.get_layer(n).get_weights() for n in changed}
        blocks = len(changed) - 1
        info["mode"] = f"fine-tuned the last {cfg.fine_tune_blocks} blocks ({blocks} layers with weights)"
        info["val_images"] = int(len(va))
        result.val_idx, result.val_probs, result.evaluation = va, _probs(_logits_of(model, spec, thumbs, va)), "held-out"
        if not history:  # stopped before the first fine-tuning epoch: the fitted head alone
            weights = {HEAD_LOGITS: [head.kernel, head.bias]}
            info["mode"] = "head only (fine-tuning stopped before its first epoch)"
    if result.val_probs is None:
        result.val_idx, result.val_probs = np.zeros(0, np.int64), np.zeros((0, len(classes)))
    result.train_seconds = time.perf_counter() - t
    info["val_accuracy"] = result.val_accuracy
    info["evaluation"] = result.evaluation
    info["epochs"] = len(result.history)
    result.model = TrainedModel(title=title, backbone=spec.name, classes=tuple(classes), weights=weights, info=info)
    say(1.0, "Done")
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
