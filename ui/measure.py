"""The Measure page's work: maps, localisation, faithfulness curves and the sanity cascade, each kept in the
session's state under a key of everything it depends on (model, exact pixels, class, layer, method, boxes,
threshold, steps, seed), so a slider that changes only the threshold never recomputes a curve.

The figures come from the same functions as ``python -m core evaluate`` (:func:`core.metrics.evaluation
.measure_photo`: ``raw_map``, ``best_iou``, ``pointing``, ``energy``, ``curves``, ``confidence_change``) with the
same seed for the random baseline (:func:`core.metrics.baselines.seed_for` of the photo's file name), so the page
and the CLI give the same numbers for the same photo (tests/test_measure_page.py checks it).
"""
from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from core.cam import methods
from core.metrics import baselines, evaluation, faithfulness, localisation
from core.imaging import images, render

BASELINES = baselines.BASELINES
CACHE_ENTRIES = 8  # per store, per session: old entries go first (a localisation entry holds a photo-sized mask)
BASELINE_TITLES = {"random": "Random map (baseline)", "centre": "Centre prior (baseline)"}


def title(name: str) -> str:
    return methods.REGISTRY[name].title if name in methods.REGISTRY else BASELINE_TITLES[name]


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
    store[key] = value
    while len(store) > CACHE_ENTRIES:
        store.pop(next(iter(store)))
    return value


def seed_for(image) -> int:
    """The random baseline's seed: the CLI's for a photo of this file name (base seed 0)."""
    return baselines.seed_for(image.name, 0)


def map_key(engine, rgb, cls: int, layer: str, method: str, seed: int) -> tuple:
    return (engine.spec.name, images.pixel_hash(rgb), int(cls), layer, method, seed)


def raw_maps(engine, rgb, cls: int, layer: str, names, seed: int) -> dict[str, tuple[tuple, np.ndarray | str]]:
    """name → (its key, its raw map — or one sentence why the method does not apply here)."""
    store = _store("measure_maps")
    res = None
    out = {}
    for m in names:
        key = map_key(engine, rgb, cls, layer, m, seed)
        if key not in store:
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
    if k in store:
        return store[k]
    cam_up = render.upsample(cam, width, height)
    top = float(cam_up.max())
    rec = {"cam_box": localisation.cam_box(cam_up, threshold),
           "region": cam_up >= threshold * top if top > 0 else np.zeros(cam_up.shape, bool),
           "iou": None, "pointing": None, "energy": None, "curve": None}
    if boxes:
        rec.update(iou=localisation.best_iou(cam_up, boxes, threshold), pointing=localisation.pointing(cam_up, boxes),
                   energy=localisation.energy(cam_up, boxes), curve=localisation.iou_curve(cam_up, boxes))
    return _keep(store, k, rec)


def cached_faithfulness(key: tuple, steps: int) -> dict | None:
    return _store("measure_faith").get((key, steps))


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


def sanity_key(engine, rgb, cls: int, layer: str, method: str) -> tuple:
    return ("sanity",) + map_key(engine, rgb, cls, layer, method, 0)


def run_sanity(engine, keras_model, rgb, cls: int, layer: str, method: str, progress=None):
    """The cascade on a private copy of ``keras_model`` (never the pool's engine); kept in the session."""
    from core.metrics import sanity

    result = sanity.cascade(engine.spec, keras_model, rgb, method, layer, cls, seed=0, progress=progress)
    return _keep(_store("measure_sanity"), sanity_key(engine, rgb, cls, layer, method), result)


def cached_sanity(key: tuple):
    return _store("measure_sanity").get(key)


# --- tables and charts ------------------------------------------------------------------------------
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#bcbd22", "#8c564b")
BASELINE_COLOURS = {"random": "#9e9e9e", "centre": "#5d4037"}


def _colour(names, legend_title: str = "map") -> alt.Color:
    """One colour per map, the same on every chart: the methods in strong colours, the baselines gray and brown."""
    methods_ = [m for m in names if m not in BASELINE_COLOURS]
    domain = [title(m) for m in methods_] + [title(m) for m in names if m in BASELINE_COLOURS]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(methods_))] + \
              [BASELINE_COLOURS[m] for m in names if m in BASELINE_COLOURS]
    return alt.Color("map:N", scale=alt.Scale(domain=domain, range=colours),
                     legend=alt.Legend(orient="bottom", title=legend_title))


def localisation_table(locs: dict) -> pd.DataFrame:
    return pd.DataFrame([{"map": title(m), "IoU": fmt(r["iou"]), "pointing game": fmt(r["pointing"]),
                          "energy inside boxes": fmt(r["energy"])} for m, r in locs.items()]).set_index("map")


