"""The engine pool's budget, the result cache's bounds, and engines freed when dropped."""
from types import SimpleNamespace

import numpy as np
import pytest

from core import models
from core.engine import Engine, PassResult, ResultCache
from core.engine.pool import EnginePool


def test_pool_keeps_models_within_its_budget_and_a_big_one_alone():
    loads = []

    def load(name):
        loads.append(name)
        return f"engine:{name}"

    pool = EnginePool(220, load=load)  # each engine counts as its weights + 50 MB
    for name in ("efficientnet_lite0", "resnet50"):  # 68 + 148 MB fit
        assert pool.get(name) == f"engine:{name}"
    assert pool.names() == ["efficientnet_lite0", "resnet50"]
    pool.get("efficientnet_lite0")  # a hit: no load, now most recent
    assert loads.count("efficientnet_lite0") == 1
    pool.get("xception")  # 137 MB more: the least recently used (ResNet50) goes first
    assert pool.names() == ["efficientnet_lite0", "xception"]
    pool.get("mobilenet_v2")  # 64 MB more: Lite0 goes
    assert pool.names() == ["xception", "mobilenet_v2"]
    for name in ("efficientnet_lite0", "efficientnet_b0", "mobilenet_v2"):  # 68 + 70 + 64 MB fit
        pool.get(name)
    assert pool.names() == ["efficientnet_lite0", "efficientnet_b0", "mobilenet_v2"]
    pool.get("vgg16")  # 350 MB: alone
    assert pool.names() == ["vgg16"]
    pool.get("mobilenet_v2")
    assert pool.names() == ["mobilenet_v2"]
    assert pool.fits(["efficientnet_lite0", "xception"]) and not pool.fits(["resnet50", "xception"])
    assert not pool.fits(["vgg16", "mobilenet_v2"]) and pool.fits(["vgg16"])


def test_engines_dropped_for_a_new_model_are_gone_before_it_loads():
    """The pool drops what does not fit, then loads: nothing may keep a dropped engine alive through the load
    (a popped engine left bound to a local variable did, and the peak of switching models rose by up to 170 MB)."""
    import weakref

    class Loaded:  # an engine stand-in that weak references can follow
        def __init__(self, name):
            self.name = name

    alive_at_load, made = [], {}

    def load(name):
        alive_at_load.append(sorted(n for n, ref in made.items() if ref() is not None))
        engine = Loaded(name)
        made[name] = weakref.ref(engine)
        return engine

    pool = EnginePool(220, load=load)
    pool.get("efficientnet_lite0")
    pool.get("resnet50")  # 68 + 148 MB fit together
    pool.get("vgg16")  # alone: both go first
    pool.get("mobilenet_v2")  # VGG16 goes first
    assert alive_at_load == [[], ["efficientnet_lite0"], [], []]
    assert pool.names() == ["mobilenet_v2"]


def test_pool_reports_a_failed_load_and_stays_usable():
    def load(name):
        if name == "resnet50":
            raise models.WeightsUnavailable("no weights.")
        return name

    pool = EnginePool(220, load=load)
    pool.get("efficientnet_lite0")
    with pytest.raises(models.WeightsUnavailable):
        pool.get("resnet50")
    assert pool.names() == ["efficientnet_lite0"] and pool.get("efficientnet_lite0") == "efficientnet_lite0"


