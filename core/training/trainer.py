"""Fine-tuning the backbone's last blocks (minutes), as in Keras's transfer-learning guide: BatchNorm stays in
inference mode, the head (already fitted by :func:`core.training.head.fit_head`) goes on at a low rate and the
unfrozen blocks at a tenth of it, light augmentation (random crop after a 14 % enlargement, and a horizontal flip).

The head-only default lives in :mod:`.head` (a logistic regression solved to convergence, its strength chosen by
cross-validation); this module holds the configuration both share, the seeded stratified split, and the loop
fine-tuning runs (:func:`fit`): seeded shuffling, mini-batches, a record per epoch (plain cross-entropy
``loss`` and ``accuracy`` over the epoch's batches; ``val_loss`` and ``val_accuracy`` on the held-out split),
early stopping on the validation loss with the best epoch's weights restored, and a stop callback checked
between batches. Nothing here sets a process-wide random seed: several trainings may run at once.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import numpy as np

from ..engine.passes import in_buckets
from ..imaging.images import resize_for_model
from .features import Stopped
from .head import FOLDS, L2_GRID

AUGMENT_ZOOM = 1.14


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults: what the Train page and ``python -m core train`` use).

    Attributes:
        folds: k of the cross-validation that chooses the head's regularisation (fewer when a class has
            fewer images).
        l2_grid: the strengths λ tried (penalty λ·ΣW² on the head's kernel, beside the mean cross-entropy).
        seed: folds, split, shuffling and augmentation.
        fine_tune_blocks: backbone blocks unfrozen after the head is fitted (0: head only).
        fine_tune_epochs: epochs of that second phase (early stopping may end sooner).
        val_split: with fine-tuning, the fraction of each class held out (stratified, seeded) to stop early on
            and to judge the fine-tuned model; the head is fitted on the rest. Head only holds nothing out:
            cross-validation judges it on every image.
        batch_size: images per fine-tuning step.
        fine_tune_lr: Adam's rate for the head while fine-tuning; the unfrozen blocks move at a tenth of it.
        patience: fine-tuning epochs without a lower validation loss before stopping.
        label_smoothing: while fine-tuning, the targets give this much of their weight evenly to all classes
            (Keras's ``label_smoothing``; Szegedy et al. 2016); the reported losses are the plain cross-entropy.
    """

    folds: int = FOLDS
    l2_grid: tuple = L2_GRID
    seed: int = 0
    fine_tune_blocks: int = 0
    fine_tune_epochs: int = 5
    val_split: float = 0.2
    batch_size: int = 32
    fine_tune_lr: float = 1e-3
    patience: int = 5
    label_smoothing: float = 0.05

    def __post_init__(self):
        if self.fine_tune_epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.folds < 2:
            raise ValueError("cross-validation needs at least 2 folds")
        if not self.l2_grid or min(self.l2_grid) <= 0:
            raise ValueError("the regularisation strengths must be positive")
        if not 0 <= self.val_split < 1:
            raise ValueError("the validation split must be at least 0 and below 1")
        if self.fine_tune_blocks < 0:
            raise ValueError("the number of fine-tuned blocks cannot be negative")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label smoothing must be at least 0 and below 1")


def stratified_split(labels: np.ndarray, val_split: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): ``val_split`` of each class, at least one image of each class on
    each side when the class has two or more and ``val_split`` > 0. Sorted; the same for the same seed."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = 0 if val_split <= 0 else min(max(1, int(round(len(idx) * val_split))), len(idx) - 1)
        va.extend(idx[:n_val])
        tr.extend(idx[n_val:])
    return np.sort(np.asarray(tr, np.int64)), np.sort(np.asarray(va, np.int64))


def fit(step, evaluate, n_train: int, epochs: int, batch_size: int, patience: int, seed: int,
        get_weights, set_weights, on_epoch=None, progress=None, should_stop=None, first_epoch: int = 1,
        phase: str = "head") -> tuple[list[dict], bool]:
    """The training loop both trainers share.

    Args:
        step: ``step(indices) -> (mean loss, correct count)`` trains on one batch of training indices.
        evaluate: ``() -> (val_loss, val_accuracy)``, or None values when there is no validation split.
        get_weights / set_weights: to restore the best epoch.
        on_epoch: called with each epoch's record.
        progress: called with the fraction of all epochs done, after each batch.
        should_stop: checked between batches; True stops after restoring the best epoch so far.

    Returns:
        (history, stopped by the user).
    """
    rng = np.random.default_rng(seed)
    history, best, best_w, wait, stopped = [], math.inf, None, 0, False
    steps = max(1, math.ceil(n_train / batch_size))
    for e in range(epochs):
        t = time.perf_counter()
        order = rng.permutation(n_train)
        losses, correct, seen = 0.0, 0.0, 0
        for b, s in enumerate(range(0, n_train, batch_size)):
            if should_stop is not None and should_stop():
                stopped = True
                break
            idx = order[s:s + batch_size]
            loss, ok = step(idx)
            losses += float(loss) * len(idx)
            correct += float(ok)
            seen += len(idx)
            if progress:
                progress((e + (b + 1) / steps) / epochs)
        if seen == 0:
            break
        val_loss, val_acc = evaluate()
        rec = {"epoch": first_epoch + e, "phase": phase, "loss": losses / seen, "accuracy": correct / seen,
               "val_loss": val_loss, "val_accuracy": val_acc, "seconds": round(time.perf_counter() - t, 4)}
        history.append(rec)
        if on_epoch:
            on_epoch(rec)
        watched = val_loss if val_loss is not None else rec["loss"]
        if watched < best - 1e-7:
            best, best_w, wait = watched, get_weights(), 0
        else:
            wait += 1
        if stopped or wait >= patience:
            break
    if best_w is not None:
        set_weights(best_w)
    return history, stopped


