"""Charts used by the pages: the top-k bars as a plain Vega-Lite spec, the others as Altair charts."""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.imaging import labels

if TYPE_CHECKING:  # altair and pandas load when a chart is drawn: 0.7 s that no page title should wait for
    import altair as alt
    import pandas as pd


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
