"""A model trained on a user's classes: a zoo backbone → global average pooling → Dense over their classes.

In memory a :class:`TrainedModel` keeps only what training changed (the head, plus the fine-tuned blocks),
so a session holding a head-only model holds kilobytes, not the backbone again; the engine pool builds
and serves it like any zoo model (its key is a hash of its content). On disk it is one standard Keras
``.keras`` file (``keras.saving.load_model`` opens it) with one more entry, ``gradcam_studio.json``: the
backbone, the class names in index order, and how it was trained.

Loading a file from a stranger never runs code and never reads more than a trained model needs (see
:func:`load_file`): Keras never builds anything from the file; the weights are read into a model built here.
"""
from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import safefile
from .registry import REGISTRY, ModelSpec, get_spec, load_model

HEAD_POOL, HEAD_LOGITS = "head_pool", "head_logits"
META = "gradcam_studio.json"
FORMAT = "gradcam-studio-trained/1"
WEIGHTS = "model.weights.h5"
MAX_FILE_BYTES = 400 * 2**20
MAX_META_BYTES = 2**20
MAX_CONFIG_BYTES = 2 * 2**20  # the largest backbone's config.json is 0.23 MB
TITLE_MAX = 60  # characters of a trained model's title (the sidebar shows it)
H5_OVERHEAD_BYTES = 4 * 2**20  # an HDF5 file's own records beyond the arrays (0.4-0.5 MB for the backbones here)
MIN_CLASSES, MAX_CLASSES = 2, 20


class ModelFileError(ValueError):
    """A file that is not a model trained here (or was changed); ``str(err)`` is one sentence."""


def trainable_backbones() -> list[str]:
    """Zoo models a head can be trained on: those whose last explainable layer feeds GAP → Dense."""
    return [n for n, s in REGISTRY.items() if s.gap_dense]


def build_classifier(backbone: str, n_classes: int, weights: str | None = "imagenet"):
    """The Keras classifier: ``backbone`` (ImageNet weights, or random with ``weights=None``) up to its last
    explainable layer, then global average pooling and a Dense layer of logits over ``n_classes``."""
    import keras

    spec = get_spec(backbone)
    base = load_model(backbone, weights)
    x = keras.layers.GlobalAveragePooling2D(name=HEAD_POOL)(base.get_layer(spec.default_layer).output)
    out = keras.layers.Dense(n_classes, name=HEAD_LOGITS)(x)
    return keras.Model(base.input, out, name=f"trained_{backbone}")


