"""The Keras EfficientNet-Lite0 port against the independent PyTorch implementation (stored fixture)."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from core.cam import methods
from core.models import lite
from core.models.torchpickle import CheckpointError, load_state_dict

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "lite0_reference.json").read_text())
CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("name", sorted(FIXTURE))
def test_logits_match_pytorch(lite_engine, photos, name):
    ref = FIXTURE[name]
    res = lite_engine.run(photos[name].rgb)
    ours = res.logits[ref["top_index"]]
    np.testing.assert_allclose(ours, ref["top_logit"], atol=2e-3)
    assert res.class_index == ref["class_index"]
    assert [i for i, _ in res.top_k(5)] == ref["top_index"][:5]
    assert abs(res.logits.sum() - ref["logit_sum"]) < 0.05
    assert abs(np.linalg.norm(res.logits) - ref["logit_l2"]) < 1e-2


@pytest.mark.parametrize("name", sorted(FIXTURE))
def test_gradcam_head_matches_pytorch_autograd(lite_engine, photos, name):
    ref = FIXTURE[name]
    res = lite_engine.run(photos[name].rgb, ref["class_index"])
    for method, key in (("gradcam", "gradcam_head"), ("counterfactual", "counterfactual_head")):
        cam = methods.compute(method, res, "top_activation")
        expect = np.array(ref[key])
        assert cam.shape == expect.shape == (7, 7)
        scale = max(expect.max(), 1e-9)
        np.testing.assert_allclose(cam / scale, expect / scale, atol=2e-3)


def test_cat_photo_has_a_cat_class_in_top5(lite_engine, photos):
    top5 = {i for i, _ in lite_engine.run(photos["cat.jpg"].rgb).top_k(5)}
    assert top5 & CATS


def test_every_sample_prediction_is_plausible(lite_engine, photos):
    expected = {"dog.jpg": {235}, "coffee.jpg": {967, 968, 504}, "cow.jpg": {345, 346, 347}}
    for name, classes in expected.items():
        assert {i for i, _ in lite_engine.run(photos[name].rgb).top_k(3)} & classes, name


def test_explainable_layers_early_to_late(lite_engine):
    layers = lite_engine.layers
    assert layers[0] == "stem_activation" and layers[-1] == "top_activation" and len(layers) == 18
    sides = [lite_engine.layer_shape(n)[0] for n in layers]
    assert sides == sorted(sides, reverse=True) and sides[0] == 112 and sides[-1] == 7
    assert lite_engine.layer_shape("top_activation") == (7, 7, 1280)
    assert lite_engine.layer_shape("block5c_add") == (14, 14, 112)


def test_converted_weights_are_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADCAM_STUDIO_CACHE", str(tmp_path))
    a = lite.load()
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    b = lite.load()  # from the cache
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    files[0].write_bytes(b"corrupt")  # a damaged cache is rebuilt, not fatal
    c = lite.load()
    np.testing.assert_array_equal(c.get_weights()[0], a.get_weights()[0])


def test_checkpoint_reader_matches_known_values():
    sd = load_state_dict(lite.torch_weights_path())
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.weight"].dtype == np.float32
    # values read by torch.load in the reference venv
    assert abs(float(sd["_blocks.5._depthwise_conv.weight"].sum()) - 95.10330200195312) < 1e-3
    assert abs(float(sd["_fc.weight"][3, :10].sum()) - 0.03486791253089905) < 1e-6


def test_checkpoint_reader_refuses_foreign_files(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(pickle.dumps("hello"))
    with pytest.raises(CheckpointError):
        load_state_dict(bad)
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError):
        load_state_dict(bad)


def test_checkpoint_reader_refuses_code_execution(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump(0x1950A86A20F9469CFC6C, fh)
        pickle.dump(1001, fh)
        pickle.dump({"little_endian": True}, fh)
        pickle.dump(Evil(), fh)
    with pytest.raises(CheckpointError, match="unexpected object"):
        load_state_dict(path)
