"""core.view: a view as a link, both ways."""
from core import models, view

STEMS = ["cat_and_dog", "dog"]


def test_a_view_survives_the_round_trip_through_its_link():
    spec = models.get_spec("efficientnet_lite0")
    for layer in spec.layers:
        for cls, method, alpha in ((0, "gradcam", 0.0), (999, "scorecam", 1.0), (285, "layercam", 0.45)):
            params = view.to_params(spec.name, "dog", layer, cls, method, alpha)
            v = view.parse(params, STEMS, models.DEFAULT_MODEL)
            assert (v.model, v.sample, v.layer, v.class_index, v.method, v.alpha) == \
                (spec.name, "dog", layer, cls, method, alpha)
            assert v.message is None


def test_each_bad_part_is_ignored_and_named_and_the_rest_is_kept():
    bad = {"model": "alexnet", "sample": "../etc/passwd", "layer": "fc8", "class": "-1", "method": "magic",
           "alpha": "1.5"}
    for key, value in bad.items():
        good = {"model": "efficientnet_lite0", "sample": "dog", "layer": "top_activation", "class": "5",
                "method": "gradcam", "alpha": "0.3"}
        v = view.parse({**good, key: value}, STEMS, models.DEFAULT_MODEL)
        assert len(v.ignored) == 1 and value in v.message and "\n" not in v.message
        kept = {"model": v.model, "sample": v.sample, "layer": v.layer, "class": v.class_index,
                "method": v.method, "alpha": v.alpha}
        assert kept.pop(key) is None and all(x is not None for x in kept.values())


def test_odd_values_never_raise():
    for value in ("", " ", "nan", "inf", "1e400", "0x10", "٣", ["a", "b"], [], "None", "🙂" * 100):
        v = view.parse({k: value for k in view.KEYS}, STEMS, models.DEFAULT_MODEL)
        assert v.alpha is None or 0 <= v.alpha <= 1
        assert v.class_index is None or 0 <= v.class_index < 1000
    assert view.parse({}, STEMS, models.DEFAULT_MODEL) == view.View()
