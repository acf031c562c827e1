"""Every chart the pages draw, in one place: the Explain page's top-k bars (a plain Vega-Lite spec), and as Altair
charts the Occlude page's before/after bars, the Learn page's channel weights, the Measure page's IoU, deletion /
insertion, ROAD and sanity curves, and the Train page's regularisation search, fine-tuning history and confusion matrix.

Each function takes plain figures and returns a chart; the pages only draw it. Altair and pandas are imported
inside the functions that need them, when a chart is drawn: a page's title never waits for them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.imaging import labels

if TYPE_CHECKING:  # altair and pandas load when a chart is drawn: 0.7 s that no page title should wait for
    import altair as alt
    import pandas as pd


# --- Explain and Occlude ------------------------------------------------------------------------------------
def _imagenet(i: int) -> str:
    return labels.label(i)


def top_k_chart(top: list[tuple[int, float]], highlight: int, label=_imagenet) -> dict:
    """Horizontal bars of the top-k probabilities, the explained class in a contrasting colour: a Vega-Lite
    spec for ``st.vega_lite_chart``. ``label(index)`` names a class (the model's ``spec.label``).

    A plain spec, not an Altair chart: this chart is on the first page every visitor sees, and Altair's
    import plus its first schema validation cost 0.5-0.6 s of the first map on the 2-core machine."""
    rows = [{"class": f"{label(i)} [{i}]", "probability": float(p),
             "explained": "explained class" if i == highlight else "other"} for i, p in top]
    return {
        # the height of the bars' own area, a row per class; the axis comes on top. Streamlit's default autosize
        # ("fit") squeezed the axis into this height too: two rows got about 10 px each, their labels overlapping
        "height": 34 * len(top) + 30,
        "autosize": {"type": "fit-x", "contains": "padding"},
        # the rows inside a layer: Streamlit sends a top-level ``data`` through pandas and Arrow (pandas'
        # import is 0.2-0.3 s of CPU on the first page), a layer's stays in the spec as it is
        "layer": [{
            "data": {"values": rows},
            "mark": {"type": "bar"},
            "encoding": {
                "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                      "axis": {"format": "%"}},
                "y": {"field": "class", "type": "nominal", "sort": None, "title": None, "axis": {"labelLimit": 260}},
                "color": {"field": "explained", "type": "nominal", "legend": None,
                          "scale": {"domain": ["explained class", "other"], "range": ["#d62728", "#9ecae1"]}},
                "tooltip": [{"field": "class", "type": "nominal"},
                            {"field": "probability", "type": "quantitative", "format": ".2%"}],
            },
        }],
    }


def change_table(before, after, k: int, label=_imagenet) -> pd.DataFrame:
    """Rows for the union of both top-k lists: probability before/after, change, entered/left."""
    import pandas as pd  # here, not at import: the pages draw their title first

    top_b = [i for i, _ in before.top_k(k)]
    top_a = [i for i, _ in after.top_k(k)]
    rows = []
    for i in list(dict.fromkeys(top_b + top_a)):
        status = "" if i in top_b and i in top_a else ("entered top-k" if i in top_a else "left top-k")
        mark = {"": "", "entered top-k": "  ▲ new in top-k", "left top-k": "  ▼ left top-k"}[status]
        rows.append({"class": f"{label(i)} [{i}]{mark}", "index": i, "before": float(before.probs[i]),
                     "after": float(after.probs[i]), "change": float(after.probs[i] - before.probs[i]),
                     "status": status})
    return pd.DataFrame(rows)


CHANGE_X_MAX = 1.14  # the x scale runs past 100 % so that the label of a bar near 100 % still fits beside it
CHANGE_TICKS = [i / 10 for i in range(11)]  # 0..100 %: no tick in the labels' margin
CHANGE_LABEL_DX = 4  # px between a class's longer bar and its change label


def change_chart(table: pd.DataFrame, highlight: int) -> alt.Chart:
    """Before/after bars per class, the change in red (drop) or green (rise); ▲/▼ mark classes entering/leaving.

    Each change label sits just right of its class's longer bar (before or after), never on a bar."""
    import altair as alt  # here, not at import: the pages draw their title first

    long = table.melt(id_vars=["class", "index", "status", "change"], value_vars=["before", "after"],
                      var_name="photo", value_name="probability")
    long["photo"] = long["photo"].map({"before": "original", "after": "occluded"})
    order = list(table["class"])
    bars = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("class:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)),
            yOffset=alt.YOffset("photo:N", sort=["original", "occluded"]),
            x=alt.X("probability:Q", title="probability", axis=alt.Axis(format="%", values=CHANGE_TICKS),
                    scale=alt.Scale(domain=[0, CHANGE_X_MAX])),
            color=alt.Color("photo:N", scale=alt.Scale(domain=["original", "occluded"], range=["#9ecae1", "#08519c"]),
                            legend=alt.Legend(orient="bottom", title=None)),
            tooltip=["class", "photo", alt.Tooltip("probability:Q", format=".2%"),
                     alt.Tooltip("change:Q", format="+.2%"), "status"],
        )
    )
    labels_ = (
        alt.Chart(table)
        # in percentage points, as the page's headline and table say ("+27.4%" read as a relative change)
        .transform_calculate(end="max(datum.before, datum.after)",
                             points="format(datum.change * 100, '+.1f') + ' pts'")
        .mark_text(align="left", baseline="middle", dx=CHANGE_LABEL_DX, fontWeight="bold")
        .encode(
            y=alt.Y("class:N", sort=order),
            x=alt.X("end:Q", title="probability"),  # the end of the longer bar: the label starts beside it
            text=alt.Text("points:N"),
            color=alt.condition("datum.change < 0", alt.value("#d62728"), alt.value("#2ca02c")),
        )
    )
    return alt.layer(bars, labels_).properties(height=48 * len(table) + 40)


