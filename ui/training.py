"""The Train page's glue: the session's dataset, the training job that runs beside the page, and its messages
(its charts are in :mod:`ui.charts`).

A :class:`TrainJob` runs :func:`core.training.train` in a thread owned by the session (kept in
``st.session_state``), so the page stays responsive; it only writes its own fields, which the page's fragment
reads every second, and a ``threading.Event`` stops it between batches.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import streamlit as st

from core.cam import methods
from core.engine.warmup import process_ending
from core.imaging import render
from core.training import Dataset, DatasetError, Stopped, TrainConfig, stamp_images, train

from .resources import trained_models
from .text import plural

MAX_MESSAGES = 8
WATCH_SECONDS = 2.0  # how often another page looks at a training that runs
MODES_TEXT = (
    "**Head only** takes seconds: the backbone stays as it is and only a last layer learns your classes — a "
    "logistic regression on the backbone's features, its strength chosen by cross-validation, so there is "
    "nothing to tune. Use it "
    "first, and with few images (a handful to a few dozen per class) of things that look like everyday photos "
    "(animals, objects, food, places: what ImageNet's classes are made of).  \n"
    "**Fine-tune the last blocks** takes minutes: the backbone's last blocks learn too. It pays off with more "
    "images (a hundred or more per class) of things that look unlike everyday photos (X-rays, microscope slides, "
    "screenshots, defects on parts), or when head only stays below the accuracy you need.")


def dataset() -> Dataset:
    """This session's classes and their thumbnails."""
    return st.session_state.setdefault("train_ds", Dataset())


def add_class_from_input() -> None:
    """The "Add class" button's callback: a class named by the text box, which is then emptied. A module-level
    function: a widget keeps its callback for the session, and a function defined in the page would keep the
    whole page run's namespace with it."""
    try:
        st.session_state["train_target"] = dataset().add_class(st.session_state.get("train_new_class", ""))
    except DatasetError as exc:
        tell([exc], "error")
    st.session_state["train_new_class"] = ""


def tell(lines, kind: str = "warning") -> None:
    """Keep one-line messages for the next run (a batch's bad files, a refusal) to show once."""
    st.session_state.setdefault("train_msgs", []).extend((kind, str(x)) for x in lines)


def show_messages() -> None:
    """The kept messages, one line each (at most MAX_MESSAGES, then how many more), then forgotten."""
    msgs = st.session_state.pop("train_msgs", [])
    for kind, line in msgs[:MAX_MESSAGES]:
        getattr(st, kind)(line)
    if len(msgs) > MAX_MESSAGES:
        st.warning(f"…and {len(msgs) - MAX_MESSAGES} more lines like these.")


def bump(key: str) -> None:
    """A new key for an uploader or the camera: a fresh, empty widget (its files are let go of with
    :func:`server.runtime.release_uploads` first)."""
    st.session_state[key] = st.session_state.get(key, 0) + 1


