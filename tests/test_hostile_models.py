"""Hostile ``.keras`` files (issue 23): each is refused in one sentence, from our own checks, before Keras builds
anything, while the loading process's peak memory stays bounded; a file made here still loads.

The hostile files are small on disk: a config that declares a huge Dense layer, an HDF5 dataset declared huge with
no data written (chunked, so nothing is allocated), a ZIP entry whose compressed stream inflates to far more than its
headers declare, an honest ZIP entry far larger than the architecture's weights. Each memory case runs
``python -m core explain`` in a child of a fresh wrapper process, which reports that child's peak RSS
(``RUSAGE_CHILDREN`` of the wrapper: its only child).
"""
import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib

import h5py
import numpy as np
import pytest

from conftest import ASSETS, ROOT
from core.models import ModelFileError, TrainedModel, load_file
from core.models.trained import HEAD_LOGITS

PEAK_LIMIT = 10**9  # bytes: the refused baseline (importing TensorFlow) is 0.55-0.7 GB
SECONDS_LIMIT = 60
HUGE = 150_000  # Dense units: 1280 × 150,000 float32 = 768 MB per copy
WRAP = """import json, resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
print(json.dumps({"rc": p.returncode, "out": p.stdout, "err": p.stderr, "seconds": time.monotonic() - t,
                  "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    kernel = np.random.default_rng(0).normal(0, 0.05, (1280, 3)).astype(np.float32)
    return TrainedModel(title="mugs", backbone="efficientnet_lite0", classes=("mine", "yours", "nobody's"),
                        weights={HEAD_LOGITS: [kernel, np.array([0.1, -0.2, 0.0], np.float32)]})


@pytest.fixture(scope="module")
def saved(model) -> bytes:
    return model.to_bytes()


def _members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def _zip(members: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def _with_config(saved: bytes, edit) -> dict:
    members = _members(saved)
    cfg = json.loads(members["config.json"])
    edit(cfg)
    members["config.json"] = json.dumps(cfg).encode()
    return members


def _head(cfg) -> dict:
    return next(la for la in cfg["config"]["layers"] if la["config"]["name"] == HEAD_LOGITS)


def _wide_head(cfg, units=HUGE):
    _head(cfg)["config"]["units"] = units


def _with_head_weights(h5: bytes, units: int, tmp_path) -> bytes:
    """The weights file with the head's kernel and bias declared ``units`` wide, chunked, no data written."""
    p = tmp_path / "w.h5"
    p.write_bytes(h5)
    with h5py.File(p, "r+") as f:
        groups = []
        f.visititems(lambda n, o: groups.append(o) if isinstance(o, h5py.Group) and o.attrs.get("name") == HEAD_LOGITS
                     else None)
        (vars_,) = groups
        del vars_["0"], vars_["1"]
        vars_.create_dataset("0", shape=(1280, units), dtype="f4", chunks=(64, min(units, 1000)))
        vars_.create_dataset("1", shape=(units,), dtype="f4", chunks=(min(units, 1000),))
    return p.read_bytes()


def _zeros_deflated(n_mib: int) -> bytes:
    """A raw deflate stream of ``n_mib`` MiB of zeros, made in milliseconds: after a full flush deflate starts
    afresh, so one flushed 1 MiB piece repeats; b'\\x03\\x00' is the empty final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(bytes(2**20)) + c.flush(zlib.Z_FULL_FLUSH)
    return piece * n_mib + b"\x03\x00"


def _raw_zip(entries) -> bytes:
    """A ZIP written by hand from (name, method, payload, crc, declared size): its headers say what we like."""
    out, central = io.BytesIO(), []
    for name, method, payload, crc, size in entries:
        offset, n = out.tell(), name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(payload), size, len(n), 0))
        out.write(n + payload)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(payload), size,
                                   len(n), 0, 0, 0, 0, 0, offset) + n)
    cd, start = b"".join(central), out.tell()
    out.write(cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(cd), start, 0))
    return out.getvalue()


def _deflated(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _entries(members: dict, **replaced) -> list:
    """``members`` as raw ZIP entries (deflated, honest), with some replaced by hand-made (payload, crc, size)."""
    out = []
    for name, data in members.items():
        key = name.replace(".", "_")
        payload, crc, size = replaced[key] if key in replaced else (_deflated(data), zlib.crc32(data), len(data))
        out.append((name, zipfile.ZIP_DEFLATED, payload, crc, size))
    return out


def _lying_config(saved: bytes, tmp_path) -> bytes:
    """config.json's headers declare its real 150 kB (and CRC) while its stream inflates to 1.5 GiB."""
    members = _members(saved)
    real = members["config.json"]
    return _raw_zip(_entries(members, config_json=(_zeros_deflated(1536), zlib.crc32(real), len(real))))