# --- Learn --------------------------------------------------------------------------------------------------
def channel_weights_chart(alpha: np.ndarray, shown: int = 24) -> alt.Chart:
    """Grad-CAM's channel weights α: the ``shown`` channels with the largest |α|, raising the score in green,
    lowering it in red."""
    import altair as alt
    import pandas as pd

    order = np.argsort(-np.abs(alpha))[:shown]
    df = pd.DataFrame({"channel": [f"#{i}" for i in order], "alpha": alpha[order],
                       "sign": np.where(alpha[order] >= 0, "raises the score", "lowers the score")})
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("channel:N", sort=None, title=f"the {min(shown, len(alpha))} channels with the largest |α| "
                                              f"(of {len(alpha)})"),
        y=alt.Y("alpha:Q", title="α (mean gradient)"),
        color=alt.Color("sign:N", scale=alt.Scale(domain=["raises the score", "lowers the score"],
                                                  range=["#2ca02c", "#d62728"]), legend=alt.Legend(orient="bottom")),
        tooltip=["channel", alt.Tooltip("alpha:Q", format=".3e")],
    ).properties(height=240)


# --- Measure: one colour and one title per map on every chart -----------------------------------------------
BASELINE_TITLES = {"random": "Random map (baseline)", "centre": "Centre prior (baseline)",
                   "edges": "Edges of the photo (baseline)"}


def map_title(name: str) -> str:
    """A map's name on screen: the method's title, or the baseline's."""
    from core.cam import methods

    return methods.REGISTRY[name].title if name in methods.REGISTRY else BASELINE_TITLES[name]


PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#bcbd22", "#8c564b")
BASELINE_COLOURS = {"random": "#9e9e9e", "centre": "#5d4037", "edges": "#000000"}


def _colour(names, legend_title: str = "map") -> alt.Color:
    """One colour per map, the same on every chart: the methods in strong colours, the baselines gray and brown."""
    import altair as alt

    methods_ = [m for m in names if m not in BASELINE_COLOURS]
    domain = [map_title(m) for m in methods_] + [map_title(m) for m in names if m in BASELINE_COLOURS]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(methods_))] + \
              [BASELINE_COLOURS[m] for m in names if m in BASELINE_COLOURS]
    return alt.Color("map:N", scale=alt.Scale(domain=domain, range=colours),
                     legend=alt.Legend(orient="bottom", title=legend_title))


