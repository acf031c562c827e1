"""Bounded readers for a ``.keras`` file from a stranger: its ZIP, its JSON descriptions and its HDF5 weights.

Nothing in a file is believed before it is bounded. :func:`open_zip` caps every read of the archive, so a crafted
central directory is never read whole; :func:`read_member` streams one entry and stops at its declared size and a
budget (``ZipFile.read`` inflates up to 2 GiB in one call, whatever the entry declares); :func:`read_json` parses
only what that allows and refuses nesting no model has; :func:`check_classes` holds every object a config names
to an allow-list; :func:`digest` compares a config with the reference; :func:`h5_datasets` describes an HDF5 file's
datasets from their metadata alone, reading no data; :func:`quiet` keeps Keras's warnings from the user.

Each raises :class:`Unsafe`, whose text ends a sentence that starts with the file's name ("…: its config.json is
…"), and no other error for anything a file can contain.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import struct
import threading
import warnings
import zipfile
import zlib
from dataclasses import dataclass

CHUNK = 2**20  # one read of an entry
MAX_READ = 2 * CHUNK  # any one read of the archive; a model's central directory is a few hundred bytes
MAX_DEPTH = 32  # JSON nesting; a model's config.json nests about 10 deep

# Every class a trained model's config.json names, with the module Keras writes for it: the layers of the trainable
# backbones and the head, their initialisers and dtype policy, and the references between layers' tensors (the one
# class Keras writes without a module). Nothing that carries code (Lambda, TFSMLayer). The model's own class is
# not here: the top level is compared whole with the classifier built here.
ALLOWED = {
    **{c: "keras.layers" for c in (
        "Activation", "Add", "BatchNormalization", "Conv2D", "Dense", "DepthwiseConv2D", "Dropout",
        "GlobalAveragePooling2D", "InputLayer", "MaxPooling2D", "Multiply", "Normalization", "ReLU", "Rescaling",
        "Reshape", "SeparableConv2D", "ZeroPadding2D")},
    **{c: "keras.initializers" for c in ("GlorotUniform", "Ones", "VarianceScaling", "Zeros")},
    "DTypePolicy": "keras", "__keras_tensor__": None,
}
CODE_CLASSES = {"Lambda", "__lambda__", "TFSMLayer", "function_from_source"}


class Unsafe(ValueError):
    """What is wrong with a file, as the rest of a sentence that starts with its name."""


class _Capped:
    """A seekable binary file whose every read is at most ``MAX_READ`` bytes. Guards against a central directory
    (or a ZIP64 record) declaring a size that ``zipfile`` would read in one call before looking at an entry."""

    def __init__(self, raw):
        self._raw = raw

    def read(self, n=-1):
        if n is None or n < 0:
            here = self._raw.tell()
            n = self._raw.seek(0, 2) - here
            self._raw.seek(here)
        if n > MAX_READ:
            raise Unsafe("its ZIP directory is larger than a model file's")
        return self._raw.read(n)

    def seek(self, *args):
        return self._raw.seek(*args)

    def tell(self):
        return self._raw.tell()

    def seekable(self):
        return True


def open_zip(raw, max_members: int = 8) -> zipfile.ZipFile:
    """A ZIP over the seekable binary file ``raw``, every read capped, with at most ``max_members`` entries.

    Raises:
        zipfile.BadZipFile: not a ZIP at all. Unsafe: a directory too large, or too many entries.
    """
    try:
        zf = zipfile.ZipFile(_Capped(raw))
    except Unsafe:
        raise
    except (ValueError, EOFError, OSError, struct.error) as exc:
        raise zipfile.BadZipFile(str(exc)) from None
    if len(zf.infolist()) > max_members:
        zf.close()
        raise Unsafe(f"it holds {len(zf.infolist())} entries where a model file has {max_members} at most")
    return zf


def read_member(zf: zipfile.ZipFile, name: str, limit: int, sink=None) -> bytes | None:
    """Entry ``name``, inflated in 1 MiB reads and stopped past its declared size or ``limit`` bytes, so that an
    entry that lies about its size costs no more than its declared size. Written to ``sink`` when given (then
    nothing is kept in memory and None is returned), else returned.

    Raises:
        Unsafe: encrypted, compressed by a method whose inflation ``zipfile`` does not bound (bzip2, LZMA),
        declared larger than ``limit``, or inflating to other bytes than its size and CRC declare.
    """
    info = zf.getinfo(name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
        raise Unsafe(f"its {name} is encrypted or compressed in a way Keras never writes")
    if info.file_size > limit:
        raise Unsafe(f"its {name} ({mib(info.file_size)}) is larger than a model file's ({mib(limit)})")
    lie = Unsafe(f"its {name} does not unpack to the size and checksum its ZIP entry declares")
    out, total = (sink if sink is not None else io.BytesIO()), 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(CHUNK):
                total += len(chunk)
                if total > info.file_size:
                    raise lie
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError):
        raise lie from None
    if total != info.file_size:
        raise lie
    return None if sink is not None else out.getvalue()


def read_json(zf: zipfile.ZipFile, name: str, limit: int):
    """Entry ``name`` parsed as JSON, read within ``limit`` bytes, nested at most ``MAX_DEPTH`` deep (deeper
    nesting would exhaust the recursion of whatever walks it next)."""
    data = read_member(zf, name, limit)
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise Unsafe(f"its {name} is not valid JSON") from None
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Unsafe(f"its {name} nests deeper than a model file's")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return value


def check_classes(config) -> None:
    """Every object the config names inside the model must be in :data:`ALLOWED` with exactly the module Keras
    writes for it, and no registered name other than its own: no Lambda or TFSMLayer (they carry code), no class
    without its module, no custom or registered object. Our own check, not Keras's safe mode. The model itself (the
    top level: its class, module and everything but its layers) is compared whole with the classifier built here
    afterwards (``core.models.trained._check_config``)."""
    allowed = ALLOWED
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise Unsafe("its description is not a Keras model")
    stack = list(config["config"].values())
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "class_name" in node:
                cls, module = str(node["class_name"])[:40], node.get("module", None)
                if cls in CODE_CLASSES:
                    raise Unsafe(f"it contains a {cls} layer, which could run code")
                if cls not in allowed:
                    raise Unsafe(f"it contains a {cls!r} object, which no model trained here has")
                if module != allowed[cls]:
                    where = str(module)[:40] if module is not None else f"{cls} without its module"
                    raise Unsafe(f"it refers to code outside Keras's layers ({where})")
                if node.get("registered_name") not in (None, cls):
                    raise Unsafe(f"it contains a custom object ({str(node.get('registered_name'))[:40]})")
            stack.extend(node.values())


@dataclass(frozen=True)
class Dataset:
    """An HDF5 dataset as its metadata describes it."""

    shape: tuple
    dtype: str
    plain: bool  # contiguous, unfiltered, stored in this file, fixed size: the way Keras writes weights
    stored: int  # bytes of data it stores
    nbytes: int  # bytes its shape and dtype need


def h5_datasets(path, max_objects: int) -> dict[str, Dataset]:
    """Every dataset of the HDF5 file at ``path`` by its path, from metadata alone: no dataset is read, so one
    declared huge costs nothing here. Refuses links out of the file (soft, external), named types, and more than
    ``max_objects`` objects (a file of countless groups, or a group linked into itself)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError):
        raise Unsafe("its weights are not an HDF5 file") from None
    out, seen = {}, 0
    with f:
        stack = [("", f)]
        try:
            while stack:
                prefix, group = stack.pop()
                for key in group:
                    seen += 1
                    if seen > max_objects:
                        raise Unsafe("its weights file holds more objects than the model has")
                    if not isinstance(group.get(key, getlink=True), h5py.HardLink):
                        raise Unsafe("its weights file links outside itself")
                    obj, where = group[key], prefix + key
                    if isinstance(obj, h5py.Group):
                        stack.append((where + "/", obj))
                    elif isinstance(obj, h5py.Dataset) and obj.shape is not None:
                        plist = obj.id.get_create_plist()
                        plain = (obj.chunks is None and plist.get_nfilters() == 0 and plist.get_external_count() == 0
                                 and not obj.is_virtual and obj.maxshape == obj.shape)
                        out[where] = Dataset(tuple(obj.shape), obj.dtype.str, plain, obj.id.get_storage_size(),
                                             obj.size * obj.dtype.itemsize)
                    else:
                        raise Unsafe("its weights file holds an object that is neither a group nor an array")
        except Unsafe:
            raise
        except (OSError, ValueError, TypeError, KeyError, RuntimeError):
            raise Unsafe("its weights file is damaged") from None
    return out


