import numpy as np
import pytest

from core.imaging import render


def test_all_zero_map_stays_zero_without_nan():
    z = np.zeros((7, 7))
    assert render.is_empty(z)
    n = render.normalise(z)
    assert np.isfinite(n).all() and (n == 0).all()
    ov = render.overlay(np.full((30, 50, 3), 128, np.uint8), z, 0.5, "jet")
    assert ov.shape == (30, 50, 3)


def test_nan_and_negative_values_never_reach_the_screen():
    m = np.array([[np.nan, -1.0], [np.inf, 2.0]])
    n = render.normalise(m)
    assert np.isfinite(n).all() and n.max() == 1.0 and n.min() == 0.0


def test_overlay_keeps_the_photo_aspect_ratio():
    photo = np.zeros((300, 800, 3), np.uint8)
    base = render.display_base(photo, 400)
    assert base.shape == (150, 400, 3)
    cam = np.zeros((7, 7))
    cam[3, 6] = 1.0
    ov = render.overlay(base, cam, 1.0, "gray")
    assert ov.shape == base.shape
    assert ov[75, 390].mean() > ov[75, 10].mean()  # the hot cell is on the right, where it belongs


def test_shared_scale_and_alpha():
    photo = np.full((10, 10, 3), 100, np.uint8)
    cam = np.full((2, 2), 0.5)
    assert (render.overlay(photo, cam, 0.0) == photo).all()
    half = render.overlay(photo, cam, 1.0, "gray", vmax=1.0)
    full = render.overlay(photo, cam, 1.0, "gray")
    assert half.mean() < full.mean()


@pytest.mark.parametrize("name", render.COLORMAPS)
def test_colormaps(name):
    lut = render.lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8


def test_unknown_colormap():
    with pytest.raises(ValueError, match="unknown colormap"):
        render.lut("rainbowish")
