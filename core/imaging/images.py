"""Load, validate, orient and convert user images into RGB uint8 arrays.

Every refusal is an :class:`ImageError` whose message is one clear sentence for the user.
The original bytes and array are never modified.
"""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # ≈ 6300×6300: plenty for photos, refuses decompression bombs before decoding
MAX_BYTES = 50 * 1024 * 1024
MIN_SIDE = 8
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO")


class ImageError(ValueError):
    """An input that cannot be used as an image; ``str(err)`` is a one-line message for the user."""


@dataclass(frozen=True)
class LoadedImage:
    """An RGB photo ready for the models.

    Attributes:
        rgb: (H, W, 3) uint8, EXIF orientation applied; read-only.
        name: a display name (file name or sample name).
        format: the decoded container format (e.g. 'PNG').
    """

    rgb: np.ndarray
    name: str
    format: str

    def __post_init__(self):
        self.rgb.flags.writeable = False  # shared by every session (the sample cache): nobody writes into it

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB sensibly (alpha composited on white, 16-bit/float rescaled)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        finite = np.isfinite(a)
        if not finite.any():
            raise ImageError("The image holds no finite pixel values.")
        a = np.where(finite, a, 0.0)
        if mode == "F" and a.min() >= 0.0 and a.max() <= 1.0:
            scaled = a * 255.0  # float images in 0..1
        elif mode.startswith("I;16") or (a.min() >= 0 and a.max() <= 65535 and a.max() > 255):
            scaled = a / 257.0  # 16-bit range
        else:
            lo, hi = float(a.min()), float(a.max())
            scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        g = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
        return g.convert("RGB")
    if mode == "CMYK":
        return im.convert("RGB")
    return im.convert("RGB")  # L, 1, YCbCr, LAB, HSV ...


def load_bytes(data: bytes, name: str = "image", draft: int | None = None) -> LoadedImage:
    """Decode image bytes of any supported format (extension ignored).

    ``draft``: a JPEG may be decoded at a reduced scale (1/2 … 1/8) as long as both sides stay at least
    this large: a 12-megapixel photo meant for a 299-pixel thumbnail decodes in a fraction of the time and
    memory. Other formats decode at full size.

    Raises:
        ImageError: empty, too large, not an image, unsupported, truncated, too small or too many pixels.
    """
    if data is None or len(data) == 0:
        raise ImageError(f"{name}: the file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: the file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt = im.format or "unknown"
            if fmt not in FORMATS:
                raise ImageError(f"{name}: {fmt} images are not supported (use JPEG, PNG, WebP, BMP, TIFF or GIF).")
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"{name}: {w}×{h} pixels is more than the {MAX_PIXELS // 1_000_000} megapixel limit."
                )
            if min(w, h) < MIN_SIDE:
                raise ImageError(f"{name}: {w}×{h} pixels is too small (at least {MIN_SIDE} on each side).")
            im.seek(0)  # GIF/APNG/multi-page TIFF: first frame
            if draft and fmt in ("JPEG", "MPO"):
                im.draft("RGB", (draft, draft))
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = np.array(_to_rgb(im), dtype=np.uint8)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: the image has too many pixels (possible decompression bomb).") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: this is not an image file Grad-CAM Studio can read.") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError(f"{name}: the image is damaged or truncated ({type(exc).__name__}).") from None
    except MemoryError:
        raise ImageError(f"{name}: the image is too large to decode.") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"{name}: could not convert the image to RGB.")
    rgb.setflags(write=False)
    return LoadedImage(rgb=rgb, name=name, format=fmt)


def load_path(path) -> LoadedImage:
    """Read and decode an image file; a missing or unreadable path is an :class:`ImageError`."""
    from pathlib import Path

    p = Path(path)
    try:
        if p.is_dir():
            raise ImageError(f"{p.name}: is a folder, not an image.")
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(f"{p.name}: the file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
        data = p.read_bytes()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{p.name}: no such file.") from None
    except OSError as exc:
        raise ImageError(f"{p.name}: cannot be read ({exc.strerror or type(exc).__name__}).") from None
    return load_bytes(data, p.name)


def pixel_hash(rgb: np.ndarray) -> str:
    """An exact hash of the pixels (shape and dtype included), for caches (SHA-1: fast, not for security)."""
    import hashlib

    a = np.ascontiguousarray(rgb)
    h = hashlib.sha1(f"{a.shape}{a.dtype}".encode(), usedforsecurity=False)
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    """A side×side uint8 copy of the photo as a model sees it (bilinear, squashed like :func:`resize_for_model`),
    read-only: what training keeps of an image instead of the full-resolution upload."""
    out = np.rint(resize_for_model(rgb, side)).astype(np.uint8)
    out.flags.writeable = False
    return out


def resize_for_model(rgb: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to size×size float32 RGB in 0..255 (the model input; the display is not squashed)."""
    im = Image.fromarray(np.asarray(rgb, np.uint8), "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, np.float32)
