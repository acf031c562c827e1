"""Taking images (and model files) in on the Train page: read what a widget returned, keep thumbnails only, let
go of the upload, and start the next batch with a fresh widget.

Each intake is a function, not page code: the uploaded files live in its local variables only. A page's
top-level names outlive its run (the page's callbacks and fragments keep its globals), and a batch of 50
phone photos left there stayed in memory, one batch per batch (measured with
``tools/train_upload_memory.py``).
"""
from __future__ import annotations

import streamlit as st

from core.imaging import images
from core.models import ModelFileError, load_file
from core.training import Dataset, DatasetError, add_files, read_zip
from core.training.data import example_from_bytes

from . import training
from .resources import trained_models
from server.runtime import release_uploads


def _key(name: str) -> str:
    return f"{name}_{st.session_state.get(name + '_nonce', 0)}"


def _done(name: str, uploads) -> None:
    """Let go of the upload, give the widget a fresh key and run the page again (the messages show there).

    Streamlit may hold two copies of an upload's bytes besides its manager's: the files the widget returned
    and the files its widget state deserialised on its own; both are closed (a closed file frees its bytes).
    """
    kept = st.session_state.get(_key(name))
    release_uploads(uploads, kept)  # Streamlit would otherwise keep the bytes until the session ends
    training.bump(name + "_nonce")
    st.rerun()


def files(ds: Dataset, target: str) -> None:
    """Several image files dropped for class ``target``; a bad file is one line and is skipped. One batch is one
    upload: it stops, with one line, where the dataset is full or its decoding budget is spent."""
    got = st.file_uploader(f"Drop images for **{target}** (several at once)", accept_multiple_files=True,
                           key=_key("train_files"))
    if not got:
        return
    warns = []
    bar = st.progress(0.0, text="Reading the images…")
    added = add_files(ds, target, ((f.name, f.getvalue()) for f in got), warn=warns.append, total=len(got),
                      progress=lambda x: bar.progress(x, text=f"Reading the images… {x:.0%}"))  # one file at a time
    training.tell([f"Added {added} of {len(got)} images to {target}."], "success")
    training.tell(warns)
    _done("train_files", got)


def zip_of_classes(ds: Dataset) -> None:
    """One ZIP whose top-level folders are the classes."""
    up = st.file_uploader("Drop one ZIP", type=["zip"], key=_key("train_zip"))
    if up is None:
        return
    warns = []
    bar = st.progress(0.0, text="Reading the ZIP…")
    try:
        got = read_zip(up.getvalue(), warn=warns.append, progress=lambda f: bar.progress(f, text="Reading the ZIP…"))
        added = ds.merge(got, warn=warns.append)  # where the session's dataset fills up: one line
        training.tell([f"Added {added} images in {len(got.classes)} classes from {up.name}."], "success")
    except DatasetError as exc:
        training.tell([exc], "error")
    training.tell(warns)
    _done("train_zip", up)


def webcam(ds: Dataset, target: str) -> None:
    """A webcam photo for class ``target``; the camera is ready for the next one at once."""
    shot = st.camera_input(f"Take a photo for **{target}**", key=_key("train_cam"))
    if shot is None:
        return
    n = len(ds.classes[target]) + 1
    try:
        added = ds.add(target, example_from_bytes(shot.getvalue(), f"webcam {n}.jpg"))
        training.tell([f"Added a webcam photo to {target}." if added else
                       f"{target} already has this very photo."], "success" if added else "info")
    except (images.ImageError, DatasetError) as exc:  # DatasetFull: the dataset holds its most images
        training.tell([exc])
    _done("train_cam", shot)


def model_file(where) -> None:
    """A ``.keras`` file saved here before, opened safely into the session's trained models."""
    up = where.file_uploader("Open a model saved here before (.keras)", type=["keras"], key=_key("train_model_up"))
    if up is None:
        return
    try:
        loaded = load_file(up.getvalue(), up.name)
        trained_models()[loaded.name] = loaded
        training.tell([f"Opened {loaded.title} ({len(loaded.classes)} classes); it is in the sidebar's model list."],
                      "success")
    except ModelFileError as exc:
        training.tell([exc], "error")
    _done("train_model_up", up)
