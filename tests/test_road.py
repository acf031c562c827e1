"""ROAD (core/metrics/road.py): the imputation on images whose answer is known, the pixel counts, and the whole
metric against pytorch-grad-cam's on the same Lite0 weights and pixels (fixture from tools/reference_road.py)."""
from pathlib import Path

import numpy as np
import pytest

from core.metrics import evaluation, imputation, road

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "road"


def test_imputation_reproduces_a_plane_and_a_constant_inside_the_image():
    """The 8-neighbour weights are symmetric, so a linear ramp is its own weighted neighbour mean away from the
    border: a hole inside the image is filled exactly (no noise; to the solver's tolerance, 1e-4 of the values'
    range at every pixel: 0.009 of values up to 215 measured here); a constant image stays constant everywhere."""
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float64)
    ramp = np.stack([3 * yy + 2 * xx, 100 - yy, 0.5 * xx], axis=-1)
    kept = np.ones((40, 50), bool)
    kept[5:30, 8:45] = False
    kept[33, 3] = False
    got = imputation.impute(ramp, kept, noise=0.0)
    np.testing.assert_allclose(got, ramp, atol=0.03)
    flat = np.full((20, 20, 3), 77.0)
    hole = np.random.default_rng(0).random((20, 20)) < 0.7
    hole[0, 0] = False
    np.testing.assert_allclose(imputation.impute(flat, ~hole, noise=0.0), flat, atol=1e-4)


def test_imputation_noise_is_the_given_sigma_on_the_removed_pixels_only():
    img = np.full((64, 64, 3), 100.0)
    kept = np.ones((64, 64), bool)
    kept[10:50, 10:50] = False
    got = imputation.impute(img, kept, noise=road.NOISE, rng=np.random.default_rng(3))
    assert np.array_equal(got[kept], img[kept].astype(np.float32))
    dev = got[~kept] - 100.0
    assert abs(dev.std() - road.NOISE) < 0.05 and abs(dev.mean()) < 0.05
    with pytest.raises(ValueError, match="at least one kept pixel"):
        imputation.impute(img, np.zeros((64, 64), bool), noise=0.0)


def exact_imputation(image, kept):
    """The removed pixels' linear system built from the definition (each removed pixel = its in-image
    neighbours' weighted sum / their summed weights) and solved exactly: scipy's sparse LU, float64."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    h, w, ch = image.shape
    unknown = np.flatnonzero(~kept.ravel())
    index = np.full(h * w, -1)
    index[unknown] = np.arange(unknown.size)
    r, c = np.divmod(unknown, w)
    flat = image.reshape(-1, ch).astype(np.float64)
    own, b = np.zeros(unknown.size), np.zeros((unknown.size, ch))
    rows, cols, vals = [np.arange(unknown.size)], [np.arange(unknown.size)], [own]
    for (dy, dx), weight in imputation.NEIGHBOURS:
        inside = np.flatnonzero((r + dy >= 0) & (r + dy < h) & (c + dx >= 0) & (c + dx < w))
        j = (r + dy)[inside] * w + (c + dx)[inside]
        own[inside] += weight
        known = kept.ravel()[j]
        b[inside[known]] += weight * flat[j[known]]
        rows.append(inside[~known])
        cols.append(index[j[~known]])
        vals.append(np.full(int((~known).sum()), -weight))
    a = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(unknown.size, unknown.size))
    out = flat.copy()
    out[unknown] = spsolve(a, b)
    return out.reshape(h, w, ch)


def test_the_multigrid_solution_equals_the_exact_one_to_1e_3_of_the_models_units(peer, monkeypatch):
    """The sample photo with Grad-CAM's map (90 % removed: one large hole), its tied version (zeros below the
    median), the edges map and a random one (scattered holes): the solver's values are the exact solution's to
    1e-3 of the model's input units (0.128 levels; measured at most 0.04 levels over 4 photos, 5 maps and all
    18 masks each), in a few preconditioned iterations (4–6 measured here)."""
    from core.imaging import render
    from core.metrics import baselines

    data, _ = peer
    photo = data["photo"].astype(np.float32)
    gradcam = render.upsample(data["map_gradcam"], 224, 224)
    cycles, vcycle = [], imputation.Multigrid.vcycle

    def counted(self, r, level=0):
        cycles.append(level)
        return vcycle(self, r, level)

    monkeypatch.setattr(imputation.Multigrid, "vcycle", counted)
    for cam, p, morf in [(gradcam, 10, True), (np.maximum(gradcam - np.median(gradcam), 0), 30, False),
                         (render.upsample(data["map_edges"], 224, 224), 50, True),
                         (baselines.random_map(224, 224, 3), 50, False)]:
        kept = road.kept_mask(cam, p, morf)
        cycles.clear()
        got = imputation.impute(photo, kept, noise=0.0)
        assert np.abs(got - exact_imputation(photo, kept)).max() < 1e-3 * 128
        assert np.array_equal(got[kept], photo[kept]) and cycles.count(0) <= 9  # the first + one per iteration


def test_a_batch_solved_from_the_previous_percentile_equals_each_image_solved_alone(peer):
    """imputed_batch starts each image from the previous percentile's solution; impute from each channel's
    mean. Both are the same system's solution (to the tolerance) with the same noise."""
    from core.imaging import render

    data, _ = peer
    photo, cam, ps = data["photo"].astype(np.float32), data["map_edges"], (30, 70, 50)
    batch, removed = road.imputed_batch(photo, cam, ps, seed=4)
    assert batch.shape == (6, 224, 224, 3) and batch.dtype == np.float32
    for k, (morf, p) in enumerate([(True, p) for p in ps] + [(False, p) for p in ps]):
        kept = road.kept_mask(render.upsample(cam, 224, 224), p, morf)
        alone = imputation.impute(photo, kept, road.NOISE, road.noise_rng(4, morf, p))
        assert np.abs(batch[k] - alone).max() < 0.05 and removed[ps.index(p)] == pytest.approx(1 - p / 100, abs=1e-4)


