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
