"""Masks → photo pixels, fills, and what occlusion does to real predictions and to a trained toy model."""
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.cam import methods, occlusion
from core.imaging import render
from core.cam.occlusion import MaskError, apply_fill, canvas_mask, load_mask, resample_mask
from tests.test_gradcam_properties import CAT_DOG_SEAM


def canvas_rgba(w, h, draw):
    """What the canvas returns: transparent RGBA with the painted shapes (alpha ~0.45)."""
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw(ImageDraw.Draw(im))
    return np.asarray(im)


PAINT = (255, 0, 200, 115)


@pytest.mark.parametrize("photo_w,photo_h,canvas_w", [(940, 400, 640), (400, 940, 400), (300, 300, 300),
                                                      (4000, 1000, 640), (97, 61, 97)])
def test_rectangle_maps_to_the_same_fraction_of_the_photo(photo_w, photo_h, canvas_w):
    canvas_h = round(canvas_w * photo_h / photo_w)
    x0, x1 = round(canvas_w * 0.25), round(canvas_w * 0.75)
    y0, y1 = round(canvas_h * 0.5), canvas_h
    rgba = canvas_rgba(canvas_w, canvas_h, lambda d: d.rectangle([x0, y0, x1 - 1, y1 - 1], fill=PAINT))
    m = canvas_mask(rgba, photo_w, photo_h)
    assert m.shape == (photo_h, photo_w)
    ys, xs = np.nonzero(m)
    # edges land within one canvas pixel of where they were drawn, in photo pixels
    tol_x, tol_y = photo_w / canvas_w + 1, photo_h / canvas_h + 1
    assert abs(xs.min() - x0 * photo_w / canvas_w) <= tol_x and abs(xs.max() + 1 - x1 * photo_w / canvas_w) <= tol_x
    assert abs(ys.min() - y0 * photo_h / canvas_h) <= tol_y and ys.max() == photo_h - 1
    assert m.mean() == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize("shape", ["rect", "circle", "ellipse", "polygon", "brush", "line", "rotated"])
def test_every_shape_the_canvas_draws(shape):
    w, h = 320, 200

    def draw(d):
        if shape == "rect":
            d.rectangle([40, 40, 120, 100], fill=PAINT)
        elif shape == "circle":
            d.ellipse([100, 50, 200, 150], fill=PAINT)
        elif shape == "ellipse":
            d.ellipse([20, 80, 300, 120], fill=PAINT)
        elif shape == "polygon":
            d.polygon([(10, 10), (200, 30), (120, 180)], fill=PAINT)
        elif shape == "brush":
            d.line([(10, 100), (80, 60), (160, 140), (300, 90)], fill=PAINT, width=24, joint="curve")
        elif shape == "line":
            d.line([(0, 0), (319, 199)], fill=PAINT, width=6)
        else:
            d.polygon([(160, 20), (260, 100), (160, 180), (60, 100)], fill=PAINT)
    rgba = canvas_rgba(w, h, draw)
    painted = rgba[..., 3] >= 48
    for scale in (1, 3):
        m = canvas_mask(rgba, w * scale, h * scale)
        assert m.sum() == painted.sum() * scale * scale  # exact: each canvas pixel becomes scale² photo pixels
        assert (m[::scale, ::scale] == painted).all()


def test_empty_and_full_masks():
    assert not canvas_mask(None, 50, 40).any()
    assert not canvas_mask(np.zeros((20, 25, 4), np.uint8), 50, 40).any()
    full = np.zeros((20, 25, 4), np.uint8)
    full[..., 3] = 255
    assert canvas_mask(full, 50, 40).all()
    photo = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert (apply_fill(photo, np.zeros((40, 50), bool), "gray") == photo).all()
    assert (apply_fill(photo, np.ones((40, 50), bool), "black") == 0).all()


def test_faint_antialiased_edges_do_not_count():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 3] = 20
    assert not canvas_mask(rgba, 10, 10).any()


def test_resample_is_by_pixel_centres():
    m = np.array([[1, 0], [0, 0]], bool)
    up = resample_mask(m, 4, 4)
    assert up[:2, :2].all() and up.sum() == 4
    down = resample_mask(np.kron(np.eye(2, dtype=bool), np.ones((3, 3), bool)), 2, 2)
    assert (down == np.eye(2, dtype=bool)).all()
    with pytest.raises(MaskError):
        resample_mask(np.zeros((0, 3), bool), 4, 4)


