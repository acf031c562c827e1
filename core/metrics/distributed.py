"""``python -m core evaluate --ray [ADDRESS]``: the dataset evaluation as a Ray Data pipeline.

The jobs are the local path's jobs (:func:`.evaluation.evaluate_dataset`: one per photo listed in the boxes
CSV, in name order). ``ray.data.from_items`` makes one block per photo, ``map_batches`` hands each to a pool of
actors (:class:`Measure`, one CPU each) that each load **one** engine in their constructor
(:func:`core.engine.sources.engine_for`: a zoo name or a trained ``.keras`` file) and call the local path's
per-photo function ``_one``. The records come back pickled (exact floats and types), are put back in name
order and averaged by the same :func:`.evaluation.summarise`, so the result equals the local run's.

Ray is an optional extra (``pip install -r requirements-ray.txt``); this module is imported only for ``--ray``.
On a cluster the photos, the boxes and a trained model's file are read by the actors at the same absolute path
(a shared filesystem); the ``core`` package travels with the job (``runtime_env`` ``py_modules``), the rest of
the Python environment must be installed on every node.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import socket
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from . import evaluation, faithfulness

INSTALL_HINT = "--ray needs Ray: pip install -r requirements-ray.txt"
CORE_DIR = Path(__file__).resolve().parents[1]
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def import_ray():
    """The ``ray`` module with Ray Data; ImportError with :data:`INSTALL_HINT` when it is not installed."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ray


class Measure:
    """A Ray Data actor: one engine, loaded once; each batch is a few pickled jobs → their pickled records."""

    def __init__(self, model: str):
        os.environ.update(QUIET_ENV)
        from ..engine.warmup import import_tensorflow_quietly

        import_tensorflow_quietly()
        self.engine = evaluation._load_engine(model)

    def __call__(self, batch: dict) -> dict:
        recs = [pickle.dumps(evaluation._one(self.engine, *pickle.loads(job))) for job in batch["job"]]
        out = np.empty(len(recs), dtype=object)
        out[:] = recs
        return {"i": np.asarray(batch["i"]), "rec": out}


_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Unavailable|Exit)): \S")


def reason(exc: BaseException) -> str:
    """The first line that says what went wrong in an actor, from a Ray exception (whose message carries the
    actor's traceback as text, with colour codes), e.g. ``TypeError: ...``; else the message's first line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    for line in text.splitlines():
        m = _ERROR_LINE.match(line.strip())
        if m and not m.group(1).startswith("ray."):
            return line.strip()
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def check_address(address: str, timeout: float = 5.0) -> None:
    """ValueError (one sentence) when nothing answers at ``host:port`` (or ``ray://host:port``): Ray itself would
    retry for minutes, logging on stderr. Other forms (``auto``, ``local``) are left to Ray."""
    m = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address.strip())
    if not m:
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__.replace("Error", " error").strip()
        raise ValueError(f"no Ray cluster answers at {address} ({why}); start one with `ray start --head` "
                         f"and give the address it prints") from None


def _start(ray, address: str | None) -> bool:
    """Connect to ``address`` (or start a local Ray); True if this call did it (and must shut it down)."""
    if ray.is_initialized():
        return False
    common = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        ray.init(address=address, runtime_env={"py_modules": [str(CORE_DIR)], "env_vars": QUIET_ENV,
                                               "excludes": ["__pycache__", "*.pyc"]}, **common)
    else:
        ray.init(include_dashboard=False, runtime_env={"env_vars": QUIET_ENV}, **common)
    return True


def _quiet_data(ray) -> None:
    """No progress bars or execution logs from Ray Data on the CLI's stderr (which carries the error lines)."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:  # the console, not the session's ray-data.log
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.CRITICAL)


def _map(ds, compute, model: str):
    """``ds.map_batches`` with :class:`Measure` on ``compute``, one CPU and one photo per call. The actors are not
    restartable where Ray allows saying so (else its C++ side logs an error line on stderr on every run)."""
    args = dict(fn_constructor_kwargs={"model": model}, batch_size=1, batch_format="numpy", compute=compute,
                num_cpus=1)
    try:
        with warnings.catch_warnings():  # max_restarts goes through **ray_remote_args, which Ray deprecates
            warnings.simplefilter("ignore")
            return ds.map_batches(Measure, max_restarts=0, **args)
    except TypeError:  # a Ray without **ray_remote_args
        return ds.map_batches(Measure, **args)


def evaluate_dataset_ray(folder, csv_path, model: str, methods=("gradcam",), metrics=evaluation.DEFAULT_METRICS,
                         layer: str | None = None, threshold: float = evaluation.THRESHOLD,
                         steps: int = faithfulness.STEPS, limit: int | None = None, seed: int = 0,
                         address: str | None = None, actors: int | None = None,
                         on_error: Callable[[str], None] | None = None,
                         on_record: Callable[[dict], None] | None = None,
                         progress: Callable[[float], None] | None = None) -> dict:
    """:func:`.evaluation.evaluate_dataset` on Ray (same arguments, same result).

    Args:
        model: a zoo name or a trained model's file (each actor loads its own engine).
        address: a running cluster's address (``ray start --head`` prints it; ``auto`` finds one on this
            machine); None starts a local Ray for this run. An already initialised Ray is used as it is.
        actors: engines (one CPU each); default: the cluster's CPUs, at most one per photo.
        on_error, on_record, progress: as for the local path, called in name order.

    Raises:
        ImportError: Ray is not installed (the message says how to install it).
        ValueError: a bad method, metric, layer, step count or threshold, or an unreadable CSV (one sentence).
    """
    ray = import_ray()
    if actors is not None and actors < 1:
        raise ValueError("--workers (the number of Ray actors) must be at least 1")
    from ..engine.sources import is_model_file, spec_for

    spec = spec_for(model)  # one sentence for an unknown name or a bad file, before any Ray start
    if is_model_file(model):
        model = str(Path(model).resolve())  # the actors' working directory is not ours
    methods = list(methods)
    layer, jobs = evaluation.plan(str(Path(folder).resolve()), csv_path, spec, methods, metrics, layer, threshold,
                                  steps, limit, seed, on_error)
    tally = evaluation.Tally(methods, len(jobs), on_error, on_record, progress)
    take = tally.take  # in name order, as the local path

    if jobs:
        if address and not ray.is_initialized():
            check_address(address)
        started = _start(ray, address)
        try:
            _quiet_data(ray)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            size = max(1, min(actors or cpus, len(jobs)))
            ds = ray.data.from_items([{"i": i, "job": pickle.dumps(job)} for i, job in enumerate(jobs)],
                                     override_num_blocks=len(jobs))
            ds = _map(ds, ray.data.ActorPoolStrategy(size=size), model)
            pending, nxt = {}, 0
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i, rec in zip(batch["i"], batch["rec"]):
                    pending[int(i)] = pickle.loads(rec)
                while nxt in pending:  # out of order from the actors, in name order from here
                    take(pending.pop(nxt))
                    nxt += 1
        except ray.exceptions.RayError as exc:
            raise RuntimeError(f"on Ray: {reason(exc)}") from None
        finally:
            if started:
                ray.shutdown()
    return tally.result(layer, threshold, steps)
