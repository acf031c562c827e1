"""Small Keras models and synthetic data with known ground truth, for property tests."""
import numpy as np

from core.engine import Engine
from core.models import ModelSpec


def toy_spec(layers, size, name="toy", gap_dense=True):
    return ModelSpec(name=name, title=name, input_size=size, layers=tuple(layers), weights_source="test",
                     licence="test", preprocess_mode="raw", gap_dense=gap_dense)


def gap_dense_model(size=32, classes=5, seed=0):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="last")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(classes, name="head")(x)
    return keras.Model(inp, out)


SHAPES = ("square", "disc", "triangle")


def draw(rng, size=64):
    """A noisy picture with one shape at a random place; returns (rgb uint8, class, mask)."""
    img = rng.normal(110, 25, (size, size, 3))
    cls = int(rng.integers(len(SHAPES)))
    r = int(rng.integers(6, 10))
    cy, cx = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    yy, xx = np.mgrid[:size, :size]
    if cls == 0:
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif cls == 1:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
    colour = rng.uniform(180, 255, 3)
    img[mask] = colour
    return np.clip(img, 0, 255).astype(np.uint8), cls, mask


def train_shape_model(n=3000, size=64, epochs=4, seed=1):
    """A small CNN trained on shapes at random places; returns (engine, held-back images)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = [draw(rng, size) for _ in range(n + 100)]
    x = np.stack([d[0] for d in data[:n]]).astype(np.float32)
    y = np.array([d[1] for d in data[:n]])
    inp = keras.Input((size, size, 3))
    h = layers.Rescaling(1 / 127.5, offset=-1)(inp)
    for filters in (16, 32, 64):
        h = layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = layers.BatchNormalization(momentum=0.8)(h)
        h = layers.ReLU(name="last" if filters == 64 else None)(h)
        if filters < 64:
            h = layers.MaxPooling2D()(h)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(len(SHAPES), name="head")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return Engine(toy_spec(["last"], size, "shapes"), model), data[n:]


def layer_outputs(model, names, x):
    """The outputs of the named layers and the model's output, for a batch ``x`` (NumPy)."""
    import keras

    multi = keras.Model(model.inputs, [model.get_layer(n).output for n in names] + [model.output])
    return [np.asarray(o) for o in multi(x, training=False)]
