"""A model trained on a user's classes: a zoo backbone → global average pooling → Dense over their classes.

In memory a :class:`TrainedModel` keeps only what training changed (the head, plus the fine-tuned blocks),
so a session holding a head-only model holds kilobytes, not the backbone again; the engine pool builds
and serves it like any zoo model (its key is a hash of its content). On disk it is one standard Keras
``.keras`` file (``keras.saving.load_model`` opens it) with one more entry, ``gradcam_studio.json``: the
backbone, the class names in index order, and how it was trained.

Loading a file never runs code: the ZIP's sizes are checked before anything is read, every object in its
``config.json`` must be a built-in Keras class (no ``Lambda``, no custom or registered objects), Keras then
loads it with ``safe_mode=True``, and its layers and weight shapes must be exactly the architecture that
its backbone and classes imply; the weights are then copied into a model built here.
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

from .registry import REGISTRY, ModelSpec, get_spec, load_model

HEAD_POOL, HEAD_LOGITS = "head_pool", "head_logits"
META = "gradcam_studio.json"
FORMAT = "gradcam-studio-trained/1"
MAX_FILE_BYTES = 400 * 2**20
MAX_UNPACKED_BYTES = 800 * 2**20
MAX_META_BYTES = 2**20
MIN_CLASSES, MAX_CLASSES = 2, 20
REFUSED_CLASSES = {"Lambda", "__lambda__", "TFSMLayer", "function_from_source"}
# the only modules a trained model's config names (a model, layers, initialisers, dtype policies): not
# keras.utils, keras.config or anything else a crafted file could call while Keras reads it
MODULES = {"keras", "keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints",
           "keras.activations", "keras.models"}
MODEL_CLASSES = {"Functional", "Sequential", "Model"}  # Keras names the module it defines these in


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


_ARCH_CACHE: dict = {}


def _architecture(backbone: str, n_classes: int) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(layer name, weight shapes) of every layer of the classifier, in order (built once per process)."""
    key = (backbone, n_classes)
    if key not in _ARCH_CACHE:
        model = build_classifier(backbone, n_classes, None)
        _ARCH_CACHE[key] = [(l.name, [tuple(w.shape) for w in l.weights]) for l in model.layers]
    return _ARCH_CACHE[key]


def load_file(source, name: str = "model file") -> TrainedModel:
    """A :class:`TrainedModel` from ``.keras`` bytes or a path, after checking that it is one, safely.

    Raises:
        ModelFileError: anything else, in one sentence (not a ZIP, too large, no metadata, a Lambda or a
        custom object, an unknown backbone, the wrong input shape, class names that do not match …).
    """
    try:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            p = Path(source)
            if not p.is_file():
                raise ModelFileError(f"{p.name}: no such file.")
            if p.stat().st_size > MAX_FILE_BYTES:
                raise ModelFileError(f"{p.name} is larger than {MAX_FILE_BYTES // 2**20} MB; a trained model is smaller.")
            data = p.read_bytes()
            name = p.name
    except OSError as exc:
        raise ModelFileError(f"{name} cannot be read ({exc.strerror}).") from None
    if len(data) > MAX_FILE_BYTES:
        raise ModelFileError(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB; a trained model is smaller.")
    not_ours = (f"{name} is not a model saved by Grad-CAM Studio's Train page (a .keras file with the class "
                "names inside).")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise ModelFileError(not_ours) from None
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        if not {"config.json", "model.weights.h5", META} <= set(infos):
            raise ModelFileError(not_ours)
        if sum(i.file_size for i in infos.values()) > MAX_UNPACKED_BYTES:
            raise ModelFileError(f"{name} unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MB; refused.")
        if infos[META].file_size > MAX_META_BYTES or infos["config.json"].file_size > 32 * 2**20:
            raise ModelFileError(f"{name}: its description is too large for a trained model; refused.")
        try:
            meta = json.loads(zf.read(META))
            config = json.loads(zf.read("config.json"))
        except (ValueError, zipfile.BadZipFile, RuntimeError):
            raise ModelFileError(f"{name}: its description is damaged.") from None
    backbone, classes = _check_meta(meta, name)
    _check_config(config, name)
    loaded = _keras_load(data, name)
    spec = get_spec(backbone)
    want = (None, spec.input_size, spec.input_size, 3)
    if tuple(loaded.input_shape) != want:
        raise ModelFileError(f"{name} takes inputs of shape {tuple(loaded.input_shape)}, not {want} as "
                             f"{spec.title} does.")
    if tuple(loaded.output_shape) != (None, len(classes)):
        raise ModelFileError(f"{name} scores {loaded.output_shape[-1]} classes but names {len(classes)}.")
    arch = _architecture(backbone, len(classes))
    found = [(l.name, [tuple(w.shape) for w in l.weights]) for l in loaded.layers]
    if found != arch:
        raise ModelFileError(f"{name}'s layers are not a {spec.title} backbone with a classifier head; refused.")
    weights = {l.name: l.get_weights() for l in loaded.layers if l.weights}
    del loaded
    weights = _changed_only(backbone, weights)
    info = meta.get("info") if isinstance(meta.get("info"), dict) else {}
    return TrainedModel(title=str(meta.get("title") or Path(name).stem)[:60], backbone=backbone, classes=classes,
                        weights=weights, info=info)


def _check_meta(meta, name: str) -> tuple[str, tuple[str, ...]]:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{name} was not saved by this version of Grad-CAM Studio's Train page.")
    backbone = meta.get("backbone")
    if backbone not in REGISTRY or not REGISTRY[backbone].gap_dense:
        raise ModelFileError(f"{name} names an unknown backbone {str(backbone)[:40]!r}.")
    classes = meta.get("classes")
    if (not isinstance(classes, list) or not MIN_CLASSES <= len(classes) <= MAX_CLASSES
            or not all(isinstance(c, str) and 0 < len(c.strip()) <= 60 for c in classes)
            or len(set(classes)) != len(classes)):
        raise ModelFileError(f"{name} does not name {MIN_CLASSES}–{MAX_CLASSES} distinct classes.")
    if meta.get("input_size") != REGISTRY[backbone].input_size:
        raise ModelFileError(f"{name} states an input size of {meta.get('input_size')!r}, not "
                             f"{REGISTRY[backbone].input_size} as its backbone has.")
    return backbone, tuple(classes)


def _check_config(config, name: str) -> None:
    """Every serialised object must be a built-in Keras one: no Lambda, no custom or registered class."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "class_name" in node:
                cls, module = str(node.get("class_name")), node.get("module")
                if cls in REFUSED_CLASSES:
                    raise ModelFileError(f"{name} contains a {cls} layer, which could run code; refused.")
                own = cls in MODEL_CLASSES and str(module).split(".")[0] == "keras"
                if module is not None and module not in MODULES and not own:
                    raise ModelFileError(f"{name} refers to code outside Keras's layers ({str(module)[:40]}); refused.")
                registered = node.get("registered_name")
                if registered is not None and (">" in str(registered) or "." in str(registered)):
                    raise ModelFileError(f"{name} contains a custom object ({str(registered)[:40]}); refused.")
            stack.extend(node.values())


def _keras_load(data: bytes, name: str):
    import keras

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.keras"
        path.write_bytes(data)
        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # noqa: BLE001 - whatever Keras says, the user gets one sentence
            first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{name} could not be loaded as a Keras model ({first}).") from None


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
