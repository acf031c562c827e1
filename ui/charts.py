"""Altair charts used by the pages."""
from __future__ import annotations

import altair as alt
import pandas as pd

from core import labels


def top_k_chart(top: list[tuple[int, float]], highlight: int) -> alt.Chart:
    """Horizontal bars of the top-k probabilities; the explained class in a contrasting colour."""
    df = pd.DataFrame({
        "class": [f"{labels.label(i)} [{i}]" for i, _ in top],
        "probability": [p for _, p in top],
        "explained": ["explained class" if i == highlight else "other" for i, _ in top],
    })
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y("class:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            color=alt.Color("explained:N", scale=alt.Scale(domain=["explained class", "other"],
                                                             range=["#d62728", "#9ecae1"]), legend=None),
            tooltip=["class", alt.Tooltip("probability:Q", format=".2%")],
        )
        .properties(height=34 * len(top) + 30)
    )
