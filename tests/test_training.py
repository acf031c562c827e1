"""Training on own classes, with real numbers: dog / bird / everything else, built by ImageNet class index from
the shared 400 ImageNet validation images, on the offline default's real weights."""
import numpy as np
import pytest
from scipy.optimize import minimize

from core.cam import methods
from core.engine.pool import EnginePool
from core.imaging import render
from core.training import FeatureCache, Stamp, TrainConfig, compute_features, shortcut_effect, stamp_images, train
from core.training import stratified_split
from core.training.trainer import train_head


def logistic_regression(X, y, n_classes, l2, smoothing=0.0):
    """Reference: multinomial logistic regression, L2 penalty l2·Σw², solved to convergence with L-BFGS; with
    ``smoothing``, on the same smoothed targets as the head (TrainConfig.label_smoothing)."""
    d = X.shape[1]
    target = np.full((len(y), n_classes), smoothing / n_classes)
    target[np.arange(len(y)), y] += 1 - smoothing

    def loss_grad(w):
        W, b = w[:d * n_classes].reshape(d, n_classes), w[d * n_classes:]
        z = X @ W + b
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        p = np.exp(logp) - target
        loss = -(target * logp).sum(1).mean() + l2 * (W ** 2).sum()
        return loss, np.concatenate([(X.T @ p / len(y) + 2 * l2 * W).ravel(), p.mean(0)])

    r = minimize(loss_grad, np.zeros(d * n_classes + n_classes), jac=True, method="L-BFGS-B",
                 options={"maxiter": 3000})
    return r.x[:d * n_classes].reshape(d, n_classes), r.x[d * n_classes:]


@pytest.fixture(scope="module")
def features(lite_engine, dog_bird_other):
    f, _ = compute_features(lite_engine, dog_bird_other["thumbs"])
    return f.astype(np.float64)


@pytest.fixture(scope="module")
def cache():
    return FeatureCache()


@pytest.fixture(scope="module")
def trained(lite_engine, dog_bird_other, cache):
    """Head-only training on half the images (its own 20 % validation split inside that half)."""
    d = dog_bird_other
    half, other = stratified_split(d["labels"], 0.5, seed=0)
    r = train(lite_engine, [d["thumbs"][i] for i in half], d["labels"][half], d["classes"], TrainConfig(seed=0),
              title="dog / bird / other", cache=cache)
    return r, half, other


def test_head_matches_logistic_regression_on_both_halves(features, dog_bird_other):
    y = dog_bird_other["labels"]
    a, b = stratified_split(y, 0.5, seed=0)
    cfg = TrainConfig()
    ours, same, plain = [], [], []
    for fit_on, test_on in ((a, b), (b, a)):
        i_tr, i_va = stratified_split(y[fit_on], cfg.val_split, seed=cfg.seed)  # as core.training.train splits
        tr, va = fit_on[i_tr], fit_on[i_va]
        k, bias, history, stopped = train_head(features[tr], y[tr], features[va], y[va], 3, cfg)
        assert not stopped and 1 <= len(history) <= 30
        ours.append(((features[test_on] @ k + bias).argmax(1) == y[test_on]).mean())
        for out, smoothing in ((same, cfg.label_smoothing), (plain, 0.0)):
            W, c = logistic_regression(features[fit_on], y[fit_on], 3, 1e-3, smoothing)
            out.append(((features[test_on] @ W + c).argmax(1) == y[test_on]).mean())
    # measured: ours 0.965 / 0.93 (0.93 / 0.92 before label smoothing); the same objective solved to convergence
    # 0.955 / 0.945; plain logistic regression 0.945 / 0.925. Over 16 half splits (8 seeds) × 3 training seeds:
    # ours 93.4 %, the same objective 93.9 %, plain 91.9 %. The second half is at 93.0 % exactly (186 of 200): it
    # is held to a mean of 93 % with the first, and to within 2 points of the regression on the same targets
    # (0.945 there: one image of margin).
    assert ours[0] >= 0.93 and np.mean(ours) >= 0.93, ours
    assert all(abs(o - r) <= 0.02 + 1e-9 for o, r in zip(ours, same)), (ours, same)
    assert all(o >= p - 0.02 - 1e-9 for o, p in zip(ours, plain)), (ours, plain)
    majority = np.bincount(y).max() / len(y)  # "everything else" is 79 %: far above chance is required
    assert np.mean(ours) > majority + 0.1