def _read_only(ws) -> tuple:
    out = []
    for w in ws:
        a = np.array(w, np.float32, copy=True)
        a.flags.writeable = False
        out.append(a)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained classifier over the user's classes.

    Attributes:
        title: the user's name for it (the sidebar shows it).
        backbone: the zoo model it was trained from.
        classes: class names in index order.
        weights: layer name → weights, for every layer whose weights differ from the backbone's ImageNet ones
            (always the Dense head ``head_logits``; the fine-tuned blocks too).
        info: how it was trained (mode, images, validation accuracy …), saved with it.
    """

    title: str
    backbone: str
    classes: tuple[str, ...]
    weights: dict = field(repr=False)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        # at most TITLE_MAX characters, as a file opened again reads it: the same title and name after save → load
        object.__setattr__(self, "title", str(self.title)[:TITLE_MAX])
        object.__setattr__(self, "weights", {k: _read_only(v) for k, v in self.weights.items()})
        object.__setattr__(self, "classes", tuple(self.classes))
        if HEAD_LOGITS not in self.weights:
            raise ModelFileError("A trained model needs its classifier head.")

    @cached_property
    def key(self) -> str:
        """A hash of everything the pool's engine shows of it (its title, backbone, classes and weights): two
        sessions that train the same weights under different names get an engine each, each named right."""
        h = hashlib.sha256(json.dumps([self.title, self.backbone, list(self.classes)]).encode())
        for name in sorted(self.weights):
            h.update(name.encode())
            for w in self.weights[name]:
                h.update(str(w.shape).encode())
                h.update(memoryview(np.ascontiguousarray(w)).cast("B"))
        return h.hexdigest()

    @property
    def name(self) -> str:
        """The pool's and the sidebar's key: ``trained-`` and 12 hex digits of :attr:`key`."""
        return f"trained-{self.key[:12]}"

    @cached_property
    def spec(self) -> ModelSpec:
        base = get_spec(self.backbone)
        return ModelSpec(
            name=self.name, title=self.title, input_size=base.input_size, layers=base.layers,
            weights_source=f"trained here on {len(self.classes)} classes from {base.title}",
            licence="yours (backbone: " + base.licence + ")", preprocess_mode=base.preprocess_mode,
            params_m=base.params_m, depth=base.depth, gap_dense=True, family="trained", classes=self.classes)

    @property
    def resident_mb(self) -> float:
        """The backbone's weights (the engine holds a full copy) plus the head."""
        return get_spec(self.backbone).resident_mb

    @property
    def head_only(self) -> bool:
        return set(self.weights) == {HEAD_LOGITS}

    def keras_model(self):
        """The Keras classifier with these weights (BatchNorm unfolded; the engine folds it)."""
        base_needed = not self._complete()
        model = build_classifier(self.backbone, len(self.classes), "imagenet" if base_needed else None)
        for name, ws in self.weights.items():
            model.get_layer(name).set_weights(list(ws))
        return model

    def _complete(self) -> bool:
        """Whether every layer with weights is stored (then the backbone's ImageNet weights are not needed)."""
        return len(self.weights) >= _layers_with_weights(self.backbone, len(self.classes))

    # --- files ------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The model as one ``.keras`` file (with ``gradcam_studio.json`` inside)."""
        model = self.keras_model()
        meta = {"format": FORMAT, "title": self.title, "backbone": self.backbone, "classes": list(self.classes),
                "input_size": self.spec.input_size, "layers": list(self.spec.layers), "info": self.info}
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "model.keras"
            model.save(path)
            with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr(META, json.dumps(meta, indent=1))
            return path.read_bytes()

    def save(self, path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path


def _layers_with_weights(backbone: str, n_classes: int) -> int:
    return sum(1 for l in _architecture(backbone, n_classes) if l[1])


def _architecture(backbone: str, n_classes: int) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(layer name, weight shapes) of every layer of the classifier, in order."""
    return _reference(backbone, n_classes).arch


@dataclass(frozen=True)
class _Reference:
    """What a file of this backbone and class count must hold, from the classifier built here."""

    layers: list  # (layer name, digest of its config.json entry), in order
    rest: str  # digest of config.json without its layers
    arch: list  # (layer name, weight shapes)
    datasets: dict  # path in model.weights.h5 → (layer name, shape, dtype)
    weight_bytes: int


_REF_CACHE: dict = {}


def _reference(backbone: str, n_classes: int) -> _Reference:
    """The classifier's config.json (as digests), layers and weights-file layout (built once per process)."""
    key = (backbone, n_classes)
    if key not in _REF_CACHE:
        import h5py
        import keras

        with safefile.quiet():
            model = build_classifier(backbone, n_classes, None)
            config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
            arch = [(l.name, [tuple(w.shape) for w in l.weights]) for l in model.layers]
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / "model.weights.h5"
                model.save_weights(path)
                del model
                found = safefile.h5_datasets(path, 100_000)
                with h5py.File(path, "r") as f:
                    datasets = {p: (str(f[p].parent.attrs.get("name", p)), ds.shape, ds.dtype)
                                for p, ds in found.items()}
        layers = config["config"].pop("layers")
        _REF_CACHE[key] = _Reference([(la["name"], safefile.digest(la, {})) for la in layers],
                                     safefile.digest(config, {}), arch, datasets,
                                     sum(ds.nbytes for ds in found.values()))
    return _REF_CACHE[key]


def load_file(source, name: str = "model file") -> TrainedModel:
    """A :class:`TrainedModel` from ``.keras`` bytes or a path, after checking that it is one, safely.

    Every check bounds what the next one reads (see :mod:`.safefile`): the ZIP's directory and entries are read
    within budgets; the description and config.json are parsed within 1 and 2 MB; every class the config names is
    allowed; the config is exactly the classifier its backbone and class names imply (before Keras builds
    anything); the weights entry is no larger than that classifier's weights, and every array in it has the shape
    and dtype the classifier needs, judged from the HDF5 metadata alone. Only then are the weights read, into a
    classifier built here.

    Raises:
        ModelFileError: anything else, in one sentence (not a ZIP, too large, no metadata, a Lambda or a
        custom object, an unknown backbone, the wrong input shape, class names that do not match …).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        size, opener = len(source), lambda: io.BytesIO(bytes(source))
    else:
        p, name = Path(source), Path(source).name
        if not p.is_file():
            raise ModelFileError(f"{name}: no such file.")
        size, opener = p.stat().st_size, lambda: open(p, "rb")
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB; a trained model is smaller.")
    try:
        with opener() as raw, safefile.open_zip(raw) as zf:
            return _load_zip(zf, name)
    except safefile.Unsafe as exc:
        raise ModelFileError(f"{name}: {exc}; refused.") from None
    except zipfile.BadZipFile:
        raise ModelFileError(f"{name} is not a model saved by Grad-CAM Studio's Train page (a .keras file with "
                             "the class names inside).") from None
    except OSError as exc:
        raise ModelFileError(f"{name} cannot be read ({exc.strerror or type(exc).__name__}).") from None


def _load_zip(zf: zipfile.ZipFile, name: str) -> TrainedModel:
    if not {"config.json", WEIGHTS, META} <= set(zf.namelist()):
        raise zipfile.BadZipFile("not ours")  # refused as not ours, like any other ZIP
    meta = safefile.read_json(zf, META, MAX_META_BYTES)
    backbone, classes = _check_meta(meta, name)
    config = safefile.read_json(zf, "config.json", MAX_CONFIG_BYTES)
    safefile.check_classes(config)
    ref = _reference(backbone, len(classes))
    _check_config(config, ref, backbone, len(classes), name)
    budget = ref.weight_bytes + H5_OVERHEAD_BYTES
    declared = zf.getinfo(WEIGHTS).file_size
    if declared > budget:
        raise ModelFileError(f"{name}: its weights ({safefile.mib(declared)}) are larger than "
                             f"{_what(backbone, len(classes))} needs ({safefile.mib(budget)}); refused.")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / WEIGHTS
        with open(path, "wb") as sink:
            safefile.read_member(zf, WEIGHTS, budget, sink)
        _check_weights(safefile.h5_datasets(path, 2 * len(ref.datasets) + 2 * len(ref.arch) + 16), ref,
                       backbone, len(classes), name)
        weights = _read_weights(path, backbone, len(classes), name)
    weights = _changed_only(backbone, weights)
    info = meta.get("info") if isinstance(meta.get("info"), dict) else {}
    return TrainedModel(title=str(meta.get("title") or Path(name).stem)[:TITLE_MAX], backbone=backbone, classes=classes,
                        weights=weights, info=info)


def _what(backbone: str, n_classes: int) -> str:
    return f"a classifier of {n_classes} classes on {get_spec(backbone).title.split(' (')[0]}"


def _check_meta(meta, name: str) -> tuple[str, tuple[str, ...]]:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{name} was not saved by this version of Grad-CAM Studio's Train page.")
    backbone = meta.get("backbone")
    if not isinstance(backbone, str) or backbone not in REGISTRY or not REGISTRY[backbone].gap_dense:
        raise ModelFileError(f"{name} names an unknown backbone {str(backbone)[:40]!r}.")
    classes = meta.get("classes")
    if (not isinstance(classes, list) or not MIN_CLASSES <= len(classes) <= MAX_CLASSES
            or not all(isinstance(c, str) and 0 < len(c.strip()) <= 60 for c in classes)
            or len(set(classes)) != len(classes)):
        raise ModelFileError(f"{name} does not name {MIN_CLASSES}–{MAX_CLASSES} distinct classes.")
    if meta.get("input_size") != REGISTRY[backbone].input_size:
        raise ModelFileError(f"{name} states an input size of {str(meta.get('input_size'))[:20]}, not "
                             f"{REGISTRY[backbone].input_size} as its backbone has.")
    return backbone, tuple(classes)


def _check_config(config, ref: _Reference, backbone: str, n_classes: int, name: str) -> None:
    """The config must be exactly the classifier's, layer by layer, so that nothing Keras would build from it is
    larger than that classifier: the input shape and the head's width first (the usual mistakes, named), then every
    layer's whole entry and the model's own."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not all(isinstance(la, dict) and isinstance(la.get("config"), dict)
                                               for la in layers):
        raise ModelFileError(f"{name}'s config.json does not describe a model's layers; refused.")
    spec = get_spec(backbone)
    for la in layers:
        if la.get("class_name") == "InputLayer":
            shape = la["config"].get("batch_shape")
            want = [None, spec.input_size, spec.input_size, 3]
            if shape != want:
                raise ModelFileError(f"{name} takes inputs of shape {str(shape)[:40]}, not {want} as "
                                     f"{spec.title} does.")
        if la.get("name") == HEAD_LOGITS and la["config"].get("units") != n_classes:
            raise ModelFileError(f"{name} scores {str(la['config'].get('units'))[:20]} classes but names "
                                 f"{n_classes}.")
    if len(layers) != len(ref.layers):
        raise ModelFileError(f"{name} has {len(layers)} layers where {_what(backbone, n_classes)} has "
                             f"{len(ref.layers)}; refused.")
    alias = {la.get("name"): lname for la, (lname, _) in zip(layers, ref.layers)
             if la.get("name") != lname and safefile.renumbered(la.get("name"), lname)}
    for la, (lname, digest) in zip(layers, ref.layers):
        if safefile.digest(la, alias) != digest:
            got = la.get("name")
            got = alias.get(got, got) if isinstance(got, str) else got
            raise ModelFileError(f"{name}'s layer {lname!r} is not the one {_what(backbone, n_classes)} has; refused."
                                 if got == lname else f"{name} has a layer {str(got)[:40]!r} where "
                                 f"{_what(backbone, n_classes)} has {lname!r}; refused.")
    if safefile.digest({**config, "config": {k: v for k, v in inner.items() if k != "layers"}}, alias) != ref.rest:
        raise ModelFileError(f"{name}'s model description is not that of {_what(backbone, n_classes)}; refused.")


