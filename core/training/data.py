"""A user's labelled images: classes with names they chose, from folders, a ZIP, single files or a webcam.

Only thumbnails are kept (``THUMB_SIDE`` pixels square, as a model sees them; JPEGs decode at a reduced
scale), never the full-resolution upload: 500 photos of 12 megapixels take 75 MB, not 18 GB.
Every refusal is a :class:`DatasetError` whose message is one sentence; a bad file inside a batch is a
one-line warning and is skipped.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..imaging import images

THUMB_SIDE = 224  # the input side of the default and of 4 more of the 6 zoo models: their features need no
# resize (which cost 15 % of the feature pass); Xception (299) reads them enlarged
MIN_CLASSES, MAX_CLASSES = 2, 20
MIN_PER_CLASS = 2
MAX_CLASS_NAME = 60
MAX_ZIP_MEMBERS = 20_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".mpo"}


class DatasetError(ValueError):
    """Images that cannot be trained on; ``str(err)`` is one sentence for the user."""


@dataclass(frozen=True)
class Example:
    """One training image: its thumbnail (read-only uint8), an exact pixel hash, and where it came from."""

    thumb: np.ndarray
    key: str
    source: str


def example_from_bytes(data: bytes, source: str) -> Example:
    """A thumbnail from image bytes (raises :class:`core.imaging.images.ImageError`, one sentence)."""
    img = images.load_bytes(data, source, draft=THUMB_SIDE)
    return example_from_rgb(img.rgb, source)


def example_from_rgb(rgb: np.ndarray, source: str) -> Example:
    """A thumbnail from an (H, W, 3) uint8 photo."""
    thumb = images.thumbnail(rgb, THUMB_SIDE)
    return Example(thumb=thumb, key=images.pixel_hash(thumb), source=source)


def clean_class_name(name: str) -> str:
    """A class name as typed, trimmed; DatasetError when it is empty or too long."""
    name = re.sub(r"\s+", " ", str(name)).strip()
    if not name:
        raise DatasetError("A class needs a name.")
    if len(name) > MAX_CLASS_NAME:
        raise DatasetError(f"The class name {name[:20]!r}… is longer than {MAX_CLASS_NAME} characters.")
    return name


@dataclass
class Dataset:
    """Classes in the order they were made, each with its examples (a duplicate photo is kept once per class)."""

    classes: dict[str, list[Example]] = field(default_factory=dict)

    def add_class(self, name: str) -> str:
        name = clean_class_name(name)
        if name in self.classes:
            return name
        if len(self.classes) >= MAX_CLASSES:
            raise DatasetError(f"At most {MAX_CLASSES} classes; remove one before adding {name!r}.")
        self.classes[name] = []
        return name

    def remove_class(self, name: str) -> None:
        self.classes.pop(name, None)

    def add(self, name: str, example: Example) -> bool:
        """Add ``example`` to class ``name`` (made if new); False when that class already has these pixels."""
        name = self.add_class(name)
        if any(e.key == example.key for e in self.classes[name]):
            return False
        self.classes[name].append(example)
        return True

    def merge(self, other: "Dataset") -> int:
        """Add every example of ``other`` under its class name; returns how many were new."""
        return sum(self.add(name, e) for name, ex in other.classes.items() for e in ex)

    def counts(self) -> dict[str, int]:
        return {n: len(ex) for n, ex in self.classes.items()}

    @property
    def size(self) -> int:
        return sum(len(ex) for ex in self.classes.values())

    @property
    def nbytes(self) -> int:
        return sum(e.thumb.nbytes for ex in self.classes.values() for e in ex)

    def check(self) -> None:
        """DatasetError (one sentence) unless there are 2–20 classes with at least 2 images each."""
        if len(self.classes) < MIN_CLASSES:
            raise DatasetError(f"Training needs at least {MIN_CLASSES} classes; there "
                               f"{'is' if len(self.classes) == 1 else 'are'} {len(self.classes)}.")
        small = [n for n, ex in self.classes.items() if len(ex) < MIN_PER_CLASS]
        if small:
            raise DatasetError(f"Every class needs at least {MIN_PER_CLASS} images; {small[0]!r} has "
                               f"{len(self.classes[small[0]])}.")

    def arrays(self) -> tuple[list[np.ndarray], np.ndarray, list[str], list[str]]:
        """(thumbnails, labels as class indices, class names in index order, sources)."""
        thumbs, labels, sources = [], [], []
        for i, ex in enumerate(self.classes.values()):
            for e in ex:
                thumbs.append(e.thumb)
                labels.append(i)
                sources.append(e.source)
        return thumbs, np.asarray(labels, np.int64), list(self.classes), sources


def add_files(dataset: Dataset, name: str, files, warn=None, progress=None) -> int:
    """Add ``files`` — (file name, bytes) pairs — to class ``name``; a bad file is one ``warn`` line and is skipped.

    Returns:
        How many images were added (duplicates in the class are not).
    """
    files = list(files)
    added = 0
    for i, (fname, data) in enumerate(files):
        try:
            added += dataset.add(name, example_from_bytes(data, fname))
        except images.ImageError as exc:
            _warn(warn, str(exc))
        if progress:
            progress((i + 1) / len(files))
    return added


def read_folder(folder, warn=None, progress=None) -> Dataset:
    """One sub-folder per class (the ``image_dataset_from_directory`` layout), class order by folder name.

    Hidden files and folders and files that are not images are skipped with one ``warn`` line each.

    Raises:
        DatasetError: the folder is missing or has no class folders.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    entries = []
    ds = Dataset()
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        ds.add_class(d.name)  # an empty class folder is a class with no images (check() says so)
        for f in sorted(d.rglob("*")):
            if f.is_file():
                entries.append((d.name, f))
    for f in sorted(p for p in root.iterdir() if p.is_file()):
        _warn(warn, f"{f.name}: {'hidden file' if f.name.startswith('.') else 'not inside a class folder'}, skipped.")
    if not entries:
        raise DatasetError(f"{root} has no class folders with files (one sub-folder per class).")
    for i, (cls, f) in enumerate(entries):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            _warn(warn, f"{rel}: hidden file, skipped.")
        elif f.suffix.lower() not in IMAGE_SUFFIXES:
            _warn(warn, f"{rel}: not an image file, skipped.")
        else:
            try:
                if f.stat().st_size > images.MAX_BYTES:
                    raise images.ImageError(f"{rel}: the file is larger than {images.MAX_BYTES // 2**20} MB.")
                ds.add(cls, example_from_bytes(f.read_bytes(), str(rel)))
            except images.ImageError as exc:
                _warn(warn, f"{exc} Skipped." if str(exc).startswith(str(rel)) else f"{rel}: {exc} Skipped.")
            except OSError as exc:
                _warn(warn, f"{rel}: cannot be read ({exc.strerror}), skipped.")
        if progress:
            progress((i + 1) / len(entries))
    return ds


