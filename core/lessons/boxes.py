"""Object boxes of the lessons' photos, and where a lesson's photo file is.

The bundled sample photos (``assets/*.jpg``) have hand-drawn boxes in ``assets/boxes.toml``; a lesson's own photos
(files beside the lesson) may have theirs in a ``boxes.toml`` beside the lesson, in the same format::

    [photos."cat_and_dog.jpg"]
    size = [940, 400]                                   # the original file's width and height (pixels)
    boxes = [{ label = "cat", box = [0, 0, 505, 400] }]  # x0, y0, x1, y1 in the original's pixels

Boxes are kept in the original's pixels and handed out as fractions of its width and height.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
BOXES_FILE = "boxes.toml"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class Box:
    """One object's box: its label and (x0, y0, x1, y1) in the original photo's pixels, and that photo's size."""

    label: str
    box: tuple[float, float, float, float]
    size: tuple[int, int]

    @property
    def fractions(self) -> tuple[float, float, float, float]:
        w, h = self.size
        x0, y0, x1, y1 = self.box
        return (x0 / w, y0 / h, x1 / w, y1 / h)


def photo_file(name: str, folder: Path | None) -> Path:
    """A bundled sample (``assets/NAME``) or a photo file beside the lesson (``folder/NAME``, never outside it).

    Raises:
        ValueError: one sentence: no such photo.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{name!r} must be the file name of a bundled sample or of a photo beside the lesson")
    if Path(name).suffix.lower() not in PHOTO_SUFFIXES:
        raise ValueError(f"{name!r} is not a photo file ({', '.join(PHOTO_SUFFIXES)})")
    for base in ((folder,) if folder is not None else ()) + (ASSETS,):
        candidate = Path(base) / name
        if candidate.is_file():
            return candidate
    samples = ", ".join(sorted(p.name for p in ASSETS.glob("*.jpg")))
    raise ValueError(f"no photo {name!r} beside the lesson nor among the bundled samples ({samples})")


def _read(path: Path) -> dict:
    """{photo: [Box] or the one-line problem of that photo's entry} of one boxes file (kept until the file changes,
    in a small bounded cache); a file that is not valid TOML raises ValueError."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return {}
    return _parse(str(path), mtime)


@functools.lru_cache(maxsize=16)
def _parse(path: str, mtime: int) -> dict:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid boxes file: {str(exc).splitlines()[0]}") from None
    photos = data.get("photos") or {}
    if not isinstance(photos, dict):
        raise ValueError(f"{path}: not a valid boxes file: 'photos' must be a table of photos")
    return {photo: _entry(path, photo, entry) for photo, entry in photos.items()}


def _entry(path: str, photo: str, entry) -> list[Box] | str:
    """One photo's boxes, or the one-line problem of its entry (reported only where that photo is used)."""
    where = f"{path}: photo {photo!r}"
    try:
        w, h = (int(v) for v in entry["size"])
        found = []
        for b in entry["boxes"]:
            label, box = str(b["label"]), tuple(float(v) for v in b["box"])
            if len(box) != 4:
                return f"{where}: box {label!r} must be 4 numbers [x0, y0, x1, y1], not {len(box)}"
            found.append(Box(label, box, (w, h)))
    except (KeyError, TypeError, ValueError):
        return f"{where}: needs size = [w, h] and boxes = [{{label, box}}]"
    for b in found:
        x0, y0, x1, y1 = b.box
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            return f"{where}: box {b.label!r} is not inside the {w}x{h} photo"
    return found


def boxes_for(photo: str, folder: Path | None = None) -> list[Box]:
    """The photo's boxes: from ``folder/boxes.toml`` where it lists the photo, else from ``assets/boxes.toml``.

    Raises:
        ValueError: one line naming the boxes file and the photo, where that photo's entry is broken (or the
            file is not valid TOML).
    """
    found = None
    if folder is not None:
        found = _read(Path(folder) / BOXES_FILE).get(photo)
    if found is None:
        found = _read(ASSETS / BOXES_FILE).get(photo, [])
    if isinstance(found, str):
        raise ValueError(found)
    return found