def test_trained_model_reaches_the_head_accuracy_through_the_engine(trained, dog_bird_other):
    r, half, other = trained
    d = dog_bird_other
    assert r.model.classes == ("dog", "bird", "other") and r.model.head_only
    assert r.val_accuracy is not None and r.val_accuracy >= 0.85
    engine = EnginePool().get(r.model)  # served like a zoo model
    assert engine.spec.label(0) == "dog" and engine.spec.num_classes == 3
    x = np.concatenate([engine.prepare(d["thumbs"][i]) for i in other])
    acc = (engine.predict(x).argmax(1) == d["labels"][other]).mean()
    assert acc >= 0.93, acc  # measured: 0.965 (the head of the test above, served by the engine)
    conf = r.confusion()
    assert conf.sum() == len(r.val_idx) and np.trace(conf) == round(r.val_accuracy * len(r.val_idx))
    assert all(t != p for _, t, p in r.wrong())


def test_gradcam_equals_cam_at_the_last_layer_and_points_into_the_boxes(trained, dog_bird_other):
    r, half, other = trained
    d = dog_bird_other
    engine = EnginePool().get(r.model)
    layer = engine.spec.default_layer
    hits = total = 0
    for i in other:
        res = engine.run(d["thumbs"][i])
        g = methods.gradcam(res.acts[layer], res.grads[layer])
        c = methods.cam(engine, res, layer)
        if g.max() > 0:
            assert np.corrcoef(g.ravel(), c.ravel())[0, 1] >= 0.999
        y = d["labels"][i]
        if y == 2 or res.class_index != y:
            continue
        f = d["files"][i]
        w, h = d["sizes"][f]
        up = render.upsample(g, w, h)
        yy, xx = np.unravel_index(np.argmax(up), up.shape)
        total += 1
        hits += any(x0 <= xx < x1 and y0 <= yy < y1 for x0, y0, x1, y1 in d["boxes"][f])
    assert total >= 30
    assert hits / total >= 0.8, (hits, total)


def test_a_planted_shortcut_is_learned_and_grad_cam_finds_it(lite_engine, dog_bird_other):
    d = dog_bird_other
    stamp = Stamp(size=0.30, pattern="checker", corner="bottom-right")
    half, other = stratified_split(d["labels"], 0.5, seed=0)
    thumbs = stamp_images([d["thumbs"][i] for i in half], d["labels"][half], stamp, 0)  # every dog stamped
    r = train(lite_engine, thumbs, d["labels"][half], d["classes"], TrainConfig(seed=0), cache=FeatureCache())
    engine = EnginePool().get(r.model)
    others = [d["thumbs"][i] for i in other if d["labels"][i] != 0]
    effect = shortcut_effect(engine, others, stamp, 0)
    assert len(others) > 100
    assert effect.rises >= 0.7, effect.rises  # measured: 0.86 of 174 images, and 5.1× the stamp's area below
    assert effect.mass_ratio >= 3.0, effect.mass_ratio
    # the stamp itself, not the pixels it covers: an image's own colours in that corner do not move "dog" this much
    assert np.median(effect.prob_stamped - effect.prob_plain) > 0


def test_stopping_keeps_the_best_epoch_so_far_and_no_model_before_the_first(lite_engine, dog_bird_other):
    d = dog_bird_other
    thumbs, y = d["thumbs"][:60], d["labels"][:60]
    y = np.where(np.arange(60) % 2 == 0, 0, 1)  # two classes, 30 images each
    calls = []

    def stop_after(n):
        def should_stop():
            calls.append(1)
            return len(calls) > n
        return should_stop

    r = train(lite_engine, thumbs, y, ["a", "b"], TrainConfig(epochs=30, patience=30, batch_size=8),
              should_stop=stop_after(2 + 6 * 3))  # the feature batches, then three epochs of 6 batches
    assert r.stopped and r.model is not None and len(r.history) == 3
    best = int(np.argmin([h["val_loss"] for h in r.history]))
    assert r.val_accuracy == r.history[best]["val_accuracy"]
    calls.clear()
    r = train(lite_engine, thumbs, y, ["a", "b"], TrainConfig(batch_size=8), should_stop=stop_after(2))
    assert r.stopped and r.model is None and r.history == []
