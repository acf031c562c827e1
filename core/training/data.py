"""A user's labelled images: classes with names they chose, from folders, a ZIP, single files or a webcam.

Only thumbnails are kept (``THUMB_SIDE`` pixels square, as a model sees them; JPEGs decode at a reduced
scale), never the full-resolution upload: 500 photos of 12 megapixels take 75 MB, not 18 GB.
Every refusal is a :class:`DatasetError` whose message is one sentence; a bad file inside a batch is a
one-line warning and is skipped.

What a file from elsewhere can make the server hold or do is bounded:

- a dataset keeps at most :data:`MAX_IMAGES` images: 300 MB (:data:`MAX_THUMB_MB`) of thumbnails, each counted
  at :data:`EXAMPLE_BYTES` (its 224×224×3 = 150,528 bytes, which every image becomes however small it was,
  plus 1 kB for the :class:`Example`, its hash and its name), so 2,075 images: 100 a class for 20 classes or
  200 a class for 10. Beside the models this keeps a session under the server's 1.5 GB target (README); a
  20,000-image ZIP of tiny PNGs became 2.9 GB before. Past it, :class:`DatasetFull` (from
  :meth:`Dataset.add`), or one line "Took the first N of M images: …" from the readers, which stop there;
- one image decodes to at most 40 megapixels (:data:`core.imaging.images.MAX_PIXELS`; bombs are refused
  before decoding), and one upload — a ZIP, or a batch of files given to :func:`add_files` — to at most
  :data:`MAX_READ_PIXELS` in all (2,000 megapixels, about 30 s of decoding here: a 50 MB ZIP of ordinary
  photos decodes to a few hundred); a folder on the user's own disk (the CLI) is not bounded this way;
- a ZIP holds at most :data:`.zipdata.MAX_ZIP_MEMBERS` files, each read only up to its size limit
  (:mod:`.zipdata`);
- a folder is read from inside itself only: a class folder or file that is a link out of it, ``__MACOSX``
  and hidden folders are skipped, one line each.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..imaging import images

THUMB_SIDE = 224  # the input side of the default and of 4 more of the 6 zoo models: their features need no
# resize (which cost 15 % of the feature pass); Xception (299) reads them enlarged
MIN_CLASSES, MAX_CLASSES = 2, 20
MIN_PER_CLASS = 2
MAX_CLASS_NAME = 60
MAX_THUMB_MB = 300
EXAMPLE_BYTES = THUMB_SIDE * THUMB_SIDE * 3 + 1024  # a thumbnail, plus its Example, hash and name (≈ 1 kB)
MAX_IMAGES = MAX_THUMB_MB * 2**20 // EXAMPLE_BYTES  # 2,075
MAX_READ_PIXELS = 2_000_000_000  # decoded by one upload (a ZIP, a batch of files) in all
FULL = f"a dataset keeps at most {MAX_THUMB_MB} MB of thumbnails ({MAX_IMAGES:,} images)"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".mpo"}


class DatasetError(ValueError):
    """Images that cannot be trained on; ``str(err)`` is one sentence for the user."""


class DatasetFull(DatasetError):
    """The dataset holds :data:`MAX_IMAGES` images already."""


def took(done: int, total: int, why: str) -> str:
    """The line that says where a read stopped, and why."""
    return f"Took the first {done:,} of {total:,} images: {why}."


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
        """Add ``example`` to class ``name`` (made if new); False when that class already has these pixels.

        Raises:
            DatasetFull: the dataset holds :data:`MAX_IMAGES` images already.
        """
        name = self.add_class(name)
        if any(e.key == example.key for e in self.classes[name]):
            return False
        if self.full:
            raise DatasetFull(f"The dataset is full: {FULL}; remove a class to add more.")
        self.classes[name].append(example)
        return True

    @property
    def full(self) -> bool:
        return self.size >= MAX_IMAGES

    def merge(self, other: "Dataset", warn=None) -> int:
        """Add every example of ``other`` under its class name; returns how many were new.

        Where the dataset fills up the rest is left out, with one ``warn`` line (without ``warn``: DatasetFull,
        whose message is that line).

        Raises:
            DatasetError: ``other`` would bring the classes past :data:`MAX_CLASSES` (nothing is added then).
        """
        new = [n for n in other.classes if n not in self.classes]
        if len(self.classes) + len(new) > MAX_CLASSES:
            raise DatasetError(f"These images are in {len(new)} new classes and there are {len(self.classes)} "
                               f"already: at most {MAX_CLASSES} classes. Nothing was added; remove some first.")
        added = done = 0
        for name, ex in other.classes.items():
            for e in ex:
                try:
                    added += self.add(name, e)
                except DatasetFull:
                    if warn is None:
                        raise DatasetFull(took(done, other.size, FULL)) from None
                    _warn(warn, took(done, other.size, FULL))
                    return added
                done += 1
        return added

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


class _Reading:
    """One read into a dataset: decodes at most ``max_pixels`` in all (None: no bound) and stops, with one line,
    where that is spent or the dataset is full."""

    def __init__(self, ds: Dataset, total: int, warn, max_pixels: int | None):
        self.ds, self.total, self.warn, self.max_pixels = ds, total, warn, max_pixels
        self.done = self.added = self.pixels = 0

    def add(self, name: str, data: bytes, source: str) -> bool:
        """Decode ``data`` into class ``name`` (a bad image: one line, skipped); False when the read stops here."""
        if self.max_pixels is not None and self.pixels >= self.max_pixels:
            return self._stop(f"one upload decodes at most {self.max_pixels // 10**6:,} megapixels")
        try:
            rgb = images.load_bytes(data, source, draft=THUMB_SIDE).rgb
            self.pixels += rgb.shape[0] * rgb.shape[1]
            self.added += self.ds.add(name, example_from_rgb(rgb, source))
        except images.ImageError as exc:
            _warn(self.warn, f"{exc} Skipped.")
        except DatasetFull:
            return self._stop(FULL)
        self.done += 1
        return True

    def _stop(self, why: str) -> bool:
        _warn(self.warn, took(self.done, self.total, why))
        return False


def add_files(dataset: Dataset, name: str, files, warn=None, progress=None, total: int | None = None) -> int:
    """Add ``files`` — (file name, bytes) pairs, taken one at a time (an iterator: give ``total``) — to class
    ``name``; a bad file is one ``warn`` line and is skipped. One call is one upload: it decodes at most
    :data:`MAX_READ_PIXELS` and stops, with one line, there or where the dataset is full.

    Returns:
        How many images were added (duplicates in the class are not).
    """
    total = len(files) if total is None else total
    reading = _Reading(dataset, total, warn, MAX_READ_PIXELS)
    for i, (fname, data) in enumerate(files):
        if not reading.add(name, data, fname):
            break
        if progress:
            progress((i + 1) / max(total, 1))
    return reading.added


def read_folder(folder, warn=None, progress=None) -> Dataset:
    """One sub-folder per class (the ``image_dataset_from_directory`` layout), class order by folder name.

    Hidden files and folders, ``__MACOSX``, links out of ``folder`` and files that are not images are skipped
    with one ``warn`` line each; a link is never followed out of ``folder``. Reading stops, with one line, when
    the dataset is full (:data:`MAX_IMAGES`).

    Raises:
        DatasetError: the folder is missing or has no class folders.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    base = root.resolve()
    entries = []
    ds = Dataset()
    named: dict[str, str] = {}  # a class name → the first folder that gave it
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if _hidden(d.name):
            _warn(warn, f"{d.name}: hidden folder, skipped.")
        elif not _inside(d, base):
            _warn(warn, f"{d.name}: a link out of the dataset folder, skipped.")
        else:
            name = ds.add_class(d.name)  # an empty class folder is a class with no images (check() says so)
            if named.setdefault(name, d.name) != d.name:
                _warn(warn, f"{d.name}: the same class as {named[name]} once spaces are tidied ({name!r}); their "
                            "images go together.")
            entries += [(d.name, f) for f in _files(d, root, warn)]
    for f in sorted(p for p in root.iterdir() if p.is_file()):
        _warn(warn, f"{f.name}: {'hidden file' if f.name.startswith('.') else 'not inside a class folder'}, skipped.")
    if not entries:
        raise DatasetError(f"{root} has no class folders with files (one sub-folder per class).")
    work = []
    for cls, f in entries:
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            _warn(warn, f"{rel}: hidden file, skipped.")
        elif f.suffix.lower() not in IMAGE_SUFFIXES:
            _warn(warn, f"{rel}: not an image file, skipped.")
        elif not _inside(f, base):
            _warn(warn, f"{rel}: a link out of the dataset folder, skipped.")
        else:
            work.append((cls, f, rel))
    reading = _Reading(ds, len(work), warn, None)  # the user's own disk: only the dataset's budget
    for i, (cls, f, rel) in enumerate(work):
        try:
            if f.stat().st_size > images.MAX_BYTES:
                _warn(warn, f"{rel}: the file is larger than {images.MAX_BYTES // 2**20} MB. Skipped.")
            elif not reading.add(cls, f.read_bytes(), str(rel)):
                break
        except OSError as exc:
            _warn(warn, f"{rel}: cannot be read ({exc.strerror}), skipped.")
        if progress:
            progress((i + 1) / len(work))
    return ds


def _files(d: Path, root: Path, warn) -> list[Path]:
    """The files under class folder ``d``, sorted; hidden and linked sub-folders are not entered (one line each)."""
    out = []
    for top, dirs, files in os.walk(d):
        here = Path(top)
        for n in sorted(dirs):
            if _hidden(n) or (here / n).is_symlink():
                _warn(warn, f"{(here / n).relative_to(root)}: {'hidden' if _hidden(n) else 'linked'} folder, skipped.")
        dirs[:] = [n for n in dirs if not _hidden(n) and not (here / n).is_symlink()]
        for n in files:
            if (here / n).is_file():
                out.append(here / n)
            else:  # a link to nothing (or a socket, a pipe): said, like every file skipped
                what = "a broken link" if (here / n).is_symlink() else "not a regular file"
                _warn(warn, f"{(here / n).relative_to(root)}: {what}, skipped.")
    return sorted(out)


def _inside(p: Path, base: Path) -> bool:
    """Whether ``p``, its links followed, lies inside ``base`` (a resolved folder)."""
    try:
        return p.resolve().is_relative_to(base)
    except (OSError, RuntimeError):  # a link loop
        return False


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _warn(warn, msg: str) -> None:
    if warn is not None:
        warn(msg)