def iou_chart(locs: dict, threshold: float) -> alt.Chart:
    """IoU of each map's box against the threshold, the slider's threshold dashed."""
    import altair as alt
    import pandas as pd

    rows = [{"map": map_title(m), "threshold": float(t), "IoU": float(v)}
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
    import altair as alt
    import pandas as pd

    rows = []
    for m, r in results.items():
        for kind in ("deletion", "insertion"):
            rows += [{"map": map_title(m), "curve": CURVES[kind][0], "fraction": float(f), "probability": float(p)}
                     for f, p in zip(r["fractions"], r[kind])]
    base = alt.Chart(pd.DataFrame(rows)).encode(
        x=alt.X("fraction:Q", title="fraction of the pixels removed (deletion) / revealed (insertion)",
                axis=alt.Axis(format="%")),
        y=alt.Y("probability:Q", title=f"p({class_name})", axis=alt.Axis(format="%")),
        color=_colour(list(results)))
    return _dashed_curves(base, CURVES, alt.Tooltip("fraction:Q", format=".0%"),
                          alt.Tooltip("probability:Q", format=".2%")).properties(height=420)


def _dashed_curves(base, curves: dict, x_tip, y_tip):
    """``base`` drawn as lines, one line style per curve kind (``curves``: kind → (title, dash)) with its legend
    on top, and points that name the map, the curve and both values."""
    import altair as alt

    dash = alt.StrokeDash("curve:N", title="curve (line style)",
                          scale=alt.Scale(domain=[c[0] for c in curves.values()], range=[c[1] for c in curves.values()]),
                          legend=alt.Legend(orient="top", symbolType="stroke", symbolSize=576, symbolStrokeWidth=2,
                                            symbolStrokeColor="#31333f", symbolFillColor="transparent", labelLimit=260))
    lines = base.mark_line().encode(strokeDash=dash)
    points = base.mark_point(filled=True, size=18, opacity=1).encode(tooltip=["map", "curve", x_tip, y_tip])
    return alt.layer(lines, points)


ROAD_CURVES = {"morf": ("most relevant removed first (MoRF)", [1, 0]),
               "lerf": ("least relevant removed first (LeRF)", [6, 3])}


def road_chart(results: dict, class_name: str) -> alt.Chart:
    """ROAD: the change of the class probability against the share of pixels removed and imputed, MoRF solid
    and LeRF dashed, one colour per map (``results``: map → :class:`core.metrics.road.Road`)."""
    import altair as alt
    import pandas as pd

    rows = []
    for m, r in results.items():
        for kind in ("morf", "lerf"):
            rows += [{"map": map_title(m), "curve": ROAD_CURVES[kind][0], "removed": float(f), "change": float(v)}
                     for f, v in zip(r.removed, getattr(r, kind))]
    base = alt.Chart(pd.DataFrame(rows)).encode(
        x=alt.X("removed:Q", title="share of the pixels removed and imputed", axis=alt.Axis(format="%")),
        y=alt.Y("change:Q", title=f"change of p({class_name})", axis=alt.Axis(format="+%")),
        color=_colour(list(results)))
    return _dashed_curves(base, ROAD_CURVES, alt.Tooltip("removed:Q", format=".0%"),
                          alt.Tooltip("change:Q", format="+.2%")).properties(height=380)


def sanity_chart(result) -> alt.Chart:
    """Spearman's ρ and SSIM to the original map, per block re-initialised from the top down."""
    import altair as alt
    import pandas as pd

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


# --- Train --------------------------------------------------------------------------------------------------
def regularisation_chart(curve: list[dict]) -> alt.HConcatChart:
    """Cross-validated accuracy (with the spread between folds) and held-out loss against the regularisation
    strength λ, the chosen strength marked: what the head-only search looked at."""
    import altair as alt  # here, not at import: the pages draw their title first
    import pandas as pd

    rows = [{"λ": r["l2"], "accuracy": r["accuracy"], "low": max(0.0, r["accuracy"] - r["fold_accuracy_sd"]),
             "high": min(1.0, r["accuracy"] + r["fold_accuracy_sd"]), "loss": r["loss"],
             "right": f"{r['right']} of {r['images']}", "chosen": "chosen" if r.get("chosen") else "tried"}
            for r in curve if np.isfinite(r["loss"]) and np.isfinite(r["accuracy"])]
    df = pd.DataFrame(rows, columns=["λ", "accuracy", "low", "high", "loss", "right", "chosen"])
    x = alt.X("λ:Q", scale=alt.Scale(type="log", reverse=True),
              axis=alt.Axis(values=[r["λ"] for r in rows], labelFlush=False,  # each label under its point
                            labelExpr="datum.value >= 0.001 ? format(datum.value, '~g') : "
                                      "replace(format(datum.value, '.0e'), 'e-0', 'e-')"),  # as strength_text
              title="regularisation strength λ (strong → weak)")
    colour = alt.Color("chosen:N", scale=alt.Scale(domain=["tried", "chosen"], range=["#1f77b4", "#d62728"]),
                       legend=alt.Legend(orient="bottom", title=None))
    tip = [alt.Tooltip("λ:Q", format=".0e"), "right", alt.Tooltip("accuracy:Q", format=".1%"),
           alt.Tooltip("loss:Q", format=".4f")]
    base = alt.Chart(df).encode(x=x)
    acc = alt.layer(
        base.mark_rule(color="#9ecae1").encode(y="low:Q", y2="high:Q"),
        base.mark_line(color="#1f77b4").encode(y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]),
                                                       axis=alt.Axis(format="%", labelFlush=False),
                                                       title="cross-validated accuracy")),
        base.mark_point(filled=True, size=70).encode(y="accuracy:Q", color=colour, tooltip=tip),
    ).properties(height=220, width=320, title="accuracy on the images each fold left out")
    loss = alt.layer(
        base.mark_line(color="#ff7f0e").encode(y=alt.Y("loss:Q", title="held-out cross-entropy",
                                                       axis=alt.Axis(labelFlush=False))),
        base.mark_point(filled=True, size=70).encode(y="loss:Q", color=colour, tooltip=tip),
    ).properties(height=220, width=320, title="loss on them (lowest: chosen)")
    return alt.hconcat(acc, loss)


