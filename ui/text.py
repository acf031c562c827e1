"""Small text helpers the pages share: counts with the right plural, and file names that fit a narrow caption."""
from __future__ import annotations

from pathlib import PurePath


def plural(n: int, one: str, many: str | None = None) -> str:
    """``"1 class"``, ``"2 classes"``: the count and the word that goes with it."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def short_name(name: str, width: int = 18) -> str:
    """A file name cut to at most ``width`` characters in its middle (``"ILSVRC…00013810.JPEG"``), the folder left
    out and the extension always whole, so that a narrow caption never breaks the name inside its extension."""
    base = PurePath(str(name).replace("\\", "/")).name or str(name)
    if len(base) <= width:
        return base
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem or len(ext) > 6 or len(ext) + 4 > width:
        stem, ext = base, ""
    ext = f".{ext}" if ext else ""
    room = max(2, width - len(ext) - 1)
    head = room // 3
    return f"{stem[:head]}…{stem[len(stem) - (room - head):]}{ext}"