def _oversized_weights(saved: bytes, tmp_path) -> bytes:
    """An honest 790 MiB weights entry (under the old 800 MB cap), with a valid description around it."""
    crc = 0
    for _ in range(790):
        crc = zlib.crc32(bytes(2**20), crc)
    return _raw_zip(_entries(_members(saved), model_weights_h5=(_zeros_deflated(790), crc, 790 * 2**20)))


def _huge_dense_config(saved: bytes, tmp_path) -> bytes:
    return _zip(_with_config(saved, _wide_head))


def _huge_dense_weights(saved: bytes, tmp_path) -> bytes:
    members = _with_config(saved, _wide_head)
    members["model.weights.h5"] = _with_head_weights(members["model.weights.h5"], HUGE, tmp_path)
    return _zip(members)


def _huge_dataset_only(saved: bytes, tmp_path) -> bytes:
    """The config is the real one (3 units); only the weights file declares the head 150,000 wide."""
    members = _members(saved)
    members["model.weights.h5"] = _with_head_weights(members["model.weights.h5"], HUGE, tmp_path)
    return _zip(members)


LITE0_3 = "a classifier of 3 classes on EfficientNet-Lite0"
HOSTILE = {
    "huge_dense_config": (_huge_dense_config, "evil.keras scores 150000 classes but names 3."),
    "huge_dense_weights": (_huge_dense_weights, "evil.keras scores 150000 classes but names 3."),
    "huge_dataset_only": (_huge_dataset_only, "evil.keras stores weights of shape (1280, 150000) for head_logits, "
                                              f"where {LITE0_3} has (1280, 3); refused."),
    "lying_config": (_lying_config, "evil.keras: its config.json does not unpack to the size and checksum its ZIP "
                                    "entry declares; refused."),
    "oversized_weights": (_oversized_weights, f"evil.keras: its weights (790 MB) are larger than {LITE0_3} needs "
                                              "(18 MB); refused."),
}


@pytest.fixture(scope="module")
def hostile(saved, tmp_path_factory):
    """case → the path of its file (each made once)."""
    made = {}

    def path(case):
        if case not in made:
            d = tmp_path_factory.mktemp(case)
            made[case] = d / "evil.keras"
            made[case].write_bytes(HOSTILE[case][0](saved, d))
            assert made[case].stat().st_size < 20 * 2**20  # small on disk
        return made[case]
    return path