def test_fills():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    m = np.zeros((60, 80), bool)
    m[10:30, 20:50] = True
    for fill in occlusion.FILLS:
        out = apply_fill(photo, m, fill)
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert (out[~m] == photo[~m]).all(), fill  # outside the mask nothing changes
        assert not (out[m] == photo[m]).all(), fill
    assert (apply_fill(photo, m, "gray")[m] == 128).all()
    mean = apply_fill(photo, m, "mean")[m]
    assert np.allclose(mean, np.rint(photo.reshape(-1, 3).mean(0)))
    blurred = apply_fill(photo, m, "blur")[m].astype(float)
    assert blurred.std() < photo[m].astype(float).std() / 2  # detail removed
    assert (apply_fill(photo, m, "noise", seed=3) == apply_fill(photo, m, "noise", seed=3)).all()
    with pytest.raises(MaskError, match="unknown fill"):
        apply_fill(photo, m, "pink")
    with pytest.raises(MaskError, match="does not match"):
        apply_fill(photo, m[:10], "gray")


def test_mask_files_any_size_and_format():
    def png(im):
        b = io.BytesIO()
        im.save(b, "PNG")
        return b.getvalue()
    small = Image.new("L", (10, 4), 0)
    small.paste(255, (5, 0, 10, 4))
    m = load_mask(png(small), 940, 400)
    assert m.shape == (400, 940) and m[:, 470:].all() and not m[:, :470].any()
    rgba = Image.new("RGBA", (10, 10), (255, 255, 255, 0))  # transparent white: not occluded
    rgba.paste((0, 0, 0, 255), (0, 0, 5, 10))  # opaque black: zero, not occluded
    rgba.paste((255, 0, 0, 255), (5, 0, 10, 10))
    m = load_mask(png(rgba), 20, 20)
    assert m[:, 10:].all() and not m[:, :10].any()
    with pytest.raises(MaskError, match="not an image"):
        load_mask(b"nope", 10, 10)


def test_top_fraction_mask():
    cam = np.arange(100, dtype=float).reshape(10, 10)
    assert occlusion.top_fraction_mask(cam, 10).sum() == 10
    assert occlusion.top_fraction_mask(np.zeros((5, 5)), 50).sum() == 0


def test_occluding_the_dog_lowers_the_dog_and_keeps_the_cat(lite_engine, photos):
    img = photos["cat_and_dog.jpg"]
    w, h = img.size
    mask = np.zeros((h, w), bool)
    mask[:, CAT_DOG_SEAM:] = True
    before = lite_engine.run(img.rgb).probs
    cat = max(range(281, 286), key=lambda i: before[i])
    for fill in occlusion.FILLS:
        after = lite_engine.run(apply_fill(img.rgb, mask, fill)).probs
        assert after[235] < 0.5 * before[235], fill
        assert after[cat] >= before[cat] * 0.95, fill


@pytest.mark.parametrize("name", ["dog.jpg", "coffee.jpg", "cat_and_dog.jpg", "cow.jpg"])
def test_removing_what_gradcam_points_at_hurts_keeping_it_does_not(lite_engine, photos, name):
    # (Not on the Chelsea close-up: the cat fills the frame, so 30 % of it removed still leaves a cat.)
    img = photos[name]
    res = lite_engine.run(img.rgb)
    c = res.class_index
    cam = render.upsample(methods.gradcam(res.acts["top_activation"], res.grads["top_activation"]), *img.size)
    hot = occlusion.top_fraction_mask(cam, 30)
    removed = lite_engine.run(apply_fill(img.rgb, hot, "gray")).probs[c]
    kept = lite_engine.run(apply_fill(img.rgb, ~hot, "gray")).probs[c]
    assert removed < 0.25 * res.probs[c]
    assert kept > 0.6 * res.probs[c] and kept > 5 * removed  # measured: 0.70–1.6× the original


def test_sensitivity_map_of_a_synthetic_image_peaks_on_the_object():
    from tests.toys import train_shape_model

    engine, held_back = train_shape_model(seed=2)
    hits = 0
    for rgb, cls, mask in held_back[:20]:
        smap, passes = occlusion.sensitivity(engine, rgb, cls, patch=12, stride=4, batch=64)
        n = len(occlusion.patch_positions(64, 12, 4)) ** 2
        assert passes == -(-n // 64)
        y, x = np.unravel_index(np.argmax(smap), smap.shape)
        ys, xs = np.nonzero(mask)
        hits += ys.min() - 6 <= y <= ys.max() + 6 and xs.min() - 6 <= x <= xs.max() + 6
    assert hits >= 18, f"peak on the object in only {hits}/20"


def test_sensitivity_on_cat_and_dog_supports_the_cat_side(lite_engine, photos):
    img = photos["cat_and_dog.jpg"]
    cat = 285
    seen = []
    smap, passes = occlusion.sensitivity(lite_engine, img.rgb, cat, 32, 16, progress=seen.append)
    assert passes == 11 and seen[-1] == 1.0  # 13×13 positions in batches of 16
    seam = int(224 * CAT_DOG_SEAM / img.size[0])
    pos = np.maximum(smap, 0)
    assert pos[:, :seam].sum() > 2 * pos[:, seam:].sum()