def read_zip(data, warn=None, progress=None) -> Dataset:
    """A ZIP whose top-level folders are the classes (one wrapping folder around them is allowed).

    Each member is checked before it is read (its declared size, then at most that many bytes are read),
    so a ZIP bomb cannot exhaust memory. ``data``: bytes or a path.

    Raises:
        DatasetError: not a ZIP, a ZIP without class folders of images, or with only one class.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DatasetError("This is not a ZIP file.") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise DatasetError(f"The ZIP holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are read.")
        paths = [PurePosixPath(m.filename) for m in members]
        tops = {p.parts[0] for p in paths if len(p.parts) > 1 and not _ignored(p)}
        strip = 1 if len(tops) == 1 and all(len(p.parts) > 2 for p in paths if not _ignored(p)) else 0
        ds = Dataset()
        work = [(m, p) for m, p in zip(members, paths)]
        if not any(len(p.parts) > strip + 1 for _, p in work if not _ignored(p)):
            raise DatasetError("The ZIP has no class folders with images (one top-level folder per class).")
        for i, (m, p) in enumerate(work):
            rel = str(p)
            if _ignored(p):
                _warn(warn, f"{rel}: hidden file, skipped.")
            elif len(p.parts) <= strip + 1:
                _warn(warn, f"{rel}: not inside a class folder, skipped.")
            elif p.suffix.lower() not in IMAGE_SUFFIXES:
                _warn(warn, f"{rel}: not an image file, skipped.")
            elif m.file_size > images.MAX_BYTES:
                _warn(warn, f"{rel}: larger than {images.MAX_BYTES // 2**20} MB, skipped.")
            else:
                try:
                    with zf.open(m) as fh:
                        blob = fh.read(images.MAX_BYTES + 1)
                    if len(blob) > images.MAX_BYTES:
                        raise images.ImageError(f"{rel}: larger than {images.MAX_BYTES // 2**20} MB.")
                    ds.add(p.parts[strip], example_from_bytes(blob, rel))
                except images.ImageError as exc:
                    _warn(warn, f"{exc} Skipped.")
                except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                    _warn(warn, f"{rel}: cannot be read from the ZIP ({type(exc).__name__}), skipped.")
            if progress:
                progress((i + 1) / len(work))
    found = [n for n, ex in ds.classes.items() if ex]
    if len(found) < MIN_CLASSES:
        raise DatasetError(f"The ZIP has images in {len(found)} class folder{'' if len(found) == 1 else 's'}"
                           f"{' (' + repr(found[0]) + ')' if found else ''}; a dataset needs at least {MIN_CLASSES}.")
    return ds


def _ignored(p: PurePosixPath) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in p.parts)


def _warn(warn, msg: str) -> None:
    if warn is not None:
        warn(msg)
