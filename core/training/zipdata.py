"""A ZIP of class folders read into a :class:`~.data.Dataset` (the Train page's "ZIP of class folders"), each
member checked before it is read, and a ZIP that declares too many entries refused before Python reads its
directory."""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import PurePosixPath

from ..imaging import images
from . import data as _data  # (its limits read at each call: tests and callers may change them)
from .data import IMAGE_SUFFIXES, MIN_CLASSES, Dataset, DatasetError, _hidden, _Reading, _warn

MAX_ZIP_MEMBERS = 20_000


def read_zip(data, warn=None, progress=None) -> Dataset:
    """A ZIP whose top-level folders are the classes (one wrapping folder around them is allowed).

    Each member is checked before it is read (its declared size, then at most that many bytes are read),
    so a ZIP bomb cannot exhaust memory; reading stops, with one line, when the dataset is full
    (:data:`.data.MAX_IMAGES`) or :data:`.data.MAX_READ_PIXELS` are decoded. ``data``: bytes or a path.

    Raises:
        DatasetError: not a ZIP, a ZIP without class folders of images, or with only one class.
    """
    fh = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else open(data, "rb")
    with fh:
        entries = declared_entries(fh)
        if entries is not None and entries > MAX_ZIP_MEMBERS:  # before zipfile reads its directory whole
            raise DatasetError(f"The ZIP holds {entries} files; at most {MAX_ZIP_MEMBERS} are read.")
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise DatasetError("This is not a ZIP file.") from None
        return _read_members(zf, warn, progress)


def declared_entries(fh) -> int | None:
    """The number of entries a ZIP's end-of-central-directory record declares (its ZIP64 record's where it has
    one), read from the file's last 64 kB; None where there is no such record (not a ZIP). The directory itself —
    in Python, hundreds of bytes per entry once read — is not touched."""
    size = fh.seek(0, 2)
    tail_at = max(0, size - (22 + 65535))
    fh.seek(tail_at)
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    entries = struct.unpack("<H", tail[at + 10:at + 12])[0]
    locator = at - 20
    if entries == 0xFFFF and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[locator + 8:locator + 16])
        if 0 <= offset <= size - 56:
            fh.seek(offset)
            record = fh.read(56)
            if record[:4] == b"PK\x06\x06":
                (entries,) = struct.unpack("<Q", record[32:40])
    fh.seek(0)
    return entries


def _read_members(zf: zipfile.ZipFile, warn, progress) -> Dataset:
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise DatasetError(f"The ZIP holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are read.")
        # (a backslash as the separator: what some Windows tools write)
        paths = [PurePosixPath(m.filename.replace("\\", "/")) for m in members]
        # one wrapping folder around the class folders: every image two folders down, under the same top folder
        # (a README or other file beside the class folders is skipped, below)
        shown = [p for p in paths if not _ignored(p) and p.suffix.lower() in IMAGE_SUFFIXES]
        tops = {p.parts[0] for p in shown if len(p.parts) > 1}
        strip = 1 if len(tops) == 1 and shown and all(len(p.parts) > 2 for p in shown) else 0
        ds = Dataset()
        if not any(len(p.parts) > strip + 1 for p in paths if not _ignored(p)):
            raise DatasetError("The ZIP has no class folders with images (one top-level folder per class).")
        work = []
        for m, p in zip(members, paths):
            if _ignored(p):
                _warn(warn, f"{p}: hidden file, skipped.")
            elif len(p.parts) <= strip + 1:
                _warn(warn, f"{p}: not inside a class folder, skipped.")
            elif p.suffix.lower() not in IMAGE_SUFFIXES:
                _warn(warn, f"{p}: not an image file, skipped.")
            elif m.file_size > images.MAX_BYTES:
                _warn(warn, f"{p}: larger than {images.MAX_BYTES // 2**20} MB, skipped.")
            else:
                work.append((m, p))
        reading = _Reading(ds, len(work), warn, _data.MAX_READ_PIXELS)
        for i, (m, p) in enumerate(work):
            try:
                with zf.open(m) as fh:
                    blob = fh.read(images.MAX_BYTES + 1)  # more than MAX_BYTES: refused by load_bytes
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                _warn(warn, f"{p}: cannot be read from the ZIP ({type(exc).__name__}), skipped.")
            else:
                if not reading.add(p.parts[strip], blob, str(p)):
                    break
            if progress:
                progress((i + 1) / len(work))
    found = [n for n, ex in ds.classes.items() if ex]
    if len(found) < MIN_CLASSES:
        raise DatasetError(f"The ZIP has images in {len(found)} class folder{'' if len(found) == 1 else 's'}"
                           f"{' (' + repr(found[0]) + ')' if found else ''}; a dataset needs at least {MIN_CLASSES}.")
    return ds


def _ignored(p: PurePosixPath) -> bool:
    return any(_hidden(part) for part in p.parts)
