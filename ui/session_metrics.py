"""The Measure page's figures, computed and kept per session: maps, localisation, faithfulness curves, ROAD and
the sanity cascade, each kept in the session's state under a key of everything it depends on (model, exact
pixels, class, layer, method, boxes, threshold, steps, seed), so a slider that changes only the threshold never
recomputes a curve; the "Can this be fooled?" ranking is built from them on every redraw (no pass of its own).

The figures come from the same functions as ``python -m core evaluate`` (:func:`core.metrics.evaluation
.measure_photo`: ``raw_map``, ``best_iou``, ``pointing``, ``energy``, ``curves``, ``confidence_change``) with the
same seed for the random baseline (:func:`core.metrics.baselines.seed_for` of the photo's file name), so the page
and the CLI give the same numbers for the same photo (tests/test_measure_page.py checks it). The tables of
those figures are here; their charts are in :mod:`ui.charts`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from core.cam import methods
from core.metrics import baselines, evaluation, faithfulness, localisation, road
from core.imaging import images, render

from .charts import map_title

BASELINES = baselines.BASELINES
# per store, per session: every map the page can show at once (all methods and baselines) and 8 more; the least
# recently used go first, so the maps on screen never push each other out (a localisation entry's region is kept
# at display size, at most 720 pixels a side)
CACHE_ENTRIES = len(methods.names()) + len(BASELINES) + 8
REGION_SIDE = 720


def fmt(value, spec: str = ".3f") -> str:
    """A figure for the screen: '—' for None or a non-finite value (never NaN)."""
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    v = float(value)
    return format(v, spec) if math.isfinite(v) else "—"


def _store(name: str) -> dict:
    return st.session_state.setdefault(name, {})


def _keep(store: dict, key, value):
    store.pop(key, None)
    store[key] = value
    while len(store) > CACHE_ENTRIES:
        store.pop(next(iter(store)))
    return value


def _get(store: dict, key):
    """The entry (or None), now the most recently used."""
    if key not in store:
        return None
    store[key] = store.pop(key)
    return store[key]


def seed_for(image) -> int:
    """The random baseline's seed: the CLI's for a photo of this file name (base seed 0)."""
    return baselines.seed_for(image.name, 0)


def map_key(engine, rgb, cls: int, layer: str, method: str, seed: int) -> tuple:
    """A map's key: a method with a place of its own (a map at the model input) and a baseline not drawn on the
    layer's grid keep it at every layer."""
    entry = methods.REGISTRY.get(method)
    if entry is not None:
        where = entry.layer or layer
    else:
        where = layer if method in baselines.AT_LAYER else None
    return (engine.spec.name, images.pixel_hash(rgb), int(cls), where, method, seed)


def raw_maps(engine, rgb, cls: int, layer: str, names, seed: int) -> dict[str, tuple[tuple, np.ndarray | str]]:
    """name → (its key, its raw map — or one sentence why the method does not apply here)."""
    store = _store("measure_maps")
    res = None
    out = {}
    for m in names:
        key = map_key(engine, rgb, cls, layer, m, seed)
        if _get(store, key) is None:
            res = res or engine.run(rgb, cls)
            try:
                cam = evaluation.raw_map(engine, rgb, res, m, layer, seed)
            except methods.NotApplicable as exc:
                cam = str(exc).splitlines()[0]
            _keep(store, key, cam)
        out[m] = (key, store[key])
    return out


def localise(key: tuple, cam: np.ndarray, boxes, threshold: float, width: int, height: int) -> dict:
    """IoU (at ``threshold``), pointing, energy, the map's box and region, and IoU at every threshold; the
    figures are None without boxes."""
    store = _store("measure_loc")
    k = (key, tuple(boxes), float(threshold))
    if (rec := _get(store, k)) is not None:
        return rec
    cam_up = render.upsample(cam, width, height)
    top = float(cam_up.max())
    region = cam_up >= threshold * top if top > 0 else np.zeros(cam_up.shape, bool)
    rec = {"cam_box": localisation.cam_box(cam_up, threshold), "region": render.region_at_display(region, REGION_SIDE),
           "iou": None, "pointing": None, "energy": None, "curve": None}
    if boxes:
        rec.update(iou=localisation.best_iou(cam_up, boxes, threshold), pointing=localisation.pointing(cam_up, boxes),
                   energy=localisation.energy(cam_up, boxes), curve=localisation.iou_curve(cam_up, boxes))
    return _keep(store, k, rec)