def digest(node, alias: dict) -> str:
    """A hash of a JSON value (nested at most ``MAX_DEPTH``) with the strings in ``alias`` read as their values,
    ignoring the object ids Keras numbers per process."""
    def plain(n):
        if isinstance(n, dict):
            return {k: plain(v) for k, v in n.items() if k != "shared_object_id"}
        if isinstance(n, list):
            return [plain(v) for v in n]
        return alias.get(n, n) if isinstance(n, str) else n
    return hashlib.sha256(json.dumps(plain(node), sort_keys=True).encode()).hexdigest()


def renumbered(a, b: str) -> bool:
    """Whether two layer names are Keras's numbering of one name (``rescaling`` and ``rescaling_3``): Keras numbers
    the layers it names itself (an input, EfficientNetB0's preprocessing) per process, so a file saved in another
    process may number them otherwise."""
    return isinstance(a, str) and re.sub(r"_\d+$", "", a) == re.sub(r"_\d+$", "", b)


_QUIET_LOCK = threading.Lock()
_QUIET: dict = {"depth": 0}  # how many quiet() windows are open in this process, and what the first one saved


@contextlib.contextmanager
def quiet():
    """Keras's and TensorFlow's warnings (Python warnings; the absl, keras, tensorflow and h5py loggers) kept from
    the user while a model is built or loaded here, and restored afterwards. ``warnings.catch_warnings`` is
    process-wide: another thread's warnings in that window are dropped too. Windows of several threads may overlap
    (two sessions opening model files at once): the first to open saves the settings, the last to close restores
    them, whatever order they close in."""
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            loggers = [logging.getLogger(n) for n in ("absl", "keras", "tensorflow", "h5py")]
            caught = warnings.catch_warnings()
            caught.__enter__()
            warnings.simplefilter("ignore")
            _QUIET["saved"] = (caught, [(lg, lg.level) for lg in loggers])
            for lg in loggers:
                lg.setLevel(logging.CRITICAL)
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0:
                caught, levels = _QUIET.pop("saved")
                for lg, level in levels:
                    lg.setLevel(level)
                caught.__exit__(None, None, None)


def mib(n: int) -> str:
    """Bytes as whole MB (MiB, rounded up), as the app's limits are written."""
    return f"{-(-int(n) // 2**20)} MB"