def test_result_cache_is_bounded_by_bytes_but_keeps_two(lite_engine):
    cache = ResultCache(size=8, max_bytes=100)

    def result(nbytes):
        a = np.zeros(nbytes // 8, np.float32)
        return PassResult(np.zeros(1), np.zeros(1), 0, {"l": a}, {"l": a.copy()}, 0.0)

    for i in range(5):
        cache.put(("img", i), result(80))  # 80 bytes each: only the last two are kept
    assert cache.keys() == [("img", 3), ("img", 4)]
    cache.max_bytes = 10**6
    for i in range(5, 20):
        cache.put(("img", i), result(80))
    assert len(cache) == 8
    res = lite_engine.run(np.random.default_rng(4).integers(0, 256, (60, 80, 3), dtype=np.uint8))
    assert lite_engine.cache.max_bytes // res.nbytes >= 7  # Lite0 still keeps about eight photos


def test_a_result_under_two_keys_used_again_is_kept_before_older_ones():
    """A top-1 pass is kept under (photo, None) and (photo, its class): asking for it under either key makes the
    whole result the most recently used, so the next new photo drops the least recently used one."""
    cache = ResultCache(size=3, max_bytes=10**6)
    values = {n: SimpleNamespace(nbytes=8, name=n) for n in "ABCD"}
    cache.put(("A", None), values["A"], ("A", 5))
    cache.put(("B", None), values["B"])
    cache.put(("C", None), values["C"])
    assert cache.get_or_make(("A", None), lambda: None) is values["A"]
    cache.put(("D", None), values["D"])
    assert ("B", None) not in cache and ("A", None) in cache and ("A", 5) in cache
    assert cache.get_or_make(("A", 5), lambda: None) is values["A"]


def test_room_is_made_before_a_pass_for_what_the_cache_would_drop_after_it(lite_engine):
    cache = ResultCache(size=8, max_bytes=100)

    def result(nbytes):
        a = np.zeros(nbytes // 8, np.float32)
        return PassResult(np.zeros(1), np.zeros(1), 0, {"l": a}, {"l": a.copy()}, 0.0)

    first = result(80)
    cache.put(("img", 0, None), first)
    cache.put(("img", 0, 0), first)  # a top-1 result sits under two keys: it goes as one
    cache.put(("img", 1, None), result(80))
    cache.make_room()  # a third 80-byte result would push the first out: it goes now
    assert cache.keys() == [("img", 1, None)]
    cache.make_room()  # one result and the next always fit
    assert cache.keys() == [("img", 1, None)]
    cache.max_bytes = 10**6
    cache.put(("img", 2, None), result(80))
    cache.make_room()
    assert len(cache) == 2
    # the real engine: a third photo's pass still leaves the last two results cached
    rng = np.random.default_rng(5)
    photos = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
    saved = lite_engine.cache.max_bytes
    try:
        lite_engine.cache.max_bytes = 1  # only the two-result floor applies
        results = [lite_engine.run(p) for p in photos]
        assert lite_engine.cached(photos[1]) and lite_engine.cached(photos[2]) and not lite_engine.cached(photos[0])
        assert lite_engine.run(photos[2]) is results[2]
    finally:
        lite_engine.cache.max_bytes = saved


def test_a_dropped_engine_is_freed_although_its_trace_used_custom_gradients():
    """tf.custom_gradient (here behind tf.nn.silu, as in EfficientNetB0) registers each trace's gradient
    in a process-wide registry; the engine drops those registrations, so its graph and weights can go."""
    import gc
    import weakref

    import keras
    import tensorflow as tf
    from tensorflow.python.framework import ops

    from tests.toys import toy_spec

    keras.utils.set_random_seed(3)
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="silu", name="conv1")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="silu", name="last")(x)
    out = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    registered = len(ops._gradient_registry._registry)
    engine = Engine(toy_spec(["conv1", "last"], 24, "silu"), model)
    photo = np.random.default_rng(6).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    res = engine.run(photo, 2)
    engine.predict(engine.prepare(photo))
    assert len(ops._gradient_registry._registry) == registered

    # the gradients are still those of the swish network (eager tape on the same model)
    xin = tf.constant(engine.prepare(photo))
    with tf.GradientTape() as tape:
        multi = keras.Model(model.inputs, [model.get_layer("last").output, model.output])
        act, logits = multi(xin)
        score = logits[:, 2]
    np.testing.assert_allclose(res.grads["last"], tape.gradient(score, act).numpy()[0], rtol=1e-4, atol=1e-7)

    graph = weakref.ref(engine._explain._fn.get_concrete_function().graph)
    del engine, model, multi
    gc.collect()
    assert graph() is None


def test_a_model_in_memory_is_served_while_another_loads():
    """Many sessions share the pool: one loading a model (seconds) keeps no other session waiting for an
    engine already in memory, and two sessions asking for the same new model load it once."""
    import threading
    import time

    release = threading.Event()
    loads = []

    def load(name):
        loads.append(name)
        if name == "resnet50":
            release.wait(30)  # a slow load
        return f"engine:{name}"

    pool = EnginePool(220, load=load)
    pool.get("efficientnet_lite0")
    got = []
    slow = [threading.Thread(target=lambda: got.append(pool.get("resnet50"))) for _ in range(2)]
    for t in slow:
        t.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    assert pool.get("efficientnet_lite0") == "engine:efficientnet_lite0"
    assert time.perf_counter() - t0 < 1.0  # not behind the load
    release.set()
    for t in slow:
        t.join(30)
    assert got == ["engine:resnet50"] * 2 and loads.count("resnet50") == 1


def test_concurrent_requests_for_one_result_run_one_pass():
    """Eight sessions opening the same link at once: one pass, seven waits; an error reaches every waiter."""
    import threading

    cache = ResultCache(size=8, max_bytes=10**6)
    started, release = threading.Event(), threading.Event()
    calls = []

    def result(nbytes=80):
        a = np.zeros(nbytes // 8, np.float32)
        return PassResult(np.zeros(1), np.zeros(1), 0, {"l": a}, {"l": a.copy()}, 0.0)

    def make():
        calls.append(1)
        started.set()
        release.wait(30)
        return result()

    out = []
    threads = [threading.Thread(target=lambda: out.append(cache.get_or_make(("img", None), make, lambda r: [("img", 0)])))
               for _ in range(8)]
    for t in threads:
        t.start()
    started.wait(30)
    release.set()
    for t in threads:
        t.join(30)
    assert len(calls) == 1 and len(out) == 8 and all(r is out[0] for r in out)
    assert cache.keys() == [("img", None), ("img", 0)]

    def fail():
        raise RuntimeError("the pass failed")

    errors = []

    def ask():
        try:
            cache.get_or_make(("other", None), fail)
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == ["the pass failed"] * 3 and ("other", None) not in cache


def test_cached_results_and_sample_photos_are_read_only(lite_engine, photos):
    """Every session shares them: a page that wrote into one would change what another session sees."""
    res = lite_engine.run(photos["cat.jpg"].rgb)
    for arr in (res.probs, res.logits, *res.acts.values(), *res.grads.values(), photos["cat.jpg"].rgb):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[(0,) * arr.ndim] = 1
