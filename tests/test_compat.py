"""core.compat: every private API is probed, and the public path computes exactly what the normal path does."""
import logging

import numpy as np
import pytest

from core import compat, models
from core.cam import methods
from core.engine import Engine
from core.models import fold


def _maps(engine, rgb, class_index=None):
    res = engine.run(rgb, class_index)
    return res, {(layer, m): fn(res.acts[layer], res.grads[layer])
                 for layer in engine.layers for m, fn in methods.METHODS.items()}


def _assert_same(a, b, rtol=1e-4):
    (ra, ma), (rb, mb) = a, b
    assert ra.class_index == rb.class_index
    scale = np.abs(ra.logits).max()
    assert np.abs(ra.logits - rb.logits).max() <= rtol * scale
    for key, cam in ma.items():
        other = mb[key]
        assert cam.shape == other.shape, key
        assert np.abs(cam - other).max() <= 1e-3 * max(np.abs(cam).max(), 1e-12) + 1e-9, key


def test_every_internal_is_there_and_behaves_on_the_pinned_versions():
    """On the versions requirements.txt installs, the memory-saving path is the one taken."""
    assert compat.probe_all() == {name: True for name in compat.NAMES}


def test_lite0_on_the_public_path_computes_what_the_held_path_computes(lite_engine, photos):
    rgb = photos["cat_and_dog.jpg"].rgb
    spec = models.get_spec("efficientnet_lite0")
    with compat.forced_off():
        assert not any(compat.available(n) for n in compat.NAMES)
        public = Engine(spec, *models.load_inference(spec.name))
        assert public.held is None  # loaded the plain Keras way
        got = _maps(public, rgb), _maps(public, rgb, 243)
    assert lite_engine.held is not None
    _assert_same(got[0], _maps(lite_engine, rgb))
    _assert_same(got[1], _maps(lite_engine, rgb, 243))
    # CAM reads the classifier's weights: the same on both paths
    res = lite_engine.run(rgb)
    assert np.allclose(methods.cam(public, res, spec.default_layer), methods.cam(lite_engine, res, spec.default_layer),
                       rtol=1e-5, atol=1e-7)


def _bn_silu_model(seed=3):
    """A small B0-like network: convolutions with BatchNorm (statistics far from the identity) and swish,
    whose trace registers tf.custom_gradient gradients (tf.nn.silu)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.Activation("silu", name="act1")(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.Activation("silu", name="last")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, layers.Dense(4, name="head")(x))
    rng = np.random.default_rng(seed)
    for bn in ("bn1", "bn2"):
        layer = model.get_layer(bn)
        c = layer.gamma.shape[0]
        layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 1, c), rng.normal(0, 2, c), rng.uniform(0.3, 3, c)])
    return model


def test_a_batchnorm_swish_model_on_the_public_path_matches_and_keeps_its_registrations():
    from tests.toys import toy_spec

    weights = _bn_silu_model().get_weights()

    def build():
        model = _bn_silu_model()
        model.set_weights(weights)
        return model

    spec = toy_spec(["act1", "last"], 32, "bn_silu")
    rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    held = Engine(spec, *fold.load_folded(build))
    assert held.held is not None
    normal = _maps(held, rgb)
    with compat.forced_off():
        from tensorflow.python.framework import ops

        model, held_weights = fold.load_folded(build)
        assert held_weights is None
        public = Engine(spec, model, held_weights)
        before = set(ops._gradient_registry._registry)
        got = _maps(public, rgb)
        # the public path leaves TensorFlow's registry alone: the trace's registrations are still there
        assert any(k.startswith("CustomGradient-") for k in set(ops._gradient_registry._registry) - before)
    _assert_same(got, normal)


def test_a_failed_probe_is_one_warning_line_and_the_public_path(monkeypatch, caplog, photos):
    """An internal that is missing or behaves otherwise in a future version: one warning line names it,
    the model loads the public way and computes the same maps."""
    def broken():
        raise AttributeError("module 'keras.src.backend.common.global_state' has no attribute 'get_global_attribute'")

    monkeypatch.setitem(compat._PROBES, "keras_deferred", broken)
    monkeypatch.setattr(compat, "_results", {})
    with caplog.at_level(logging.WARNING, logger="core.compat"):
        assert compat.available("keras_deferred") is False
        assert compat.available("keras_deferred") is False  # probed once, said once
        spec = models.get_spec("efficientnet_lite0")
        engine = Engine(spec, *models.load_inference(spec.name))
    lines = [r.getMessage() for r in caplog.records if r.name == "core.compat"]
    assert len(lines) == 1 and "keras_deferred" in lines[0] and "\n" not in lines[0]
    assert engine.held is None
    res = engine.run(photos["cat.jpg"].rgb)
    assert 281 <= res.class_index <= 285


def test_a_probe_that_returns_wrong_results_counts_as_unavailable(monkeypatch):
    monkeypatch.setitem(compat._PROBES, "glibc_malloc", lambda: False)
    monkeypatch.setattr(compat, "_results", {})
    assert compat.available("glibc_malloc") is False
    assert compat.malloc_option(compat.M_ARENA_MAX, 2) is False  # nothing was changed
    compat.trim_heap()  # a no-op, not an error


def test_the_public_path_can_be_chosen_by_environment(monkeypatch):
    monkeypatch.setenv("GRADCAM_STUDIO_PUBLIC_ONLY", "tf_custom_gradients,glibc_malloc")
    assert not compat.available("tf_custom_gradients") and not compat.available("glibc_malloc")
    assert compat.available("keras_deferred")
    assert compat.custom_gradient_names() == set()
    monkeypatch.setenv("GRADCAM_STUDIO_PUBLIC_ONLY", "1")
    assert not any(compat.available(n) for n in compat.NAMES)
    with pytest.raises(ValueError):
        compat.available("no_such_internal")


def test_no_private_api_is_used_outside_compat():
    """The house rule this module exists for: private TensorFlow/Keras/libc calls live in core/compat.py only."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\._gradient_registry|keras\.src|global_state|\._initializer|add_update|get_current_value"
                         r"|ctypes\.CDLL|mallopt\(|malloc_trim\(|clear_kernel_cache\(|tensorflow\.python")
    offenders = []
    for path in [*root.glob("core/**/*.py"), *root.glob("ui/*.py"), *root.glob("app_pages/*.py")]:
        if path.name == "compat.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("#")[0]) and "compat." not in line:
                offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert offenders == []


