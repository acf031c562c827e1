"""Training figures for ``python -m core bench``: the feature pass against the engine's forward pass at the
same batch size, head-only training on 1,000 cached feature vectors, and fine-tuning two blocks."""
from __future__ import annotations

import time

import numpy as np

from .timing import ASSETS, interleaved_ms

BATCH = 32


def _photos(rgb: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct photos (the sample with ±2 of noise each), so no feature comes from a cache."""
    rng = np.random.default_rng(seed)
    return [np.clip(rgb.astype(np.int16) + rng.integers(-2, 3, rgb.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


def run_train_bench(model_name: str = "efficientnet_lite0", repeats: int = 7) -> dict:
    """train_features_ms_per_image (batched through the compiled engine, preparing included) against
    forward_batch_ms_per_image (the engine's forward-only pass on a prepared batch of the same size);
    train_head_ms (1,000 feature vectors of 5 classes: the head-only default, its 5-fold cross-validation over the
    regularisation strengths included, then the final fit on all of them); finetune_ms
    (the last 2 blocks on 200 images for 3 epochs, batch 32, augmented)."""
    from core import models
    from core.engine import Engine
    from core.imaging import images
    from core.training import TrainConfig, compute_features, train
    from core.training.data import THUMB_SIDE
    from core.training.head import fit_head

    spec = models.get_spec(model_name)
    engine = Engine(spec, *models.load_inference(model_name))
    photo = images.load_path(ASSETS / "cat_and_dog.jpg")
    thumbs = [images.thumbnail(p, THUMB_SIDE) for p in _photos(photo.rgb, BATCH)]
    x = np.concatenate([engine.prepare(t) for t in thumbs])
    compute_features(engine, thumbs), engine.predict(x)  # trace both once
    t = interleaved_ms({"features": lambda: compute_features(engine, thumbs),  # no cache: every image computed
                         "forward": lambda: engine.predict(x)}, repeats)
    out = {"train_features_ms_per_image": round(t["features"] / BATCH, 2),
           "forward_batch_ms_per_image": round(t["forward"] / BATCH, 2),
           "train_features_over_forward": round(t["features"] / t["forward"], 2)}

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (5, 1280))
    y = np.repeat(np.arange(5), 200)
    feats = np.maximum(centres[y] + rng.normal(0, 2.0, (1000, 1280)), 0).astype(np.float32)
    fit_head(feats[:50], y[:50] % 2, 2)  # scipy's optimiser imported and warmed once
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        head = fit_head(feats, y, 5)
        times.append(time.perf_counter() - t0)
    out["train_head_ms"] = round(float(np.median(times)) * 1000, 1)
    out["train_head_solves"] = len(head.curve) * head.folds + 1
    out["train_head_converged"] = head.converged

    many = [images.thumbnail(p, THUMB_SIDE) for p in _photos(photo.rgb, 200, seed=1)]
    labels = np.arange(200) % 5
    t0 = time.perf_counter()
    r = train(engine, many, labels, [f"c{i}" for i in range(5)],
              TrainConfig(fine_tune_blocks=2, fine_tune_epochs=3, patience=10, val_split=0.2))
    ft = [h for h in r.history if h["phase"] == "fine-tune"]
    out.update({"finetune_ms": round(sum(h["seconds"] for h in ft) * 1000, 1), "finetune_epochs": len(ft),
                "finetune_images": int(len(r.train_idx)), "train_total_ms": round((time.perf_counter() - t0) * 1000, 1),
                "train_target": {"train_features_over_forward": "<= 1.2", "train_head_ms": "<= 3000"}})
    return out
