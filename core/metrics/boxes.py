"""Object boxes, from wherever they come: a dataset's annotations file, a box file uploaded for one photo, the
rectangles drawn on a canvas; and back to CSV.

- :func:`read_boxes`: the annotations CSV ``file,class_index,x0,y0,x1,y1`` of a folder of photos (``python -m
  core evaluate --boxes``, the benchmark, the tests' evaluation set): ``file → (class, [boxes])``, each bad row
  described in one line and skipped.
- :func:`read_upload`: one photo's boxes from CSV ``x0,y0,x1,y1`` or a Pascal VOC XML (:func:`parse_csv`,
  :func:`parse_voc`), clipped to the photo; :func:`to_csv` writes what :func:`parse_csv` reads back.
- :func:`canvas_boxes`: the rectangles of a drawing canvas (Fabric.js objects) in the photo's pixels.

Every box is ``(x0, y0, x1, y1)`` in the photo's own pixels (float). Every way a file can fail to parse is one
line: :class:`BoxError` for an upload, ``ValueError`` for the annotations file. Uploads never run code and never
grow without bound: at most :data:`MAX_BYTES` are read and :data:`MAX_BOXES` boxes kept; an XML file with a
DOCTYPE or an ENTITY declaration is refused before it is parsed (no entity expansion, no external entities;
``defusedxml`` is not needed for what is left). Plain Python: no Streamlit.
"""
from __future__ import annotations

import csv
import io
import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Callable

Box = tuple[float, float, float, float]
BOX_COLUMNS = ("file", "class_index", "x0", "y0", "x1", "y1")
MAX_BYTES = 256 * 1024
MAX_BOXES = 100
_ORIGIN = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class BoxError(ValueError):
    """An upload that cannot be used; ``str(err)`` is one sentence."""


def _numbers(cells) -> Box | None:
    """Four finite floats, or None."""
    try:
        b = tuple(float(c) for c in cells)
    except (TypeError, ValueError):
        return None
    return b if len(b) == 4 and all(map(math.isfinite, b)) else None


# --- a dataset's annotations ------------------------------------------------------------------------------
def read_boxes(csv_path, on_error: Callable[[str], None] | None = None) -> dict[str, tuple[int, list[Box]]]:
    """``file → (class_index, [boxes])`` from a CSV with columns file,class_index,x0,y0,x1,y1.

    A row that cannot be used (missing value, not a number, an empty box, a second class for the same
    file) is skipped and described in one line to ``on_error`` (without one, it raises ValueError).

    Raises:
        ValueError: the file cannot be read (not UTF-8, not CSV: one line) or lacks the columns.
    """
    def bad(msg):
        if on_error is None:
            raise ValueError(msg)
        on_error(msg)

    name = Path(csv_path).name
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's byte-order mark is no column
            reader = csv.DictReader(fh)
            if not set(BOX_COLUMNS) <= set(reader.fieldnames or ()):
                raise ValueError(f"{name} needs the columns {','.join(BOX_COLUMNS)}")
            rows = list(reader)
    except OSError as exc:
        raise ValueError(f"cannot read {csv_path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not a readable CSV (not UTF-8 text)") from None
    except csv.Error as exc:  # a field over csv's size limit, a quote left open at the end…
        raise ValueError(f"{name} is not a readable CSV ({exc})") from None
    out: dict = defaultdict(lambda: [None, []])
    for line, r in enumerate(rows, start=2):
        where = f"{name} line {line}"
        try:
            file = (r["file"] or "").strip()
            cls = int(r["class_index"])
            box = tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1"))
        except (TypeError, ValueError):
            bad(f"{where}: skipped (needs a file name, an integer class and four numbers)")
            continue
        if not file or not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
            bad(f"{where}: skipped (no file name, or the box is empty or not finite)")
            continue
        entry = out[file]
        if entry[0] is not None and entry[0] != cls:
            bad(f"{where}: skipped ({file} already has class {entry[0]})")
            continue
        entry[0] = cls
        entry[1].append(box)
    return {k: (v[0], v[1]) for k, v in out.items()}


# --- one photo's boxes: the canvas and an upload ---------------------------------------------------------
def clip(boxes, width: int, height: int) -> list[Box]:
    """The boxes clipped to the photo, empty ones left out (at most :data:`MAX_BOXES`)."""
    out = []
    for x0, y0, x1, y1 in boxes:
        b = (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width), min(max(y1, 0.0), height))
        if b[2] > b[0] and b[3] > b[1]:
            out.append(tuple(float(v) for v in b))
    return out[:MAX_BOXES]


