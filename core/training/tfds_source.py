"""Ready public datasets through ``tensorflow-datasets`` (optional): a sample of a few classes as a :class:`Dataset`.

``cats_vs_dogs`` (Microsoft's Asirra photos, 2 classes) and ``stanford_dogs`` (120 breeds from ImageNet; the
first N are taken, at most 20). The first use downloads the whole dataset (about 780 MB each) into TFDS's data
folder, with progress read from the bytes that arrived; later uses read the prepared files offline. Images are
read still encoded and decoded only when taken (at thumbnail scale), so a sample of 50 per class reads about
that many images, not the whole set. Without the package, or offline before the first download,
:func:`unavailable` says so in one sentence and nothing else changes.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from ..imaging import images
from .data import MAX_CLASSES, MIN_CLASSES, Dataset, DatasetError, example_from_bytes
from .features import Stopped

PROBE = ("storage.googleapis.com", 443)  # where TFDS's metadata lives; the datasets' own hosts vary


@dataclass(frozen=True)
class Source:
    """A public dataset the Train page offers."""

    name: str
    title: str
    about: str
    download_mb: float
    classes: int


SOURCES = {s.name: s for s in (
    Source("cats_vs_dogs", "Cats vs dogs", "Microsoft's Asirra photos of cats and dogs (23,262 photos)", 786.7, 2),
    Source("stanford_dogs", "Stanford Dogs", "120 dog breeds from ImageNet (20,580 photos); the first breeds are taken",
           778.1, 120),
)}


def _tfds():
    import tensorflow_datasets as tfds  # optional dependency: imported only when asked for

    return tfds


def installed() -> bool:
    try:
        _tfds()
    except ImportError:
        return False
    return True


def online(probe=PROBE, timeout: float = 2.0) -> bool:
    """Whether ``probe`` (host, port) answers within ``timeout`` seconds."""
    try:
        socket.create_connection(probe, timeout=timeout).close()
        return True
    except OSError:
        return False


def prepared(name: str, data_dir=None) -> bool:
    """Whether ``name`` is downloaded and prepared in ``data_dir`` (TFDS's default folder when None)."""
    return installed() and _tfds().builder(name, data_dir=data_dir).is_prepared()


def unavailable(name: str, data_dir=None, probe=PROBE) -> str | None:
    """Why ``name`` cannot be read now, in one sentence (None when it can)."""
    if name not in SOURCES:
        return f"Unknown public dataset {name!r}; choose one of {', '.join(SOURCES)}."
    if not installed():
        return ("Public datasets need the optional tensorflow-datasets package (pip install tensorflow-datasets); "
                "files, ZIPs and the webcam work without it.")
    if prepared(name, data_dir):
        return None
    if not online(probe):
        return (f"Offline: {SOURCES[name].title} has not been downloaded on this machine and the internet cannot "
                "be reached, so use files, a ZIP or the webcam.")
    return None


def clean_label(name: str) -> str:
    """A readable class name from a TFDS label: ``n02085620-Chihuahua`` → ``Chihuahua``, ``_`` → space."""
    name = str(name)
    if "-" in name and name.split("-", 1)[0][:1] == "n" and name.split("-", 1)[0][1:].isdigit():
        name = name.split("-", 1)[1]
    return name.replace("_", " ").strip()[:60] or "class"


def _dir_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def _download(builder, source: Source, progress, poll: float = 0.5) -> None:
    """``builder.download_and_prepare()`` in a thread, with progress from the bytes that arrived."""
    error: list = []

    def work():
        try:
            builder.download_and_prepare()
        except Exception as exc:  # noqa: BLE001 - reported below in one sentence
            error.append(exc)

    thread = threading.Thread(target=work, name=f"tfds-{source.name}", daemon=True)
    thread.start()
    root = Path(builder.data_dir).parent.parent  # <data_dir>/<name>/<version> → <data_dir>
    want = source.download_mb * 2**20
    while thread.is_alive():
        thread.join(poll)
        if progress:
            got = _dir_bytes(root / "downloads") if (root / "downloads").exists() else 0
            progress(min(0.99, got / want), f"Downloading {source.title}… {got / 2**20:.0f} of {source.download_mb:.0f} MB")
    if error:
        first = str(error[0]).strip().splitlines()[0][:120] if str(error[0]).strip() else type(error[0]).__name__
        raise DatasetError(f"{source.title} could not be downloaded ({first}).")


def load(name: str, per_class: int, n_classes: int | None = None, data_dir=None, progress=None,
         should_stop=None, warn=None, probe=PROBE) -> Dataset:
    """A sample of ``per_class`` images of each of the first ``n_classes`` classes of ``name``.

    Args:
        name: a key of :data:`SOURCES`.
        per_class: images per class (1–1000).
        n_classes: how many classes (the first ones, 2–20; all of them when None and there are at most 20).
        data_dir: TFDS's data folder (None: its default, ``~/tensorflow_datasets``).
        progress: ``progress(fraction, text)``; the download takes the first part when one is needed.
        should_stop: checked between images; raises :class:`~core.training.features.Stopped`.
        warn: one line per image that cannot be read (it is skipped).
        probe: (host, port) whose answer means "online" (asked only when a download is needed).

    Raises:
        DatasetError: not installed, offline before the first download, a failed download (one sentence).
    """
    why = unavailable(name, data_dir, probe)
    if why:
        raise DatasetError(why)
    source = SOURCES[name]
    n_classes = min(source.classes, MAX_CLASSES) if n_classes is None else int(n_classes)
    if not MIN_CLASSES <= n_classes <= min(MAX_CLASSES, source.classes):
        raise DatasetError(f"{source.title}: choose {MIN_CLASSES}–{min(MAX_CLASSES, source.classes)} classes.")
    per_class = max(1, min(1000, int(per_class)))
    say = progress or (lambda f, t: None)
    tfds = _tfds()
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        _download(builder, source, lambda f, t: say(0.8 * f, t))
        read_from, share = 0.8, 0.2
    else:
        read_from, share = 0.0, 1.0
    names = [clean_label(n) for n in builder.info.features["label"].names[:n_classes]]
    ds = builder.as_dataset(split="train", decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False)
    ds = ds.filter(lambda ex: ex["label"] < n_classes)
    out = Dataset()
    for n in names:
        out.add_class(n)
    want = per_class * n_classes
    taken = 0
    for i, ex in enumerate(tfds.as_numpy(ds)):
        if should_stop is not None and should_stop():
            raise Stopped("stopped while reading the public dataset")
        label = int(ex["label"])
        if len(out.classes[names[label]]) >= per_class:
            continue
        fname = ex.get("image/filename", b"")
        source_name = f"{name}/{fname.decode('utf-8', 'replace') if isinstance(fname, bytes) and fname else i}"
        try:
            taken += out.add(names[label], example_from_bytes(bytes(ex["image"]), source_name))
        except images.ImageError as exc:
            if warn is not None:
                warn(f"{exc} Skipped.")
        say(read_from + share * taken / want, f"Reading {source.title}: {taken} of {want} images")
        if taken >= want:
            break
    say(1.0, f"{source.title}: {taken} images")
    return out


__all__ = ["PROBE", "SOURCES", "Source", "clean_label", "installed", "load", "online", "prepared", "unavailable"]
