import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ASSETS = ROOT / "assets"


@pytest.fixture(scope="session")
def lite_engine():
    """The offline default with its real ImageNet weights (shared by the whole session)."""
    from core import models
    from core.engine import Engine

    spec = models.get_spec("efficientnet_lite0")
    return Engine(spec, *models.load_inference(spec.name))


@pytest.fixture(scope="session")
def photos():
    from core.imaging import images

    return {p.name: images.load_path(p) for p in sorted(ASSETS.glob("*.jpg"))}


SHARED = ROOT.parent / "shared" / "data" / "imagenet-val-loc"


def own_class(index: int) -> int:
    """dog (0) / bird (1) / everything else (2), by ImageNet class index: the own-classes task of the tests."""
    if 151 <= index <= 268:
        return 0
    if 7 <= index <= 24 or 80 <= index <= 100 or 127 <= index <= 146:
        return 1
    return 2


@pytest.fixture(scope="session")
def dog_bird_other():
    """The shared 400 ImageNet validation images (never copied into the project) as three own classes:
    dict with thumbs (the Train page's thumbnails), labels, classes, files, imagenet (each image's ImageNet class
    index), boxes (file → boxes in the original's pixels) and sizes (file → the original's (width, height))."""
    import numpy as np
    from PIL import Image

    from core.metrics import read_boxes
    from core.training.data import example_from_bytes

    assert (SHARED / "annotations.csv").exists(), f"the shared evaluation set is missing: {SHARED}"
    boxes = read_boxes(SHARED / "annotations.csv")
    files = sorted(boxes)
    thumbs = [example_from_bytes((SHARED / "images" / f).read_bytes(), f).thumb for f in files]
    labels = np.array([own_class(boxes[f][0]) for f in files])
    return {"thumbs": thumbs, "labels": labels, "classes": ["dog", "bird", "other"], "files": files,
            "imagenet": np.array([boxes[f][0] for f in files]),
            "boxes": {f: boxes[f][1] for f in files}, "sizes": {f: Image.open(SHARED / "images" / f).size for f in files}}
