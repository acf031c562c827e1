"""Public datasets through tensorflow-datasets, offline: TFDS's own mock data stands in for the download."""
import socket

import pytest

from core.training import tfds_source
from core.training.data import THUMB_SIDE, DatasetError

import tensorflow_datasets as tfds  # noqa: E402 - in requirements-dev.txt


def closed_port() -> tuple[str, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1", s.getsockname()[1]  # closed again when the block ends: nothing answers


def test_offline_before_the_first_download_is_one_sentence(tmp_path):
    why = tfds_source.unavailable("cats_vs_dogs", tmp_path, probe=closed_port())
    assert why.startswith("Offline:") and "\n" not in why and why.count(".") == 1
    with pytest.raises(DatasetError, match="^Offline"):
        tfds_source.load("cats_vs_dogs", 3, data_dir=tmp_path, probe=closed_port())
    assert "unknown" in tfds_source.unavailable("imagenet2012").lower()


def test_a_sample_per_class_from_tfds_mock_data(tmp_path):
    listener = socket.socket()  # a host that answers: "online" for the probe made before a download
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    steps = []
    with listener, tfds.testing.mock_data(num_examples=40):
        ds = tfds_source.load("cats_vs_dogs", 3, data_dir=tmp_path, probe=listener.getsockname(),
                              progress=lambda f, t: steps.append((f, t)))
        with pytest.raises(DatasetError, match="choose 2"):
            tfds_source.load("stanford_dogs", 3, n_classes=40, data_dir=tmp_path, probe=listener.getsockname())
    assert list(ds.classes) == ["cat", "dog"] and ds.counts() == {"cat": 3, "dog": 3}
    assert all(e.thumb.dtype.name == "uint8" and max(e.thumb.shape[:2]) <= THUMB_SIDE
               for ex in ds.classes.values() for e in ex)
    assert all(e.source.startswith("cats_vs_dogs/") for ex in ds.classes.values() for e in ex)
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_tfds_label_names_become_readable_class_names():
    assert tfds_source.clean_label("n02085620-Chihuahua") == "Chihuahua"
    assert tfds_source.clean_label("n02113978-Mexican_hairless") == "Mexican hairless"
    assert tfds_source.clean_label("dog") == "dog"
