"""Read a legacy (pre-1.6, non-zip) PyTorch checkpoint into NumPy arrays, without torch.

The legacy format is a sequence of pickles followed by raw bytes:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the protocol version (``1001``);
3. a ``sys_info`` dict (endianness, type sizes);
4. the object itself (here a state dict) where every storage is a *persistent id*
   ``("storage", StorageType, key, location, numel[, view_metadata])`` and every tensor is
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``;
5. the list of storage keys, in the order their bytes follow;
6. for each key: an 8-byte little-endian element count, then the raw little-endian data.

Only the classes such a state dict needs are resolved; anything else is refused, so a hostile
file cannot run code through ``find_class``.
"""
from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """The file is not a legacy PyTorch checkpoint this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass
class _Storage:
    key: str
    dtype: type
    numel: int


@dataclass
class _LazyTensor:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: BinaryIO, storages: dict):
        super().__init__(fh, encoding="latin1")
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise CheckpointError(f"unexpected object {module}.{name} in checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError("storage views are not supported")
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self._storages[key]


def _materialise(t: _LazyTensor, data: dict[str, np.ndarray]) -> np.ndarray:
    flat = data[t.storage.key]
    itemsize = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[t.offset:], shape=t.size, strides=tuple(s * itemsize for s in t.stride)
    )
    return np.array(view)  # own the memory, C-contiguous


def _walk(obj, data):
    if isinstance(obj, _LazyTensor):
        return _materialise(obj, data)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _walk(v, data)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_walk(v, data) for v in obj)
    return obj


def load_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """Load a legacy PyTorch state dict as an ordered mapping name → NumPy array.

    Args:
        path: the ``.pth`` file.

    Returns:
        The state dict with every tensor as a NumPy array of its own dtype and shape.

    Raises:
        CheckpointError: the file is not in the legacy format or holds unexpected objects.
    """
    with open(path, "rb") as fh:
        try:
            magic = pickle.load(fh)
            if magic != MAGIC_NUMBER:
                raise CheckpointError("not a legacy PyTorch checkpoint (bad magic number)")
            if pickle.load(fh) != PROTOCOL_VERSION:
                raise CheckpointError("unsupported checkpoint protocol version")
            sys_info = pickle.load(fh)
            if not sys_info.get("little_endian", True):
                raise CheckpointError("big-endian checkpoints are not supported")
            storages: dict[str, _Storage] = {}
            obj = _Unpickler(fh, storages).load()
            keys = pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as exc:
            raise CheckpointError(f"unreadable checkpoint: {exc}") from exc
        data: dict[str, np.ndarray] = {}
        for key in keys:
            (numel,) = struct.unpack("<q", fh.read(8))
            st = storages[key]
            dtype = np.dtype(st.dtype).newbyteorder("<")
            raw = fh.read(numel * dtype.itemsize)
            if len(raw) != numel * dtype.itemsize:
                raise CheckpointError("checkpoint is truncated")
            data[key] = np.frombuffer(raw, dtype=dtype)
    return _walk(obj, data)