def test_kept_counts_and_masks():
    cam = np.arange(100, dtype=np.float32).reshape(10, 10)
    for p in road.PERCENTILES:
        k = road.kept_count(100, p)
        assert k == int(np.ceil(99 * p / 100))
        morf = road.kept_mask(cam, p, True)
        lerf = road.kept_mask(cam, p, False)
        assert morf.sum() == lerf.sum() == k
        assert cam[morf].max() < cam[~morf].min() and cam[lerf].min() > cam[~lerf].max()
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        road.check_percentiles([0, 50])


def test_road_batch_and_the_cli_field(lite_engine, photos):
    rgb = photos["cat_and_dog.jpg"].rgb
    res = lite_engine.run(rgb)
    cam = evaluation.raw_map(lite_engine, rgb, res, "gradcam", lite_engine.spec.default_layer)
    seen = []
    r = road.road(lite_engine, rgb, cam, res.class_index, percentiles=(30, 70), progress=seen.append)
    assert r.morf.shape == r.lerf.shape == (2,) and seen[-1] == 1.0 and len(seen) == 5
    np.testing.assert_allclose(r.removed, [0.7, 0.3], atol=1e-4)
    assert r.original == pytest.approx(float(res.probs[res.class_index]), abs=1e-4)
    assert r.combined == pytest.approx((r.lerf.mean() - r.morf.mean()) / 2)
    # removing the 70 % Grad-CAM ranks first leaves the cat unrecognisable; keeping its 70 % keeps most of p
    assert r.morf[0] < -0.3 and r.lerf[1] > r.morf[0] + 0.3


@pytest.fixture(scope="module")
def peer():
    return np.load(FIXTURE / "input.npz"), np.load(FIXTURE / "reference.npz")


def their_kept(ref, name, kind):
    bits = np.unpackbits(ref[f"{name}_{kind}_kept"], axis=1)[:, :224 * 224]
    return bits.reshape(-1, 224, 224).astype(bool)


@pytest.mark.parametrize("name", ["gradcam", "edges"])
def test_imputed_images_equal_pytorch_grad_cams_for_the_same_mask(peer, name):
    """The imputation alone: their mask, the same noise draws, compared in the model input's units."""
    data, ref = peer
    photo = data["photo"].astype(np.float32)
    pick, seed = ref["samples"], int(data["seed"])
    worst = 0.0
    for kind in ("morf", "lerf"):
        kept = their_kept(ref, name, kind)
        for i, p in enumerate(ref["percentiles"]):
            ours = imputation.impute(photo, kept[i], road.NOISE, road.noise_rng(seed, kind == "morf", p))
            unit = ((ours - 127.0) / 128.0).reshape(-1, 3)
            worst = max(worst, np.abs(unit[pick] - ref[f"{name}_{kind}_values"][i]).max(),
                        np.abs(unit.mean(0) - ref[f"{name}_{kind}_mean"][i]).max(),
                        np.abs(unit.std(0) - ref[f"{name}_{kind}_std"][i]).max())
    assert worst < 1e-3