def cached_faithfulness(key: tuple, steps: int) -> dict | None:
    return _get(_store("measure_faith"), (key, steps))


def run_faithfulness(engine, rgb, cls: int, maps: dict, steps: int, progress=None) -> None:
    """Deletion and insertion curves, average drop and increase for every map not yet measured at ``steps``."""
    store = _store("measure_faith")
    todo = [(m, key, cam) for m, (key, cam) in maps.items() if not isinstance(cam, str) and (key, steps) not in store]
    for i, (m, key, cam) in enumerate(todo):
        d, ins = faithfulness.curves(engine, rgb, cam, cls, steps)
        drop, increase, y, o = faithfulness.confidence_change(engine, rgb, cam, cls)
        _keep(store, (key, steps), {"fractions": d.fractions, "deletion": d.probs, "insertion": ins.probs,
                                    "deletion_auc": d.auc, "insertion_auc": ins.auc, "avg_drop": drop,
                                    "increase": bool(increase), "y": y, "o": o,
                                    "kept": faithfulness.kept_visible(cam, engine.spec.input_size)})
        if progress:
            progress((i + 1) / len(todo), m)


def cached_road(key: tuple):
    """The :class:`core.metrics.road.Road` of a map (its key from :func:`raw_maps`), or None."""
    return _get(_store("measure_road"), key)


def run_road(engine, rgb, cls: int, maps: dict, progress=None) -> None:
    """ROAD for every map not yet measured, with the noise seed of the map's key (the CLI's for this photo);
    ``progress(fraction, map name)`` over all of them."""
    store = _store("measure_road")
    todo = [(m, key, cam) for m, (key, cam) in maps.items() if not isinstance(cam, str) and key not in store]
    for i, (m, key, cam) in enumerate(todo):
        step = (lambda f, m=m, i=i: progress((i + f) / len(todo), m)) if progress else None
        _keep(store, key, road.road(engine, rgb, cam, cls, seed=key[-1], progress=step))


def sanity_key(engine, rgb, cls: int, layer: str, method: str) -> tuple:
    return ("sanity",) + map_key(engine, rgb, cls, layer, method, 0)


def run_sanity(engine, keras_model, rgb, cls: int, layer: str, method: str, progress=None):
    """The cascade on a private copy of ``keras_model`` (never the pool's engine); kept in the session."""
    from core.metrics import sanity

    result = sanity.cascade(engine.spec, keras_model, rgb, method, layer, cls, seed=0, progress=progress)
    return _keep(_store("measure_sanity"), sanity_key(engine, rgb, cls, layer, method), result)


def cached_sanity(key: tuple):
    return _get(_store("measure_sanity"), key)


# --- tables ---------------------------------------------------------------------------------------------------
def localisation_table(locs: dict) -> pd.DataFrame:
    return pd.DataFrame([{"map": map_title(m), "IoU": fmt(r["iou"]), "pointing game": fmt(r["pointing"]),
                          "energy inside boxes": fmt(r["energy"])} for m, r in locs.items()]).set_index("map")


KEPT_COLUMN = "photo kept visible (photo × map)"


def faithfulness_table(results: dict) -> pd.DataFrame:
    return pd.DataFrame([{"map": map_title(m), "deletion AUC (low = good)": fmt(r["deletion_auc"]),
                          "insertion AUC (high = good)": fmt(r["insertion_auc"]),
                          "average drop (low = good)": fmt(r["avg_drop"]),
                          KEPT_COLUMN: fmt(r.get("kept"), ".0%"),
                          "increase in confidence": fmt(r["increase"])} for m, r in results.items()]).set_index("map")


def drop_note(results: dict, class_name: str) -> str:
    """One line under the faithfulness table: what average drop measures, and why a broad map (a baseline)
    can score a lower drop than a method, with the share of the photo each map keeps (computed, not typed)."""
    kept = ", ".join(f"{map_title(m)} {fmt(r.get('kept'), '.0%')}" for m, r in results.items())
    return (f"**Reading average drop:** it is the share of p({class_name}) lost when the photo is multiplied by "
            "the map scaled to 0..1, so it rewards keeping the photo visible, not pointing at the object: a map "
            f"that keeps more of the photo (here {kept}) tends to lose less, which is how a baseline can beat a "
            "method on it.")