def _check_weights(found: dict, ref: _Reference, backbone: str, n_classes: int, name: str) -> None:
    """Every array in the weights file must be one the classifier has, of its shape and dtype, stored whole the
    way Keras writes it (so the total is the classifier's parameter count), before any is read."""
    what = _what(backbone, n_classes)
    for path, ds in found.items():
        if path not in ref.datasets:
            raise ModelFileError(f"{name}'s weights hold an array {path[:60]!r} that {what} does not have; refused.")
        layer, shape, dtype = ref.datasets[path]
        if ds.shape != shape:
            raise ModelFileError(f"{name} stores weights of shape {ds.shape} for {layer}, where {what} has "
                                 f"{shape}; refused.")
        if ds.dtype != dtype:
            raise ModelFileError(f"{name} stores {layer}'s weights as {ds.dtype}, not {dtype}; refused.")
        if not ds.plain or ds.stored != ds.nbytes:
            raise ModelFileError(f"{name} stores {layer}'s weights in a way Keras never writes (chunked, "
                                 "filtered, external or incomplete); refused.")
    missing = [ref.datasets[p][0] for p in ref.datasets if p not in found]
    if missing:
        raise ModelFileError(f"{name}'s weights lack those of {missing[0]}; refused.")


def _read_weights(path: Path, backbone: str, n_classes: int, name: str) -> dict:
    """The checked weights file read into a classifier built here: layer name → weights, for layers with any."""
    try:
        with safefile.quiet():
            model = build_classifier(backbone, n_classes, None)
            model.load_weights(path)
    except Exception as exc:  # noqa: BLE001 - whatever Keras says, the user gets one sentence
        first = str(exc).strip().splitlines()[0][:120].rstrip(" .:") if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{name}'s weights could not be read ({first}).") from None
    weights = {l.name: l.get_weights() for l in model.layers if l.weights}
    for lname, arrays in weights.items():  # a NaN weight would put NaN on every page that shows this model
        if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays):
            raise ModelFileError(f"{name}'s weights of {lname} hold NaN or infinite values; refused.")
    return weights


def _changed_only(backbone: str, weights: dict) -> dict:
    """Keep only the layers whose weights differ from the backbone's ImageNet ones (all, when those are not
    available here)."""
    spec = get_spec(backbone)
    if not spec.weights_cached():
        return weights
    base = load_model(backbone)
    out = {}
    for lname, ws in weights.items():
        try:
            ref = base.get_layer(lname).get_weights() if lname != HEAD_LOGITS else None
        except ValueError:
            ref = None
        if ref is None or len(ref) != len(ws) or any(a.shape != b.shape or not np.array_equal(a, b)
                                                     for a, b in zip(ref, ws)):
            out[lname] = ws
    return out
