"""The compiled functions see a few batch sizes only, so the memory TensorFlow's oneDNN keeps per shape stays
bounded however many different batch sizes callers ask for (issue 23's soak), and results do not change."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.engine import passes

ROOT = Path(__file__).resolve().parents[1]


def test_in_buckets_pads_chunks_and_cuts_back():
    seen = []

    def fn(x):
        seen.append(len(x))
        return x.sum(axis=(1, 2)) * 2

    for n in range(1, 3 * passes.BATCH_SIZES[-1] + 2):
        x = np.random.default_rng(n).random((n, 3, 2)).astype(np.float32)
        np.testing.assert_allclose(passes.in_buckets(fn, x), x.sum(axis=(1, 2)) * 2, rtol=1e-6)
    assert set(seen) <= set(passes.BATCH_SIZES)
    assert len(seen) > len(passes.BATCH_SIZES)


def test_engine_batches_keep_to_the_sizes_and_match_one_by_one(lite_engine):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (11, 224, 224, 3)).astype(np.float32)
    shapes = []
    forward = lite_engine._forward

    class Recording:
        def __call__(self, batch):
            shapes.append(int(batch.shape[0]))
            return forward(batch)

    lite_engine._forward = Recording()
    try:
        probs, logits = lite_engine.predict(x), lite_engine.logits(x[:5])
    finally:
        lite_engine._forward = forward
    assert set(shapes) <= set(passes.BATCH_SIZES) and sum(shapes) >= 16
    one_by_one = np.concatenate([lite_engine.predict(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(probs, one_by_one, atol=1e-5)
    np.testing.assert_allclose(logits, np.concatenate([lite_engine.logits(x[i:i + 1]) for i in range(5)]),
                               atol=1e-3)
    assert probs.shape == (11, 1000) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


CHILD = textwrap.dedent("""
    import ctypes, json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from core.engine import pool

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2

    def in_use_mb():
        m = libc.mallinfo2()
        return (m.uordblks + m.hblkhd) / 2 ** 20

    pool.tune_allocator()
    engine = pool._load_engine("efficientnet_lite0")
    x = np.random.default_rng(0).uniform(-1, 1, (40, 224, 224, 3)).astype(np.float32)
    for n in (1, 2, 4, 8, 16):
        engine.predict(x[:n])
    warm = in_use_mb()
    for n in range(1, 41):
        engine.predict(x[:n])
    print(json.dumps({"warm_mb": warm, "grew_mb": in_use_mb() - warm}))
""")


@pytest.mark.slow
def test_many_batch_sizes_keep_memory_bounded():
    """Forty different batch sizes after the few the engine uses: glibc's count of bytes in use grows by at most
    40 MB (each new size passed to oneDNN as it is kept 5-30 MB for the process's life: about 500 MB here)."""
    import json

    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, timeout=600,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["grew_mb"] <= 40, figures