@pytest.mark.parametrize("name", ["gradcam", "edges"])
def test_road_equals_pytorch_grad_cams_where_the_masks_agree(peer, lite_engine, name):
    """Our masks equal theirs wherever theirs keeps the nominal count (no tie at the threshold), and there our
    MoRF/LeRF differences (our Keras Lite0) equal theirs (their torch Lite0) to 1e-3."""
    data, ref = peer
    cam = data[f"map_{name}"]
    r = road.road(lite_engine, data["photo"], cam, int(data["class_index"]), seed=int(data["seed"]))
    assert r.original == pytest.approx(float(ref["original"]), abs=1e-3)
    compared = 0
    for kind in ("morf", "lerf"):
        theirs = their_kept(ref, name, kind)
        for i, p in enumerate(ref["percentiles"]):
            ours = road.kept_mask(cam, p, kind == "morf")
            if theirs[i].sum() != road.kept_count(cam.size, p):
                continue  # ties at their threshold: a definitional difference (docs/measuring.md)
            assert np.array_equal(ours, theirs[i]), (kind, p)
            assert getattr(r, kind)[i] == pytest.approx(float(ref[f"{name}_{kind}"][i]), abs=1e-3), (kind, p)
            compared += 1
    assert compared == EXPECTED_COMPARED[name]
    if compared == 2 * len(ref["percentiles"]):  # every mask agrees: ROADCombined too
        theirs = (ref[f"{name}_lerf"].mean() - ref[f"{name}_morf"].mean()) / 2
        assert r.combined == pytest.approx(float(theirs), abs=1e-3)


# measured: the edges map has no ties; Grad-CAM's 7×7 map upsampled bilinearly has equal values at 4 MoRF
# thresholds and, in pytorch-grad-cam's 1 − map (float32), at 5 LeRF ones
EXPECTED_COMPARED = {"gradcam": 9, "edges": 18}


def test_evaluate_takes_road_and_edges_on_the_command_line(eval_set, capsys):
    import json

    from core.cli.metric_commands import main

    assert main(["evaluate", str(eval_set / "images"), "--limit", "1", "--methods", "gradcam,edges",
                 "--metrics", "road", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for m in ("gradcam", "edges"):
        r = out["methods"][m]
        assert set(r) == {"road_morf", "road_lerf", "road"}
        assert -1 <= r["road_morf"] <= 0.5 and r["road"] == pytest.approx((r["road_lerf"] - r["road_morf"]) / 2)


def test_the_passes_run_in_batches_as_images_are_ready_and_equal_one_batched_call(lite_engine, photos, monkeypatch):
    """road() sends the photo and the imputed images in batches of 8 while the next are imputed (the passes on a
    helper thread): the figures equal those of all 19 images in one call; a failing pass reaches the caller."""
    from core.metrics.faithfulness import model_photo

    rgb = photos["cat_and_dog.jpg"].rgb
    res = lite_engine.run(rgb)
    cam = evaluation.raw_map(lite_engine, rgb, res, "gradcam", lite_engine.spec.default_layer)
    sizes, real = [], lite_engine.predict
    monkeypatch.setattr(lite_engine, "predict", lambda batch: (sizes.append(len(batch)), real(batch))[1])
    r = road.road(lite_engine, rgb, cam, res.class_index, seed=2)
    assert sorted(sizes) == [3, 8, 8]  # the last batch runs here while the helper may still run the one before it
    photo = model_photo(lite_engine, rgb)
    batch, _ = road.imputed_batch(photo, cam, seed=2)
    probs = real(lite_engine.spec.preprocess(np.concatenate([photo[None], batch])))[:, res.class_index]
    np.testing.assert_allclose(np.concatenate([r.morf, r.lerf]), probs[1:] - probs[0], atol=1e-5)

    def failing(batch):
        raise RuntimeError("the pass failed")
    monkeypatch.setattr(lite_engine, "predict", failing)
    with pytest.raises(RuntimeError, match="the pass failed"):
        road.road(lite_engine, rgb, cam, res.class_index)