def history_chart(history: list[dict]) -> alt.HConcatChart:
    """Loss and accuracy per fine-tuning epoch, training and validation, side by side (non-finite values left
    out)."""
    import altair as alt  # here, not at import: the pages draw their title first
    import pandas as pd

    rows = []
    for r in history:
        for metric in ("loss", "accuracy"):
            for split, key in (("training", metric), ("validation", f"val_{metric}")):
                v = r.get(key)
                if v is not None and np.isfinite(v):
                    rows.append({"epoch": int(r["epoch"]), "metric": metric, "split": split, "value": float(v),
                                 "phase": r.get("phase", "head")})
    df = pd.DataFrame(rows, columns=["epoch", "metric", "split", "value", "phase"])
    charts = []
    for metric in ("loss", "accuracy"):
        y = alt.Y("value:Q", title=metric, scale=alt.Scale(domain=[0, 1]) if metric == "accuracy" else alt.Undefined,
                  axis=alt.Axis(format="%") if metric == "accuracy" else alt.Undefined)
        charts.append(
            alt.Chart(df[df["metric"] == metric]).mark_line(point=True)
            .encode(x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=y,
                    color=alt.Color("split:N", scale=alt.Scale(domain=["training", "validation"],
                                                               range=["#1f77b4", "#ff7f0e"]),
                                    legend=alt.Legend(orient="bottom", title=None)),
                    tooltip=["epoch", "split", "phase", alt.Tooltip("value:Q", format=".4f")])
            .properties(height=220, width=320, title=metric))
    return alt.hconcat(*charts)


def confusion_chart(matrix: np.ndarray, classes: list[str]) -> alt.LayerChart:
    """Counts of (true, predicted) over the evaluated images, the diagonal being the right ones."""
    import altair as alt  # here, not at import: the pages draw their title first
    import pandas as pd

    rows = [{"true": classes[t], "predicted": classes[p], "count": int(matrix[t, p]), "right": t == p}
            for t in range(len(classes)) for p in range(len(classes))]
    df = pd.DataFrame(rows)
    base = alt.Chart(df).encode(x=alt.X("predicted:N", sort=classes, title="predicted", axis=alt.Axis(labelAngle=0)),
                                y=alt.Y("true:N", sort=classes, title="true"))
    side = max(160, min(560, 48 * len(classes)))
    cells = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"), legend=None),
                                    tooltip=["true", "predicted", "count"])
    text = base.mark_text(fontWeight="bold").encode(
        text="count:Q", color=alt.condition("datum.count > 0 && datum.right", alt.value("white"), alt.value("black")))
    return alt.layer(cells, text).properties(width=side, height=side)