def _explain_in_child(model_file) -> dict:
    """``python -m core explain cat.jpg --model FILE`` in a child of a fresh wrapper: exit status, output, seconds
    and the child's peak RSS in bytes."""
    cmd = [sys.executable, "-c", WRAP, sys.executable, "-m", "core", "explain", str(ASSETS / "cat.jpg"),
           "--model", str(model_file)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_file_is_refused_in_one_sentence_with_memory_bounded(case, hostile):
    r = _explain_in_child(hostile(case))
    print(f"{case}: peak {r['peak'] / 2**30:.2f} GiB, {r['seconds']:.1f} s, rc {r['rc']}, stderr {r['err'][-300:]!r}")
    assert r["peak"] <= PEAK_LIMIT
    assert r["rc"] == 2 and r["out"] == ""
    assert r["err"] == f"error: {HOSTILE[case][1]}\n"  # one line: no traceback, no Keras warning
    assert r["seconds"] <= SECONDS_LIMIT


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if the loader gets as far as building the classifier it compares a file with."""
    from core.models import trained

    monkeypatch.setattr(trained, "_reference", lambda *a: pytest.fail("a model was built for a file refused earlier"))


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_upload_path_refuses_them_alike(case, hostile):
    with pytest.raises(ModelFileError) as exc:
        load_file(hostile(case).read_bytes(), "evil.keras")
    assert _one_line(exc) == HOSTILE[case][1]


def _layer(module, cls="Lambda", **config):
    return {"module": module, "class_name": cls, "config": {"name": HEAD_LOGITS, **config},
            "registered_name": None, "name": HEAD_LOGITS, "inbound_nodes": []}


@pytest.mark.parametrize("layer, message", [
    (_layer("keras", function={"class_name": "__lambda__", "config": {"code": "print('owned')"}}),
     "it contains a Lambda layer, which could run code"),
    (_layer("keras.layers", "TFSMLayer", filepath="/tmp/saved_model", call_endpoint="serve"),
     "it contains a TFSMLayer layer, which could run code"),
    (_layer("keras", "TFSMLayer", filepath="/tmp/saved_model"), "it contains a TFSMLayer layer, which could run code"),
    (_layer(None, "Dense", units=3), "it refers to code outside Keras's layers (Dense without its module)"),
    (_layer(None, "Evil"), "it contains a 'Evil' object, which no model trained here has"),
    (_layer("keras.src.layers.core.dense", "Dense", units=3),
     "it refers to code outside Keras's layers (keras.src.layers.core.dense)"),
])
def test_classes_outside_the_allow_list_are_refused_by_our_own_check(saved, nothing_built, layer, message):
    def swap_head(cfg):
        layers = cfg["config"]["layers"]
        layers[layers.index(_head(cfg))] = layer
    with pytest.raises(ModelFileError) as exc:
        load_file(_zip(_with_config(saved, swap_head)), "evil.keras")
    assert _one_line(exc) == f"evil.keras: {message}; refused."


def test_a_zip_directory_larger_than_a_model_files_is_never_read_whole(saved, nothing_built):
    """60,000 entries (a 3 MB directory) that all point at one small member."""
    members = _members(saved)
    one = ("gradcam_studio.json", zipfile.ZIP_DEFLATED, _deflated(members["gradcam_studio.json"]),
           zlib.crc32(members["gradcam_studio.json"]), len(members["gradcam_studio.json"]))
    data = _raw_zip([one] * 60_000)
    with pytest.raises(ModelFileError) as exc:
        load_file(data, "evil.keras")
    assert _one_line(exc) == "evil.keras: its ZIP directory is larger than a model file's; refused."


def test_weights_stored_otherwise_than_keras_writes_them_are_refused(saved, tmp_path):
    """The head's arrays of the right shape, but chunked and never written (they would read as zeros)."""
    members = _members(saved)
    members["model.weights.h5"] = _with_head_weights(members["model.weights.h5"], 3, tmp_path)
    with pytest.raises(ModelFileError) as exc:
        load_file(_zip(members), "evil.keras")
    assert _one_line(exc) == ("evil.keras stores head_logits's weights in a way Keras never writes (chunked, filtered, "
                              "external or incomplete); refused.")


def test_a_file_made_here_still_loads_from_its_path(model, saved, tmp_path):
    p = tmp_path / "mugs.keras"
    p.write_bytes(saved)
    back = load_file(p)
    assert back.name == model.name and back.classes == model.classes and back.title == "mugs"
    assert set(back.weights) == {HEAD_LOGITS}
    assert all(np.array_equal(a, b) for a, b in zip(back.weights[HEAD_LOGITS], model.weights[HEAD_LOGITS]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_weights_that_are_not_finite_are_refused(model, bad):
    """A head with one NaN (or infinite) weight would show NaN probabilities on every page."""
    kernel, bias = (np.array(a) for a in model.weights[HEAD_LOGITS])
    kernel[7, 1] = bad
    broken = TrainedModel(title="mugs", backbone=model.backbone, classes=model.classes,
                          weights={HEAD_LOGITS: [kernel, bias]})
    with pytest.raises(ModelFileError) as exc:
        load_file(broken.to_bytes(), "odd.keras")
    assert _one_line(exc) == "odd.keras's weights of head_logits hold NaN or infinite values; refused."