def canvas_boxes(json_data: dict | None, canvas_w: int, canvas_h: int, photo_w: int, photo_h: int) -> list[Box]:
    """The rectangles of a drawing canvas's ``json_data`` (Fabric.js objects, canvas pixels) in photo pixels:
    each rectangle's left/top/width/height (scaleX/scaleY and its origin applied) times photo size / canvas size."""
    sx, sy = photo_w / canvas_w, photo_h / canvas_h
    boxes = []
    for obj in (json_data or {}).get("objects") or []:
        if not isinstance(obj, dict) or str(obj.get("type", "")).lower() not in ("rect", "labeledrect"):
            continue
        try:
            w = float(obj.get("width", 0)) * float(obj.get("scaleX", 1))
            h = float(obj.get("height", 0)) * float(obj.get("scaleY", 1))
            left = float(obj.get("left", 0)) - _ORIGIN.get(obj.get("originX", "left"), 0.0) * w
            top = float(obj.get("top", 0)) - _ORIGIN.get(obj.get("originY", "top"), 0.0) * h
        except (TypeError, ValueError):
            continue
        if all(map(math.isfinite, (w, h, left, top))):
            boxes.append((left * sx, top * sy, (left + w) * sx, (top + h) * sy))
    return clip(boxes, photo_w, photo_h)


def _text(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise BoxError(f"{name}: larger than {MAX_BYTES // 1024} KB; a box file is a few lines.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BoxError(f"{name}: not UTF-8 text.") from None


def parse_csv(data: bytes, name: str = "boxes.csv") -> tuple[list[Box], list[str]]:
    """Boxes from CSV rows ``x0,y0,x1,y1`` (pixels; a header line is optional; a header naming x0, y0, x1, y1
    among other columns, as the annotations file, works too). Returns (boxes, one line per skipped row)."""
    try:
        rows = list(csv.reader(io.StringIO(_text(data, name))))
    except csv.Error as exc:  # a field over csv's size limit, a quote left open at the end…
        raise BoxError(f"{name}: not a readable CSV ({exc}).") from None
    problems: list[str] = []
    cols = [0, 1, 2, 3]
    if rows and any(_numbers([c, 0, 0, 0]) is None for c in rows[0] if c.strip()):  # a header: some text
        head = [c.strip().lower() for c in rows[0]]
        if {"x0", "y0", "x1", "y1"} <= set(head):
            cols = [head.index(k) for k in ("x0", "y0", "x1", "y1")]
        rows = rows[1:]
        start = 2
    else:
        start = 1
    boxes = []
    for line, row in enumerate(rows, start=start):
        if not any(c.strip() for c in row):
            continue
        b = _numbers([row[i] for i in cols]) if len(row) > max(cols) else None
        if b is None or b[2] <= b[0] or b[3] <= b[1]:
            problems.append(f"{name} line {line}: skipped (needs four numbers x0,y0,x1,y1 with x1 > x0 and y1 > y0)")
            continue
        boxes.append(b)
        if len(boxes) > MAX_BOXES:
            raise BoxError(f"{name}: more than {MAX_BOXES} boxes.")
    return boxes, problems


def parse_voc(data: bytes, name: str = "boxes.xml", photo_size: tuple[int, int] | None = None) -> list[Box]:
    """Boxes from a Pascal VOC annotation (``object/bndbox/xmin,ymin,xmax,ymax``, pixels as written). Where the
    file's ``size`` differs from ``photo_size`` (width, height), the boxes are scaled to the photo."""
    text = _text(data, name)
    if _DECLARATION.search(text):
        raise BoxError(f"{name}: DOCTYPE and ENTITY declarations are not accepted in a box file.")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise BoxError(f"{name}: not well-formed XML ({exc}).") from None
    sx = sy = 1.0
    size = root.find("size")
    if photo_size and size is not None:
        dims = _numbers([size.findtext("width"), size.findtext("height"), 0, 0])
        if dims and dims[0] > 0 and dims[1] > 0:
            sx, sy = photo_size[0] / dims[0], photo_size[1] / dims[1]
    boxes = []
    for bb in root.iter("bndbox"):
        b = _numbers([bb.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")])
        if b is None or b[2] <= b[0] or b[3] <= b[1]:
            raise BoxError(f"{name}: a bndbox needs numbers xmin < xmax and ymin < ymax.")
        boxes.append((b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy))
        if len(boxes) > MAX_BOXES:
            raise BoxError(f"{name}: more than {MAX_BOXES} boxes.")
    if not boxes:
        raise BoxError(f"{name}: no object/bndbox in this file.")
    return boxes


def read_upload(data: bytes, name: str, width: int, height: int) -> tuple[list[Box], list[str]]:
    """Boxes (clipped to the photo) from an uploaded CSV or VOC XML, and one line per skipped CSV row.

    Raises:
        BoxError: the file cannot be used (one sentence).
    """
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if name.lower().endswith(".xml") or head.startswith(b"<"):
        boxes, problems = parse_voc(data, name, (width, height)), []
    else:
        boxes, problems = parse_csv(data, name)
    kept = clip(boxes, width, height)
    if boxes and not kept:
        raise BoxError(f"{name}: every box lies outside the photo ({width}×{height} pixels).")
    return kept, problems


def to_csv(boxes) -> str:
    """The boxes as CSV ``x0,y0,x1,y1`` (what :func:`parse_csv` reads back)."""
    return "x0,y0,x1,y1\n" + "".join(f"{x0:.1f},{y0:.1f},{x1:.1f},{y1:.1f}\n" for x0, y0, x1, y1 in boxes)