def run_fresh(code: str) -> None:
    """Run ``code`` in a fresh Python process from the project's root; it must print ``ok`` last."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_keras_imports_without_pyplot_or_pandas_and_both_still_import_afterwards():
    """import_tensorflow_quietly hides matplotlib.pyplot and pandas from Keras's import only, and leaves the
    cycle collector on, with nothing frozen out of its sight (a fresh process)."""
    code = ("import gc, sys\nfrom core.engine.warmup import import_tensorflow_quietly\n"
            "assert gc.get_freeze_count() == 0\nimport_tensorflow_quietly()\n"
            "assert 'keras' in sys.modules and 'tensorflow' in sys.modules\n"
            "assert gc.isenabled(), 'the collector was left off'\n"
            "assert gc.get_freeze_count() == 0, gc.get_freeze_count()\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'the block was left in place or pyplot was imported'\n"
            "assert 'pandas' not in sys.modules and 'pyarrow' not in sys.modules\n"
            "import matplotlib.pyplot as plt\nassert plt.figure is not None\n"
            "import pandas as pd\nassert pd.DataFrame({'a': [1, 2]})['a'].sum() == 3\nprint('ok')\n")
    run_fresh(code)


def test_the_start_up_work_collects_what_a_page_let_go_then_freezes_what_is_alive():
    """The start-up work (a fresh process) keeps TensorFlow's objects out of the cycle collector's sight while
    it runs; when it is done it gives every object back, collects, and freezes what is alive then for good
    (core.engine.pool.settle_collector): a cycle that another thread (a page's run) held meanwhile and let go is
    collected, not frozen with the rest."""
    code = ("import gc, threading, weakref\nfrom core.engine import EnginePool, warmup\n"
            "from core.imaging import images\n"
            "warmup.COMPILE_AFTER_S = 5.0\n"
            "class Result:\n    pass\n"
            "holding, release, refs = threading.Event(), threading.Event(), []\n"
            "def page():\n    r = Result()\n    r.me = r\n    refs.append(weakref.ref(r))\n"
            "    holding.set()\n    release.wait()\n"
            "t = threading.Thread(target=page)\nt.start()\nholding.wait()\n"
            "rgb = images.load_path('assets/cat_and_dog.jpg').rgb\n"
            "work = warmup.WarmUp(EnginePool(220).get, 'efficientnet_lite0', rgb).start(settle=True)\n"
            "assert work.wait(300) and work.error is None\n"
            "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()\n"
            "release.set()\nt.join()\n"
            "assert work.wait_compiled(120) and 'compile' in work.seconds\n"
            "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()\n"
            "assert refs[0]() is None, 'the cycle outlived the start-up work'\nprint('ok')\n")
    run_fresh(code)


def test_the_collector_pause_leaves_a_collector_that_was_off_alone():
    """A process that turned the cycle collector off keeps it off, and nothing is frozen for it."""
    import gc

    from core.engine.warmup import _collector_paused

    frozen = gc.get_freeze_count()
    gc.disable()
    try:
        with _collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled() and gc.get_freeze_count() == frozen
    finally:
        gc.enable()


def test_the_pyplot_block_holds_for_the_importing_thread_only():
    """Another thread that imports pyplot while Keras imports gets it; the block leaves no trace (a fresh process)."""
    code = ("import sys, threading\nfrom core.engine.warmup import _without_unused_modules\n"
            "got = {}\n"
            "def other():\n    import matplotlib.pyplot as plt\n    got['plt'] = plt\n"
            "with _without_unused_modules():\n"
            "    try:\n        import matplotlib.pyplot\n        blocked = False\n"
            "    except ImportError:\n        blocked = True\n"
            "    assert 'matplotlib.pyplot' not in sys.modules\n"
            "    t = threading.Thread(target=other)\n    t.start()\n    t.join()\n"
            "assert blocked, 'the importing thread got pyplot'\n"
            "assert got['plt'].figure is not None and sys.modules['matplotlib.pyplot'] is got['plt']\n"
            "assert not any(type(f).__name__ == '_RefusedToThisThread' for f in sys.meta_path)\n"
            "import matplotlib.pyplot as plt\nassert plt is got['plt']\nprint('ok')\n")
    run_fresh(code)
