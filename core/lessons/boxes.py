"""Object boxes of the lessons' photos, and where a lesson's photo file is.

The bundled sample photos (``assets/*.jpg``) have hand-drawn boxes in ``assets/boxes.toml``; a lesson's own photos
(files beside the lesson) may have theirs in a ``boxes.toml`` beside the lesson, in the same format::

    [photos."cat_and_dog.jpg"]
    size = [940, 400]                                   # the original file's width and height (pixels)
    boxes = [{ label = "cat", box = [0, 0, 505, 400] }]  # x0, y0, x1, y1 in the original's pixels

Boxes are kept in the original's pixels and handed out as fractions of its width and height.
"""
from __future__ import annotations

import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
BOXES_FILE = "boxes.toml"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_LOCK = threading.Lock()
_READ: dict = {}  # boxes file → (mtime, {photo: [Box]})


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
    """{photo: [Box]} of one boxes file (kept until the file changes); a broken file raises ValueError."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return {}
    with _LOCK:
        kept = _READ.get(path)
        if kept and kept[0] == mtime:
            return kept[1]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid boxes file: {str(exc).splitlines()[0]}") from None
    out = {}
    for photo, entry in (data.get("photos") or {}).items():
        try:
            w, h = (int(v) for v in entry["size"])
            out[photo] = [Box(str(b["label"]), tuple(float(v) for v in b["box"]), (w, h)) for b in entry["boxes"]]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: photo {photo!r}: needs size = [w, h] and boxes = [{{label, box}}]") from None
        for b in out[photo]:
            x0, y0, x1, y1 = b.box
            if len(b.box) != 4 or not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                raise ValueError(f"{path}: photo {photo!r}: box {b.label!r} is not inside the {w}x{h} photo")
    with _LOCK:
        _READ[path] = (mtime, out)
    return out


def boxes_for(photo: str, folder: Path | None = None) -> list[Box]:
    """The photo's boxes: from ``folder/boxes.toml`` where it lists the photo, else from ``assets/boxes.toml``."""
    if folder is not None:
        local = _read(Path(folder) / BOXES_FILE)
        if photo in local:
            return local[photo]
    return _read(ASSETS / BOXES_FILE).get(photo, [])
