"""``python -m core bench``: every figure of ``--json`` from one run, and the switch through the models (in a file of
its own, the suite's longest test, so that the test processes share the work evenly)."""
import json

import pytest

from core.cli import main


def test_bench_json_has_every_figure(capsys):
    assert main(["bench", "--json", "--repeats", "1", "--cold-runs", "2"]) == 0  # each figure once: that it exists
    d = json.loads(capsys.readouterr().out)
    for k in ("forward_ms", "floor_ms", "explain_ms", "rerender_ms", "keras_example_ms", "peak_rss_mb",
              "explain_over_floor", "keras_example_over_explain", "mask_ms", "occlusion_map_ms"):
        assert isinstance(d[k], float) and d[k] > 0, k
    assert d["explain_over_floor"] == pytest.approx(d["explain_ms"] / d["floor_ms"], rel=0.01)
    assert d["occlusion_forward_passes"] == 11  # 13×13 positions of a 32-px patch, stride 16, in batches of 16
    from core.cam import methods

    assert set(d["methods_ms"]) == set(methods.names())
    assert all(v > 0 for v in d["methods_ms"].values())
    # a cold start in a fresh process, and its parts
    parts = d["cold_start_parts"]
    assert set(parts) == {"import_s", "load_s", "first_pass_s"} and all(v > 0 for v in parts.values())
    assert parts["import_s"] > parts["load_s"] and d["cold_start_s"] > parts["load_s"] + parts["first_pass_s"]
    # the app on a real streamlit server, driven by Chromium (make test installs both)
    for k in ("session_cpu_s", "rerender_cpu_s", "first_paint_s", "first_map_s", "server_peak_mb", "server_start_s"):
        assert isinstance(d[k], float) and d[k] > 0, k
    assert d["first_paint_s"] < d["first_map_s"]
    assert len(d["first_paint_runs"]) == len(d["first_map_runs"]) == 2  # two fresh servers, their medians
    assert d["first_paint_s"] == pytest.approx(sum(d["first_paint_runs"]) / 2, abs=0.011)
    # training (issue 12) and measuring (issue 13)
    for k in ("train_features_ms_per_image", "forward_batch_ms_per_image", "train_head_ms", "finetune_ms",
              "deletion_ms", "forward20_ms", "sanity_ms", "lesson_check_cpu_s", "lesson_cover_range_cpu_s",
              "instructor_refresh_cpu_s",
              "live_fps", "live_latency_ms_p50", "live_latency_ms_p95", "live_explain_rerender_ratio",
              "live_fps_3_viewers_beside_explain"):
        assert isinstance(d[k], float) and d[k] > 0, k
    # the dataset figures come from the shared evaluation set, which the benchmark finds beside the checkout; a clone
    # without it gets every other figure, and where the set is required (.ci/run) they must be there
    from bench import eval_dir
    from conftest import eval_required

    if (eval_dir() / "annotations.csv").exists() or eval_required():
        for k in ("explain_images_per_s", "evaluate_images_per_s"):
            assert isinstance(d.get(k), float) and d[k] > 0, (k, eval_dir())
    else:
        assert "evaluate_images_per_s" not in d  # left out, not made up
    assert d["train_features_over_forward"] == pytest.approx(
        d["train_features_ms_per_image"] / d["forward_batch_ms_per_image"], rel=0.02)
    # the head's search: 6 strengths × 5 folds and the final fit, each solved to convergence
    assert d["train_head_solves"] == 31 and d["train_head_converged"] is True
    assert d["finetune_epochs"] == 3 and d["finetune_images"] == 160


def test_bench_switch_goes_through_the_models_with_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no Keras weights here: only the offline default
    assert main(["bench", "--switch", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["models"] == ["efficientnet_lite0"] and len(d["skipped_no_weights"]) == 5
    assert list(d["peak_rss_mb_after_model"]) == ["1:efficientnet_lite0", "2:efficientnet_lite0"]
    assert d["in_memory_at_end"] == ["efficientnet_lite0"] and d["peak_rss_mb"] > 0
