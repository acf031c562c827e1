"""Own-class tasks built from the shared ImageNet validation images by class index (never copied into the
project), for testing the head-only default on class sets it was not tuned on: 2 to 5 classes, 10 to 60 images
a class, balanced and not."""
from __future__ import annotations

import numpy as np


def _ids(*parts) -> set[int]:
    out: set[int] = set()
    for p in parts:
        out |= set(range(p[0], p[1] + 1)) if isinstance(p, tuple) else {p}
    return out


GROUPS = {
    "dog": _ids((151, 268)),
    "bird": _ids((7, 24), (80, 100), (127, 146)),
    "reptile": _ids((33, 68)),
    "insect": _ids((300, 326)),
    "food": _ids((924, 969)),
    "fish": _ids((0, 6), (389, 397)),
    "other invertebrate": _ids((69, 79), (107, 126)),
    "other mammal": _ids((269, 299), (330, 388)),
}

# name → (classes, at most this many images a class: a random, seeded subset of a larger group)
TASKS = {
    "dog / bird / other": (["dog", "bird", "other"], 60),
    "reptile / insect / food / fish / invertebrate": (["reptile", "insect", "food", "fish", "other invertebrate"], 60),
    "dog / other mammal": (["dog", "other mammal"], 60),
    "bird / invertebrate / reptile / insect / dog": (["bird", "other invertebrate", "reptile", "insect", "dog"], 40),
    "animal / object": (["animal", "object"], 60),
}


def members(name: str, imagenet: np.ndarray) -> np.ndarray:
    """Indices of the images of one own class: a group above, 'animal' (ImageNet 0–397), 'object' (398–999)
    or 'other' (neither dog nor bird)."""
    if name == "animal":
        return np.flatnonzero(imagenet < 398)
    if name == "object":
        return np.flatnonzero(imagenet >= 398)
    if name == "other":
        taken = GROUPS["dog"] | GROUPS["bird"]
        return np.flatnonzero([i not in taken for i in imagenet])
    return np.flatnonzero(np.isin(imagenet, sorted(GROUPS[name])))


def task(name: str, imagenet: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(image indices, own labels, class names) of a task; a class over its cap keeps a seeded random subset."""
    classes, cap = TASKS[name]
    rng = np.random.default_rng(seed)
    idx, labels = [], []
    for c, cname in enumerate(classes):
        m = members(cname, imagenet)
        m = np.sort(rng.permutation(m)[:cap])
        idx.append(m)
        labels.append(np.full(len(m), c))
    return np.concatenate(idx), np.concatenate(labels), classes


def halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random stratified split into training and test halves (the odd image of a class to the test half)."""
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in np.unique(labels):
        i = rng.permutation(np.flatnonzero(labels == c))
        tr += list(i[:len(i) // 2])
        te += list(i[len(i) // 2:])
    return np.sort(tr), np.sort(te)
