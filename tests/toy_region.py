"""A toy CNN whose class depends only on a known region (for the measurement tests).

32×32 noise; the class is the colour of the square at rows/columns 8..16 (0: red, 1: green); a distractor
square of either colour sits somewhere in the lower right, so colour alone, away from the region, says nothing.
"""
import numpy as np

from core.engine import Engine
from tests.toys import toy_spec

SIZE = 32
REGION = (8, 16, 8, 16)  # y0, y1, x0, x1
COLOURS = np.array([[230, 40, 40], [40, 230, 40]], np.float64)


def region_mask() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    y0, y1, x0, x1 = REGION
    m[y0:y1, x0:x1] = True
    return m


def draw(rng) -> tuple[np.ndarray, int]:
    img = rng.normal(128, 30, (SIZE, SIZE, 3))
    cls = int(rng.integers(2))
    y0, y1, x0, x1 = REGION
    img[y0:y1, x0:x1] = COLOURS[cls]
    dy, dx = (int(v) for v in rng.integers(18, SIZE - 8, 2))
    img[dy:dy + 8, dx:dx + 8] = COLOURS[int(rng.integers(2))]
    return np.clip(img, 0, 255).astype(np.uint8), cls


def build(arch: str = "small"):
    """The toy CNN (untrained). ``small``: conv1 (32×32) → pool → ``last`` (16×16) → GAP → ``head``.
    ``blocks``: two blocks of two convolutions, ``block1_conv1``, ``block1_conv2`` (32×32) → pool →
    ``block2_conv1``, ``block2_conv2`` (16×16) → GAP → ``predictions`` (the sanity cascade's blocks are
    ``predictions``, ``block2``, ``block1``; its layers, one by one, five steps)."""
    import keras
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 3))
    h = layers.Rescaling(1 / 127.5, offset=-1)(inp)
    if arch == "small":
        h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(h)
        h = layers.MaxPooling2D()(h)
        h = layers.Conv2D(32, 3, padding="same", activation="relu", name="last")(h)
        head = "head"
    elif arch == "blocks":
        for b, filters in ((1, 16), (2, 32)):
            for k in (1, 2):
                h = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{b}_conv{k}")(h)
            if b == 1:
                h = layers.MaxPooling2D()(h)
        head = "predictions"
    else:
        raise ValueError(arch)
    h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(inp, layers.Dense(2, name=head)(h))


LAYERS = {"small": ["conv1", "last"], "blocks": ["block1_conv2", "block2_conv2"]}


def spec(arch: str = "small"):
    return toy_spec(LAYERS[arch], SIZE, "region" if arch == "small" else "region-blocks")


def train(n=1500, epochs=3, seed=3, arch="small"):
    """(engine, keras model, held-back [(rgb, class)])."""
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = [draw(rng) for _ in range(n + 40)]
    x = np.stack([d[0] for d in data[:n]]).astype(np.float32)
    y = np.array([d[1] for d in data[:n]])
    model = build(arch)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return Engine(spec(arch), model), model, data[n:]