def iou_chart(locs: dict, threshold: float) -> alt.Chart:
    rows = [{"map": title(m), "threshold": float(t), "IoU": float(v)}
            for m, r in locs.items() if r["curve"] is not None for t, v in zip(*r["curve"])]
    lines = alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
        x=alt.X("threshold:Q", title="threshold (fraction of the map's maximum)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("IoU:Q", scale=alt.Scale(domain=[0, 1])), color=_colour(list(locs)),
        tooltip=["map", alt.Tooltip("threshold:Q", format=".2f"), alt.Tooltip("IoU:Q", format=".3f")])
    rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(strokeDash=[4, 4], color="gray").encode(
        x="threshold:Q")
    return alt.layer(lines, rule).properties(height=340)


# the two curves by line style, the same in the lines and in their legend: solid deletion, dashed insertion
CURVES = {"deletion": ("deletion (fraction removed)", [1, 0]), "insertion": ("insertion (fraction revealed)", [6, 3])}


def curves_chart(results: dict, class_name: str) -> alt.Chart:
    """Deletion (solid) and insertion (dashed) curves, one colour per map.

    The lines and the points are two layers: a line mark with a filled point overlay (``point=``) makes
    Vega-Lite draw the strokeDash legend's symbols with a transparent stroke (no dash to see), so the
    legend comes from the line layer alone, its symbols strokes 24 px long in the curve's own dash."""
    rows = []
    for m, r in results.items():
        for kind, verb in (("deletion", "removed"), ("insertion", "revealed")):
            rows += [{"map": title(m), "curve": CURVES[kind][0], "fraction": float(f), "probability": float(p)}
                     for f, p in zip(r["fractions"], r[kind])]
    base = alt.Chart(pd.DataFrame(rows)).encode(
        x=alt.X("fraction:Q", title="fraction of the pixels removed (deletion) / revealed (insertion)",
                axis=alt.Axis(format="%")),
        y=alt.Y("probability:Q", title=f"p({class_name})", axis=alt.Axis(format="%")),
        color=_colour(list(results)))
    dash = alt.StrokeDash("curve:N", title="curve (line style)",
                          scale=alt.Scale(domain=[c[0] for c in CURVES.values()], range=[c[1] for c in CURVES.values()]),
                          legend=alt.Legend(orient="top", symbolType="stroke", symbolSize=576, symbolStrokeWidth=2,
                                            symbolStrokeColor="#31333f", symbolFillColor="transparent", labelLimit=260))
    lines = base.mark_line().encode(strokeDash=dash)
    points = base.mark_point(filled=True, size=18, opacity=1).encode(
        tooltip=["map", "curve", alt.Tooltip("fraction:Q", format=".0%"), alt.Tooltip("probability:Q", format=".2%")])
    return alt.layer(lines, points).properties(height=420)


KEPT_COLUMN = "photo kept visible (photo × map)"


def faithfulness_table(results: dict) -> pd.DataFrame:
    return pd.DataFrame([{"map": title(m), "deletion AUC (low = good)": fmt(r["deletion_auc"]),
                          "insertion AUC (high = good)": fmt(r["insertion_auc"]),
                          "average drop (low = good)": fmt(r["avg_drop"]),
                          KEPT_COLUMN: fmt(r.get("kept"), ".0%"),
                          "increase in confidence": fmt(r["increase"])} for m, r in results.items()]).set_index("map")


def drop_note(results: dict, class_name: str) -> str:
    """One line under the faithfulness table: what average drop measures, and why a broad map (a baseline)
    can score a lower drop than a method, with the share of the photo each map keeps (computed, not typed)."""
    kept = ", ".join(f"{title(m)} {fmt(r.get('kept'), '.0%')}" for m, r in results.items())
    return (f"**Reading average drop:** it is the share of p({class_name}) lost when the photo is multiplied by "
            "the map scaled to 0..1, so it rewards keeping the photo visible, not pointing at the object: a map "
            f"that keeps more of the photo (here {kept}) tends to lose less, which is how a baseline can beat a "
            "method on it.")


def sanity_chart(result) -> alt.Chart:
    rows = [{"blocks": i, "randomised from": s.randomised_from, "measure": k, "value": float(v)}
            for i, s in enumerate(result.steps, start=1) for k, v in (("Spearman", s.spearman), ("SSIM", s.ssim))]
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
        x=alt.X("blocks:Q", title=f"blocks re-initialised, from the top (1: {result.steps[0].randomised_from}) "
                                  f"down ({len(result.steps)}: {result.steps[-1].randomised_from})",
                axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", scale=alt.Scale(domain=[-0.5, 1]), title="similarity to the original map"),
        color=alt.Color("measure:N", scale=alt.Scale(domain=["Spearman", "SSIM"], range=["#d62728", "#1f77b4"]),
                        legend=alt.Legend(orient="bottom")),
        tooltip=["randomised from", "measure", alt.Tooltip("value:Q", format=".3f")]).properties(height=320)