class TrainJob:
    """One training run beside the page.

    Attributes:
        fraction, text: progress (0–1) and what is being done.
        curve: the cross-validation records so far, one per regularisation strength.
        history: the fine-tuning epochs' records so far.
        result: the :class:`core.training.TrainResult` once done (None on error).
        error: one sentence when it failed or was stopped before any epoch.
        thumbs: the images trained on (the stamp applied), indexed like the result's indices.
        plain: the images as the user gave them (no stamp).
    """

    def __init__(self, engine, ds: Dataset, cfg: TrainConfig, title: str, cache, stamp=None, stamp_class=None):
        self.plain, self.labels, self.classes, self.sources = ds.arrays()
        self.thumbs = stamp_images(self.plain, self.labels, stamp, stamp_class)
        self.engine, self.cfg, self.title, self.cache = engine, cfg, title, cache
        self.stamp, self.stamp_class = stamp, stamp_class
        self.fraction, self.text = 0.0, "Starting"
        self.curve: list = []
        self.history: list = []
        self.result = None
        self.error: str | None = None
        self.collected = False
        self.seconds = 0.0
        self._stop = threading.Event()
        # not a daemon: Python ends daemon threads at its exit wherever they are, and one inside TensorFlow's C++
        # code aborts the process; a process that ends during a training stops it at the next batch or solve
        self._thread = threading.Thread(target=self._run, name="train-job", daemon=False)

    def start(self) -> "TrainJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _should_stop(self) -> bool:
        return self._stop.is_set() or process_ending()  # Stop pressed, or the process ends

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _progress(self, fraction: float, text: str) -> None:
        self.fraction, self.text = float(min(max(fraction, 0.0), 1.0)), text

    def _run(self) -> None:
        t = time.perf_counter()
        try:
            self.result = train(self.engine, self.thumbs, self.labels, self.classes, self.cfg, title=self.title,
                                cache=self.cache, on_strength=self.curve.append, on_epoch=self.history.append,
                                progress=self._progress, should_stop=self._should_stop)
            if self.result.model is None:
                self.error = "Stopped before anything was fitted; nothing was trained."
        except Stopped:
            self.error = "Stopped while computing features; the features computed so far are kept for the next run."
        except (DatasetError, ValueError) as exc:
            self.error = str(exc).strip().splitlines()[0] if str(exc).strip() else "Training could not start."
        except Exception as exc:  # noqa: BLE001 - the page shows one line, never a traceback
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            self.error = f"Training failed ({type(exc).__name__}{': ' + first if first else ''})."
        finally:
            self.seconds = time.perf_counter() - t
            self.fraction = 1.0
            self.text = "Stopped" if self._should_stop() else "Done"


def collect():
    """Keep the model of this session's training job once it has ended, whichever page is open then (the
    sidebar calls this on every page). Returns the model it has just kept, else None."""
    job = st.session_state.get("train_job")
    if job is None or job.running or job.collected:
        return None
    job.collected = True
    model = job.result.model if job.result is not None else None
    if model is not None:
        trained_models()[model.name] = model
    return model


def watch() -> None:
    """On a page other than Train, while this session's training runs: its progress in the sidebar, looked at
    every WATCH_SECONDS, and the whole page drawn again once it ends (so the model joins the model list)."""
    job = st.session_state.get("train_job")
    if job is not None and job.running:
        with st.sidebar:
            st.fragment(_watch_panel, run_every=WATCH_SECONDS)()


def _watch_panel() -> None:
    job = st.session_state.get("train_job")
    if job is None or job.collected:
        return
    if not job.running:
        st.rerun()  # the whole app: the sidebar keeps the model and lists it
    st.progress(job.fraction, text=f"Training {job.title}: {job.text.lower()} · {job.fraction:.0%}")
    st.caption("It joins the model list when it ends; the Train page shows its curves.")


def stopped_text(job) -> str | None:
    """One sentence on a training the user stopped that still made a model (None otherwise)."""
    res = job.result
    if res is None or res.model is None or not res.stopped:
        return None
    if not res.history:  # stopped in the search (or before fine-tuning's first epoch ended)
        tried = len(res.head.curve)
        skipped = " The blocks were not fine-tuned." if job.cfg.fine_tune_blocks else ""
        return f"Stopped by you: the head uses the best of the {plural(tried, 'strength')} cross-validated so far.{skipped}"
    last = res.history[-1]
    best = min(res.history, key=lambda r: r["val_loss"])  # the first lowest
    return (f"Stopped by you after epoch {last['epoch']}: the model keeps epoch {best['epoch']}, the best so far "
            f"(lowest validation loss).")


def gradcam_overlay(engine, thumb: np.ndarray, class_index: int, alpha: float, colormap: str):
    """(overlay of Grad-CAM of ``class_index`` at the model's last layer, that class's probability, the predicted
    class): one pass gives all three (the probabilities do not depend on the class explained)."""
    res = engine.run(thumb, class_index)
    layer = engine.spec.default_layer
    cam = methods.gradcam(res.acts[layer], res.grads[layer])
    return render.overlay(thumb, cam, alpha, colormap), float(res.probs[class_index]), int(np.argmax(res.probs))
