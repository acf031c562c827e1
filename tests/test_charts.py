"""The Explain page's top-k chart: a valid Vega-Lite spec of the bars in the given order, the explained class
in its own colour, its rows inside its one layer (Streamlit takes a top-level ``data`` through pandas)."""
import altair as alt

from ui.charts import top_k_chart


def test_the_top_k_spec_is_valid_vega_lite_with_its_bars_in_order():
    top = [(285, 0.61), (281, 0.2), (235, 0.05)]
    spec = top_k_chart(top, 235, label=lambda i: {285: "Egyptian cat", 281: "tabby", 235: "German Shepherd"}[i])
    alt.LayerChart.from_dict(spec)  # validated against Vega-Lite's schema (raises on an invalid spec)
    assert "data" not in spec and "datasets" not in spec
    (layer,) = spec["layer"]
    rows = layer["data"]["values"]
    assert [r["class"] for r in rows] == ["Egyptian cat [285]", "tabby [281]", "German Shepherd [235]"]
    assert [r["probability"] for r in rows] == [0.61, 0.2, 0.05]
    assert [r["explained"] for r in rows] == ["other", "other", "explained class"]
    enc = layer["encoding"]
    assert enc["y"]["sort"] is None  # the bars keep the top-k order
    assert enc["x"]["scale"]["domain"] == [0, 1]
    assert dict(zip(enc["color"]["scale"]["domain"], enc["color"]["scale"]["range"]))["explained class"] == "#d62728"
    assert spec["height"] == 34 * 3 + 30


def test_the_regularisation_chart_shows_each_strength_and_marks_the_chosen_one():
    import altair as alt

    from core.training.head import L2_GRID
    from ui.charts import regularisation_chart

    curve = [{"l2": v, "accuracy": a, "right": round(a * 40), "images": 40, "fold_accuracy_sd": 0.05, "loss": l,
              "loss_se": 0.02, "iterations": 10, "chosen": v == 0.01}
             for v, a, l in zip(L2_GRID, [0.7, 0.85, 0.9, 0.9, 0.875, 0.85], [0.9, 0.5, 0.3, 0.32, 0.4, 0.5])]
    spec = regularisation_chart(curve).to_dict()
    alt.HConcatChart.from_dict(spec)  # a valid Vega-Lite spec
    rows = next(iter(spec["datasets"].values()))
    assert [r["λ"] for r in rows] == list(L2_GRID) and [r["chosen"] for r in rows].count("chosen") == 1
    assert next(r for r in rows if r["chosen"] == "chosen")["λ"] == 0.01
    assert {r["right"] for r in rows} >= {"28 of 40", "36 of 40"}  # counts beside the shares, in the tooltips
    x = spec["hconcat"][0]["layer"][1]["encoding"]["x"]
    assert x["scale"] == {"type": "log", "reverse": True} and x["axis"]["labelFlush"] is False