def road_table(results: dict) -> pd.DataFrame:
    return pd.DataFrame([{"map": map_title(m), "MoRF: mean change (low = good)": fmt(r.morf_mean),
                          "LeRF: mean change (high = good)": fmt(r.lerf_mean),
                          "ROAD combined (high = good)": fmt(r.combined),
                          "p on the photo": fmt(r.original)} for m, r in results.items()]).set_index("map")


# --- "Can this be fooled?" --------------------------------------------------------------------------------------
# (column, higher is better) — the sanity check's column ranks by |ρ|, low first: a map must change with the model
FOOLED_COLUMNS = (("pointing game", True), ("energy in boxes", True), ("deletion AUC", False),
                  ("insertion AUC", True), ("ROAD combined", True), ("sanity: final |ρ|", False))


def fooled_figures(names, locs: dict, faith: dict, roads: dict, sanities: dict) -> pd.DataFrame:
    """One row per map, one column per metric (None where not measured): the figures the panel ranks."""
    rows = []
    for m in names:
        loc, f, r, c = locs.get(m) or {}, faith.get(m), roads.get(m), sanities.get(m)
        rows.append({"map": m,
                     "pointing game": None if loc.get("pointing") is None else float(loc["pointing"]),
                     "energy in boxes": loc.get("energy"),
                     "deletion AUC": None if f is None else f["deletion_auc"],
                     "insertion AUC": None if f is None else f["insertion_auc"],
                     "ROAD combined": None if r is None else r.combined,
                     "sanity: final |ρ|": None if c is None else abs(c.steps[-1].spearman)})
    df = pd.DataFrame(rows).set_index("map")
    return df[[c for c, _ in FOOLED_COLUMNS if df[c].notna().any()]]


def fooled_ranks(figures: pd.DataFrame) -> pd.DataFrame:
    """Each map's rank per column (1 = best; equal figures share the better rank)."""
    best_high = dict(FOOLED_COLUMNS)
    return pd.DataFrame({c: figures[c].astype(float).round(6).rank(ascending=not best_high[c], method="min")
                         for c in figures.columns}).astype("Int64")


def fooled_table(figures: pd.DataFrame) -> pd.DataFrame:
    """The panel's table: 'figure (#rank of n)' per cell, the maps by title."""
    ranks, n = fooled_ranks(figures), len(figures)
    out = {}
    for c in figures.columns:
        spec = ".2f" if c == "pointing game" else ".3f"
        out[c] = [fmt(v, spec) if pd.isna(k) else f"{fmt(v, spec)} (#{int(k)} of {n})"
                  for v, k in zip(figures[c], ranks[c])]
    return pd.DataFrame(out, index=[map_title(m) for m in figures.index]).rename_axis("map")


def fooled_note(figures: pd.DataFrame, model_free=("edges", "random")) -> str:
    """One or two sentences, from the figures: the model-free map's best rank against the real methods, and what
    catches it (its final ρ under the sanity check against the methods')."""
    ranks = fooled_ranks(figures)
    free = [m for m in model_free if m in figures.index]
    real = [m for m in figures.index if m not in baselines.MODEL_FREE]
    if not free or not real:
        return ""
    m = free[0]
    n = len(figures)
    wins = []
    for c in (c for c in figures.columns if not c.startswith("sanity")):
        if pd.isna(ranks.loc[m, c]):
            continue
        below = [map_title(r) for r in real if not pd.isna(ranks.loc[r, c]) and ranks.loc[m, c] < ranks.loc[r, c]]
        if below:
            wins.append(f"{' and '.join(below)} on **{c}** (#{int(ranks.loc[m, c])} of {n})")
    if wins:
        first = f"{map_title(m)} never looks at the model, yet it ranks above " + "; above ".join(wins) + "."
    else:
        first = f"{map_title(m)} never looks at the model, and here it ranks below every method on every metric."
    san = "sanity: final |ρ|"
    if san in figures.columns and not pd.isna(figures.loc[m, san]):
        others = ", ".join(f"{map_title(r)} {fmt(figures.loc[r, san], '.2f')}" for r in real
                           if not pd.isna(figures.loc[r, san]))
        second = (f" The sanity check catches it: with every block of the model random its map is unchanged "
                  f"(|ρ| = {fmt(figures.loc[m, san], '.2f')}" + (f"; {others}" if others else "") +
                  "), so a good score alone does not show that a map explains the model.")
    else:
        second = " Run the ranking to see whether the sanity check catches it."
    return first + second
