"""Localisation, faithfulness arithmetic, baselines and similarity on inputs with known answers."""
from types import SimpleNamespace

import numpy as np
import pytest

from core.metrics import baselines, faithfulness, localisation, similarity
from core.metrics import boxes as bx


def test_read_boxes_skips_bad_rows_one_line_each(tmp_path):
    p = tmp_path / "boxes.csv"
    p.write_text("file,class_index,x0,y0,x1,y1\na.jpg,1,0,0,10,10\na.jpg,1,5,5,20,20\nb.jpg,x,0,0,1,1\n"
                 "c.jpg,2,5,5,1,1\na.jpg,3,0,0,4,4\n,4,0,0,2,2\n")
    errors = []
    boxes = bx.read_boxes(p, errors.append)
    assert boxes == {"a.jpg": (1, [(0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 20.0, 20.0)])}
    assert [e.split(":")[0] for e in errors] == ["boxes.csv line 4", "boxes.csv line 5", "boxes.csv line 6",
                                                 "boxes.csv line 7"]
    with pytest.raises(ValueError, match="line 4"):
        bx.read_boxes(p)
    (tmp_path / "cols.csv").write_text("file,class\n")
    with pytest.raises(ValueError, match="needs the columns"):
        bx.read_boxes(tmp_path / "cols.csv", errors.append)


def test_localisation_on_a_map_with_a_known_blob():
    cam = np.zeros((100, 200))
    cam[20:40, 50:90] = 1.0  # the box (50, 20, 90, 40)
    cam[70:72, 150:152] = 0.5  # a smaller, weaker second region
    box = (50, 20, 90, 40)
    assert localisation.cam_box(cam, 0.2) == box
    assert localisation.best_iou(cam, [box, (0, 0, 5, 5)]) == 1.0
    assert localisation.best_iou(cam, [(50, 20, 70, 40)]) == pytest.approx(0.5)
    assert localisation.best_iou(np.zeros((10, 10)), [box]) == 0.0
    t, ious = localisation.iou_curve(cam, [box])
    assert len(t) == 19 and t[0] == 0.05 and t[-1] == 0.95 and np.all(ious == 1.0)
    assert localisation.pointing(cam, [box]) and not localisation.pointing(cam, [(0, 0, 40, 40)])
    assert not localisation.pointing(np.zeros((10, 10)), [(0, 0, 10, 10)])  # an empty map points nowhere
    assert localisation.energy(cam, [box]) == pytest.approx(800 / 802)
    assert localisation.energy(cam, [(150, 70, 152, 72)]) == pytest.approx(2 / 802)
    assert localisation.energy(-cam, [box]) == 0.0
    m = localisation.boxes_mask([(0.4, 0, 2.6, 1)], 4, 2)  # pixel centres 0.5, 1.5, 2.5 inside; 3.5 not
    assert m.tolist() == [[True, True, True, False], [False, False, False, False]]


def test_baselines():
    c = baselines.centre_map(9, 15)
    assert c.shape == (9, 15) and c[4, 7] == c.max() == 1.0 and np.allclose(c, c[::-1, ::-1])
    assert c[4, 7 + 15 // 4] == pytest.approx(np.exp(-0.5 * ((15 // 4) / 15 / 0.25) ** 2))
    r = baselines.random_map(7, 7, 3)
    assert np.array_equal(r, baselines.random_map(7, 7, 3)) and not np.array_equal(r, baselines.random_map(7, 7, 4))
    assert baselines.seed_for("a.jpg") == baselines.seed_for("a.jpg") != baselines.seed_for("b.jpg")
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.baseline("middle", 3, 3)


class RegionModel:
    """A stand-in engine whose class-1 probability is the share of the top-left 4×4 pixels still exactly
    white (255): deleting them in the map's order must follow a known curve."""

    spec = SimpleNamespace(input_size=8, preprocess=lambda x: np.asarray(x, np.float32))

    def predict(self, batch):
        p = (batch[:, :4, :4, :] == 255).all(axis=-1).mean(axis=(1, 2))
        return np.stack([1 - p, p], axis=1)


def test_deletion_and_insertion_follow_the_map_order():
    eng = RegionModel()
    rgb = np.full((8, 8, 3), 255, np.uint8)
    true = np.zeros((8, 8))
    true[:4, :4] = 1.0
    d = faithfulness.deletion(eng, rgb, true, 1, steps=4)  # 16 pixels a step: the whole region in step 1
    assert d.fractions.tolist() == [0, 0.25, 0.5, 0.75, 1] and d.probs.tolist() == [1, 0, 0, 0, 0]
    assert d.auc == pytest.approx(0.125)
    worst = faithfulness.deletion(eng, rgb, 1 - true, 1, steps=4)  # the region last
    assert worst.probs.tolist() == [1, 1, 1, 1, 0] and worst.auc == pytest.approx(0.875)
    i = faithfulness.insertion(eng, rgb, true, 1, steps=4, start="gray")
    assert i.probs.tolist() == [0, 1, 1, 1, 1] and i.auc == pytest.approx(0.875)
    d2, i2 = faithfulness.curves(eng, rgb, true, 1, steps=4, start="gray")
    assert np.array_equal(d2.probs, d.probs) and np.array_equal(i2.probs, i.probs)
    assert faithfulness.step_counts(10, 3).tolist() == [0, 3, 7, 10]
    assert faithfulness.auc([0, 1]) == 0.5 and faithfulness.auc([1, 1, 1], [0, 0.2, 1]) == 1.0


def test_confidence_change_multiplies_the_photo_by_the_map():
    eng = RegionModel()
    rgb = np.full((8, 8, 3), 255, np.uint8)
    keep = np.zeros((8, 8))
    keep[:4, :4] = 2.0  # normalised to 1 inside the region, 0 outside: the region stays white
    drop, increase, y, o = faithfulness.confidence_change(eng, rgb, keep, 1)
    assert (drop, increase, y, o) == (0.0, False, 1.0, 1.0)
    half = keep.copy()
    half[:2, :4] = 1.0  # half the region dimmed to 0.5: no longer white
    drop, increase, _y, o = faithfulness.confidence_change(eng, rgb, half, 1)
    assert o == 0.5 and drop == 0.5 and not increase


def test_similarity_known_values():
    a = np.arange(400, dtype=float).reshape(20, 20)
    assert similarity.spearman(a, a ** 3) == pytest.approx(1.0)
    assert similarity.spearman(a, -a) == pytest.approx(-1.0)
    assert similarity.spearman(a, np.zeros_like(a)) == 0.0  # a constant map has no ranks: 0, never NaN
    u = similarity.unit(a)
    assert similarity.ssim(u, u) == pytest.approx(1.0)
    assert similarity.ssim(u, 1 - u) < 0
    with pytest.raises(ValueError, match="at least 11"):
        similarity.ssim(np.zeros((5, 5)), np.zeros((5, 5)))
