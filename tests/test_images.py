"""Every hostile or odd input we could think of: a clear ImageError or a sensible RGB image."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.imaging import images
from core.imaging.images import ImageError, load_bytes


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(w=40, h=30):
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w)[None, :]
    a[..., 1] = np.linspace(0, 255, h)[:, None]
    return Image.fromarray(a)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_common_formats_decode_with_any_name(fmt):
    out = load_bytes(encode(gradient(), fmt), "no_extension")
    assert out.rgb.shape == (30, 40, 3) and out.rgb.dtype == np.uint8
    assert out.format == fmt


def test_wrong_extension_is_ignored():
    out = load_bytes(encode(gradient(), "PNG"), "photo.jpg")
    assert out.format == "PNG"


def test_exif_orientation_is_applied():
    im = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW on display
    out = load_bytes(encode(im, "JPEG", exif=exif), "rotated.jpg")
    assert out.rgb.shape == (40, 30, 3)


def test_cmyk_jpeg_becomes_rgb():
    out = load_bytes(encode(gradient().convert("CMYK"), "JPEG"), "cmyk.jpg")
    assert out.rgb.shape == (30, 40, 3)


def test_palette_with_transparency_composited_on_white():
    im = Image.new("P", (20, 20), 0)
    im.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    im.info["transparency"] = 0
    out = load_bytes(encode(im, "PNG", transparency=0), "p.png")
    assert (out.rgb == 255).all()  # fully transparent red → white


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1"])
def test_gray_alpha_and_bilevel(mode):
    im = gradient().convert(mode)
    out = load_bytes(encode(im, "PNG"), f"{mode}.png")
    assert out.rgb.shape == (30, 40, 3)


def test_16bit_png_is_rescaled_not_clipped():
    a = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    out = load_bytes(encode(Image.fromarray(a), "PNG"), "16bit.png")
    assert out.rgb.max() >= 250 and out.rgb.min() <= 5
    assert len(np.unique(out.rgb[..., 0])) > 100


def test_float_tiff_in_unit_range_and_with_nan():
    a = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(30, 40)
    a[0, 0] = np.nan
    out = load_bytes(encode(Image.fromarray(a, "F"), "TIFF"), "float.tif")
    assert out.rgb.max() >= 250 and np.isfinite(out.rgb).all()


def test_all_nan_float_is_refused():
    a = np.full((30, 40), np.nan, np.float32)
    with pytest.raises(ImageError, match="finite"):
        load_bytes(encode(Image.fromarray(a, "F"), "TIFF"), "nan.tif")


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = load_bytes(buf.getvalue(), "anim.gif")
    assert out.rgb[5, 5, 0] > 200 and out.rgb[5, 5, 1] < 50


def _png_header_only(w, h):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(ImageError, match="megapixel|too many pixels"):
        load_bytes(_png_header_only(100_000, 100_000), "bomb.png")


@pytest.mark.parametrize("data,msg", [
    (b"", "empty"),
    (b"hello, I am text", "not an image"),
    (b"%PDF-1.4\n%...", "not an image"),
    (bytes(range(256)) * 10, "not an image"),
])
def test_non_images_refused_in_one_line(data, msg):
    with pytest.raises(ImageError, match=msg) as err:
        load_bytes(data, "x")
    assert "\n" not in str(err.value)


def test_truncated_jpeg_refused():
    data = encode(gradient(200, 200), "JPEG")
    with pytest.raises(ImageError, match="damaged|truncated"):
        load_bytes(data[: len(data) // 3], "cut.jpg")


def test_tiny_image_refused():
    with pytest.raises(ImageError, match="too small"):
        load_bytes(encode(Image.new("RGB", (2, 2)), "PNG"), "tiny.png")


def test_unsupported_format_refused():
    with pytest.raises(ImageError, match="not supported|not an image"):
        load_bytes(encode(Image.new("RGB", (32, 32)), "ICO"), "icon.ico")


def test_too_many_bytes_refused():
    with pytest.raises(ImageError, match="larger than"):
        load_bytes(b"\0" * (images.MAX_BYTES + 1), "huge.bin")


def test_paths_missing_and_folders(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        images.load_path(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        images.load_path(tmp_path)


def test_original_is_read_only_and_hash_is_exact():
    out = load_bytes(encode(gradient(), "PNG"), "g.png")
    with pytest.raises(ValueError):
        out.rgb[0, 0, 0] = 1
    other = out.rgb.copy()
    assert images.pixel_hash(other) == images.pixel_hash(out.rgb)
    other[0, 0, 0] ^= 1
    assert images.pixel_hash(other) != images.pixel_hash(out.rgb)