def _metrics(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of logits against labels, in float64."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean()), float((logits.argmax(1) == y).mean())


def _smoothed_loss(tf, y, logits, n_classes: int, smoothing: float):
    """(mean training loss on the smoothed targets, mean plain cross-entropy), both per image."""
    plain = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    if smoothing <= 0:
        return plain, plain
    target = tf.one_hot(y, n_classes) * (1.0 - smoothing) + smoothing / n_classes
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits)), plain


_BLOCK = re.compile(r"^(block_?\d+[a-z]?|conv\d+_block\d+)(?=_)")


def backbone_blocks(model, head_layers=()) -> list[tuple[str, list]]:
    """The backbone's blocks in order, as (block name, layers): a layer named ``block6d_…``, ``block_16_…`` or
    ``conv5_block3_…`` belongs to that block; layers after the last block (the top convolution) join it, and
    layers before the first block form the 'stem'. ``head_layers`` (names) are left out."""
    out: list[tuple[str, list]] = [("stem", [])]
    for layer in model.layers:
        if layer.name in head_layers or not layer.weights:
            continue
        m = _BLOCK.match(layer.name)
        if m and m.group(1) != out[-1][0]:
            out.append((m.group(1), []))
        out[-1][1].append(layer)
    return [b for b in out if b[1]]


def fine_tune(model, spec, head_layer: str, thumbs, labels, train_idx, val_idx, cfg: TrainConfig, l2: float,
              on_epoch=None, progress=None, should_stop=None, first_epoch: int = 1):
    """Fine-tune the last ``cfg.fine_tune_blocks`` blocks and the head of ``model`` in place.

    ``model``: a private Keras classifier (backbone → global average pooling → Dense ``head_layer``), its
    head already fitted; ``l2``: the head's penalty (the strength cross-validation chose for it). BatchNorm runs in inference mode; augmentation is a random crop of the photo
    enlarged by ``AUGMENT_ZOOM`` and a random horizontal flip (seeded).

    Returns:
        (names of the layers whose weights changed, history, stopped).
    """
    import keras
    import tensorflow as tf

    blocks = backbone_blocks(model, head_layers=(head_layer,))
    k = min(cfg.fine_tune_blocks, len(blocks))
    unfrozen = [layer for _, layers in blocks[len(blocks) - k:] for layer in layers]
    head = model.get_layer(head_layer)
    n_classes = int(head.units)
    for layer in model.layers:
        layer.trainable = layer is head or layer in unfrozen
    head_vars, body_vars = list(head.trainable_variables), [v for l in unfrozen for v in l.trainable_variables]
    opt_head = keras.optimizers.Adam(cfg.fine_tune_lr)
    opt_body = keras.optimizers.Adam(cfg.fine_tune_lr * 0.1)
    opt_head.build(head_vars)
    if body_vars:
        opt_body.build(body_vars)
    penalty = keras.regularizers.L2(l2)
    size = spec.input_size
    big = int(round(size * AUGMENT_ZOOM))
    labels = np.asarray(labels, np.int64)
    enlarged = {int(i): resize_for_model(thumbs[i], big).astype(np.uint8) for i in train_idx}
    x_val = (np.stack([spec.preprocess(resize_for_model(thumbs[i], size)) for i in val_idx])
             if len(val_idx) else None)
    rng = np.random.default_rng(cfg.seed + 1)
    sig = [tf.TensorSpec((None, size, size, 3), tf.float32), tf.TensorSpec((None,), tf.int64)]

    @tf.function(input_signature=sig, reduce_retracing=True)
    def step_fn(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=False)  # BatchNorm keeps its statistics (Keras's guide)
            fitted, data = _smoothed_loss(tf, y, logits, n_classes, cfg.label_smoothing)
            loss = fitted + penalty(head.kernel)
        grads = tape.gradient(loss, head_vars + body_vars)
        opt_head.apply(grads[:len(head_vars)], head_vars)
        if body_vars:
            opt_body.apply(grads[len(head_vars):], body_vars)
        return data, tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), y), tf.float32))

    @tf.function(input_signature=sig[:1], reduce_retracing=True)
    def logits_fn(x):
        return model(x, training=False)

    def augmented(idx):
        out = np.empty((len(idx), size, size, 3), np.float32)
        for j, i in enumerate(train_idx[idx]):
            img = enlarged[int(i)]
            y0, x0 = rng.integers(0, big - size + 1, size=2)
            crop = img[y0:y0 + size, x0:x0 + size]
            out[j] = crop[:, ::-1] if rng.random() < 0.5 else crop
        return spec.preprocess(out)

    def step(idx):
        return step_fn(tf.constant(augmented(idx)), tf.constant(labels[train_idx[idx]]))

    def evaluate():
        if x_val is None:
            return None, None
        lg = in_buckets(lambda x: logits_fn(tf.constant(x)).numpy(), x_val)
        return _metrics(lg.astype(np.float64), labels[val_idx])

    changed = [head] + unfrozen
    get = lambda: [l.get_weights() for l in changed]  # noqa: E731

    def put(ws):
        for layer, w in zip(changed, ws):
            layer.set_weights(w)

    history, stopped = fit(step, evaluate, len(train_idx), cfg.fine_tune_epochs, cfg.batch_size, cfg.patience,
                           cfg.seed, get, put, on_epoch, progress, should_stop, first_epoch, phase="fine-tune")
    return [l.name for l in changed], history, stopped


__all__ = ["Stopped", "TrainConfig", "backbone_blocks", "fine_tune", "fit", "stratified_split"]
