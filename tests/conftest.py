"""Shared fixtures, the two tiers' markers, and the shared evaluation set.

Tiers: ``make test`` runs everything; ``make test-fast`` runs ``-m "not slow and not e2e"`` (the Makefile runs the
tests outside ``tests/e2e/`` in two processes). Every test under ``tests/e2e/`` is marked ``e2e`` here by its path,
and the tests in :data:`SLOW` are marked ``slow`` (a whole module by its file name, or one test by its node id); the
fast tier keeps a quick test of every package.

The shared evaluation set (400 ImageNet validation photos with boxes, beside the clone, never shipped) is found
at ``$GRADCAM_STUDIO_EVAL_DIR`` (default ``../shared/data/imagenet-val-loc`` beside the checkout). A test that
needs it takes the :func:`eval_set` fixture (or :func:`dog_bird_other`), which fails it in one line naming the
folder where it is absent (never a skip: a skipped test proves nothing); with ``GRADCAM_STUDIO_REQUIRE_EVAL=1``
(``.ci/run``) the run also fails if any of those tests was skipped for any other reason.
"""
import os
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ASSETS = ROOT / "assets"

from bench import EVAL_DIR_ENV, eval_dir  # noqa: E402  (after the checkout is on the path)

REQUIRE_EVAL_ENV = "GRADCAM_STUDIO_REQUIRE_EVAL"
SHARED = eval_dir()

# Left out of the fast tier: a module's file name (every test in it), a test's node id without its parameters
# (every case), or with them (that case): each took 1 s or more on the 2-core machine, where a quicker test of the
# same package stays in the fast tier; together over nine tenths of the suite's time outside tests/e2e/.
SLOW = {
    "tests/test_server.py::test_tensorflows_native_start_up_lines_stay_off_stderr",
    # the shared evaluation set's 400 photos, Ray, training runs, VGG16's 500 MB
    "test_cli_train.py", "test_evaluate.py", "test_head_tasks.py", "test_measure_imagenet.py",
    "test_train_page.py", "test_train_page_more.py", "test_vgg16.py",
    "tests/test_measure_ray.py::test_ray_equals_the_local_run",
    "tests/test_training.py::test_the_head_solves_the_regularised_regression_to_its_optimum",
    "tests/test_training.py::test_cross_validation_reports_what_it_saw",
    "tests/test_training.py::test_trained_model_reaches_the_head_accuracy_through_the_engine",
    "tests/test_training.py::test_gradcam_equals_cam_at_the_last_layer_and_points_into_the_boxes",
    "tests/test_training.py::test_a_planted_shortcut_is_learned_and_grad_cam_finds_it",
    "tests/test_live.py::test_a_model_trained_here_runs_live_with_its_own_class_names",
    "tests/test_live.py::test_a_process_that_ends_while_a_camera_streams_ends_the_worker_first_and_exits_cleanly",
    # pages: Compare's grid, Score-CAM's passes, a trained model's engine, the page against the CLI
    "tests/test_app.py::test_compare_page_grid_and_controls",
    "tests/test_app.py::test_cam_and_score_cam_on_the_explain_page",
    "tests/test_app.py::test_start_up_work_runs_in_the_background_and_fills_the_cache",
    # the registered methods at the model input on the pages (RISE's 1,000 masks, Score-CAM, Guided Grad-CAM)
    "tests/test_pages_new_methods.py::test_every_registered_method_on_explain_once_per_view",
    "tests/test_pages_new_methods.py::test_compare_with_the_gradient_methods_at_the_input",
    "tests/test_pages_new_methods.py::test_learn_opens_guided_grad_cam_on_the_photo",
    "tests/test_first_user_explain.py::test_after_an_upload_the_class_radio_shows_the_explained_class[trained]",
    "tests/test_first_user_explain.py::test_top_k_offers_at_most_the_models_classes_and_the_chart_says_the_real_k",
    "tests/test_first_user_explain.py::test_model_names_fit_the_sidebar_and_the_help_names_each_in_full",
    "tests/test_measure_page.py::test_a_trained_model_in_the_sidebar_is_measured_with_its_own_classes",
    "tests/test_measure_page.py::test_the_page_equals_the_cli_per_image_lines",
    "tests/test_measure_page.py::test_the_sanity_cascade_destroys_grad_cams_map_and_leaves_the_pool_alone",
    # the command line in subprocesses: the benchmark, every method, occlusion, every model, workers
    "tests/test_bench.py::test_bench_json_has_every_figure",
    "tests/test_bench.py::test_bench_switch_goes_through_the_models_with_weights",
    "tests/test_cli.py::test_every_method_through_the_cli",
    "tests/test_cli.py::test_explain_with_a_mask_and_occlusion_method",
    "tests/test_cli.py::test_models_json",
    "tests/test_measure_cli.py::test_evaluate_json_with_workers_equals_one_process",
    "tests/test_measure_cli.py::test_sanity_json_steps_from_the_top_block_down",
    "tests/test_measure_cli.py::test_evaluate_and_sanity_refuse_in_one_line",
    # fresh interpreters importing TensorFlow, and the public path's own engine
    "tests/test_compat.py::test_lite0_on_the_public_path_computes_what_the_held_path_computes",
    "tests/test_compat.py::test_the_start_up_work_collects_what_a_page_let_go_then_freezes_what_is_alive",
    "tests/test_compat.py::test_a_failed_probe_is_one_warning_line_and_the_public_path",
    "tests/test_compat.py::test_keras_imports_without_pyplot_or_pandas_and_both_still_import_afterwards",
    "tests/test_pacing.py::test_tensorflow_import_gives_way_and_the_pages_imports_go_on",
    "tests/test_server.py::test_tensorflows_native_start_up_lines_stay_off_stderr",
    # the Keras zoo's big models, built and compared
    "tests/test_fold.py::test_engine_computes_what_keras_applications_imagenet_model_computes",
    "tests/test_fold.py::test_folding_keeps_every_explainable_layer_and_the_logits[efficientnet_b0]",
    "tests/test_fold.py::test_folding_keeps_every_explainable_layer_and_the_logits[mobilenet_v2]",
    "tests/test_fold.py::test_folding_keeps_every_explainable_layer_and_the_logits[resnet50]",
    "tests/test_fold.py::test_folding_keeps_every_explainable_layer_and_the_logits[xception]",
    "tests/test_fold.py::test_held_weights_leave_tensorflow_alone_and_go_with_the_engine[then folded in the buffer]",
    "tests/test_fold.py::test_lite0_built_folded_is_bitwise_the_folded_copy_of_the_built_model",
    "tests/test_lite_port.py::test_converted_weights_are_cached_and_reused",
    "tests/test_models.py::test_keras_models_build_offline_with_their_layers[efficientnet_b0]",
    "tests/test_models.py::test_keras_models_build_offline_with_their_layers[resnet50]",
    "tests/test_models.py::test_keras_models_build_offline_with_their_layers[vgg16]",
    "tests/test_models.py::test_keras_models_build_offline_with_their_layers[xception]",
    "tests/test_models.py::test_cached_weights_file_loads_without_network",
    "tests/test_models.py::test_engine_on_a_keras_architecture_gives_every_layer",
    "tests/test_pool_cache.py::test_pool_keeps_models_within_its_budget_and_a_big_one_alone",
    "tests/test_pool_cache.py::test_a_model_in_memory_is_served_while_another_loads",
    "tests/test_pool_cache.py::test_a_dropped_engine_is_freed_although_its_trace_used_custom_gradients",
    "tests/test_trained_file.py::test_save_then_load_gives_identical_logits_and_names",
    # models trained inside the test, Score-CAM and occlusion sweeps, the memory-bounded refusals
    "tests/test_gradcam_properties.py::test_gradcam_of_a_trained_cnn_peaks_inside_the_shape",
    "tests/test_sanity.py::test_insertion_of_the_true_region_is_near_its_maximum_and_beats_a_random_map",
    "tests/test_sanity.py::test_gradcam_points_at_the_region_and_the_cascade_destroys_it",
    "tests/test_sanity.py::test_a_map_that_ignores_the_model_survives_the_cascade",
    "tests/test_sanity.py::test_input_normalisation_is_not_a_block_of_the_cascade",
    "tests/test_methods.py::test_scorecam_batched_equals_unbatched",
    "tests/test_methods.py::test_scorecam_top_n_uses_only_n_channels",
    "tests/test_reference_pgc.py::test_maps_agree_with_pytorch_grad_cam[dog.png|head|scorecam]",
    "tests/test_reference_pgc.py::test_maps_agree_with_pytorch_grad_cam[dog.png|block10|scorecam]",
    "tests/test_reference_pgc.py::test_maps_agree_with_pytorch_grad_cam[cat_and_dog.png|block10|scorecam]",
    "tests/test_reference_pgc.py::test_maps_agree_with_pytorch_grad_cam[coffee.png|block10|scorecam]",
    "tests/test_occlusion.py::test_sensitivity_map_of_a_synthetic_image_peaks_on_the_object",
    "tests/test_occlusion.py::test_sensitivity_on_cat_and_dog_supports_the_cat_side",
    "tests/test_hostile_models.py::test_hostile_file_is_refused_in_one_sentence_with_memory_bounded",
    "tests/test_hostile_models.py::test_the_upload_path_refuses_them_alike",
    "tests/test_hostile_data.py::test_names_from_files_reach_the_terminal_escaped",
    "tests/test_hostile_data.py::test_a_zip_of_20000_small_images_stops_at_the_datasets_budget_in_one_line",
    "tests/test_metrics_quantus.py::test_deletion_insertion_pointing_and_energy_match_quantus",
    # the gradient methods at the input: integrated gradients to 512 steps, every zoo model, the CLI, guided traces
    "tests/test_gradient_methods.py::test_integrated_gradients_approach_completeness_on_real_photos",
    "tests/test_gradient_methods.py::test_every_new_method_on_every_zoo_model",
    "tests/test_gradient_methods.py::test_explain_cli_takes_the_new_flags",
    "tests/test_gradient_methods.py::test_guided_gradient_equals_the_hand_computed_one_for_relu_and_relu6",
    "tests/test_gradient_methods.py::test_guided_gradcam_is_guided_backprop_times_the_upsampled_gradcam",
    "tests/test_gradient_methods.py::test_smoothgrad_is_seeded_batched_and_zero_noise_is_the_plain_gradient",
    *(f"tests/test_reference_gradients.py::test_maps_agree_with_captum_and_pytorch_grad_cam[{p}.png|ig_{b}]"
      for p in ("cat_and_dog", "coffee", "dog") for b in ("black", "blur")),
    # ROAD's 18 imputations per map, the edges baseline's cascade, the Measure page's ranking
    "tests/test_road.py::test_road_batch_and_the_cli_field",
    "tests/test_road.py::test_imputed_images_equal_pytorch_grad_cams_for_the_same_mask",
    "tests/test_road.py::test_road_equals_pytorch_grad_cams_where_the_masks_agree",
    "tests/test_road.py::test_evaluate_takes_road_and_edges_on_the_command_line",
    "tests/test_edges_baseline.py::test_sanity_of_edges_on_lite0_is_unchanged_at_every_step",
    "tests/test_measure_page.py::test_can_this_be_fooled_ranks_grad_cam_edges_and_random_with_real_numbers",
    # the sanity cascade's last step for every method on three photos of the shared set
    "test_sanity_methods.py",
    # lessons: the sanity check's randomised copy of Lite0, the lesson command line in subprocesses
    "tests/test_lesson_checks.py::test_choice_sanity_separates_grad_cam_guided_backprop_and_edges",
    "tests/test_lessons.py::test_cli_check_prints_one_line_per_problem_and_exits_2",
    "tests/test_lessons.py::test_cli_export_of_an_unknown_room_is_one_line",
    "tests/test_lessons.py::test_cli_export_writes_the_rooms_rows_as_csv",
    "tests/test_store.py::test_the_export_command_refuses_a_missing_sqlite_file_and_writes_safe_csv",
    # the workshop store against a PostgreSQL server the test starts, stops and restarts
    "test_store_postgres.py",
    # the Lesson page through every check kind, and the built-in lesson's exercises (its sanity check)
    "tests/test_lesson_page.py::test_every_check_kind_with_a_right_and_a_wrong_answer",
    "tests/test_lesson_page.py::test_the_builtin_lesson_end_to_end_with_scripted_answers",
}


@pytest.fixture(scope="session")
def lite_engine():
    """The offline default with its real ImageNet weights (shared by the whole session)."""
    from core import models
    from core.engine import Engine

    spec = models.get_spec("efficientnet_lite0")
    return Engine(spec, *models.load_inference(spec.name))


@pytest.fixture(scope="session")
def photos():
    from core.imaging import images

    return {p.name: images.load_path(p) for p in sorted(ASSETS.glob("*.jpg"))}


def eval_set_missing() -> str | None:
    """Why the shared evaluation set cannot be used (one line naming the variable), or None."""
    if (SHARED / "annotations.csv").is_file() and (SHARED / "images").is_dir():
        return None
    return (f"the shared evaluation set is not at {SHARED} (annotations.csv and images/): "
            f"set {EVAL_DIR_ENV} to its folder")


def eval_required() -> bool:
    return os.environ.get(REQUIRE_EVAL_ENV, "") not in ("", "0")


@pytest.fixture(scope="session")
def eval_set() -> Path:
    """The shared evaluation set's folder (``annotations.csv``, ``images/``); fails the test in one line where it
    is absent."""
    why = eval_set_missing()
    if why is not None:
        pytest.fail(why, pytrace=False)
    return SHARED


def pytest_collection_modifyitems(config, items):
    e2e = ROOT / "tests" / "e2e"
    modules = {}
    for item in items:
        path = Path(str(item.path))
        modules[path.name] = getattr(item, "module", None)
        if e2e in path.parents:
            item.add_marker(pytest.mark.e2e)
        if {path.name, item.nodeid, item.nodeid.split("[")[0]} & SLOW:
            item.add_marker(pytest.mark.slow)
        if "eval_set" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.evalset)
    # a renamed slow test would silently join the fast tier: name the entries whose test function is gone
    stale = sorted(e for e in SLOW if "::" in e and modules.get(e.split("::")[0].split("/")[-1]) is not None
                   and not hasattr(modules[e.split("::")[0].split("/")[-1]], e.split("::")[1].split("[")[0]))
    if stale:
        warnings.warn(pytest.PytestWarning("tests/conftest.py SLOW names tests that do not exist: " + ", ".join(stale)))


_EVAL_SKIPPED = pytest.StashKey["_EvalSkips"]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark the reports of a test on the evaluation set (they travel from pytest-xdist's workers with the mark)."""
    report = yield
    if "eval_set" in getattr(item, "fixturenames", ()):
        report.user_properties.append(("evalset", True))
    return report


class _EvalSkips:
    """The tests on the evaluation set that were skipped, for whatever reason (see pytest_sessionfinish): read from
    every report, so under pytest-xdist the controlling process sees its workers' tests too."""

    def __init__(self):
        self.nodeids: list[str] = []

    def pytest_runtest_logreport(self, report):
        if report.skipped and not hasattr(report, "wasxfail") and ("evalset", True) in report.user_properties:
            self.nodeids.append(report.nodeid)


def pytest_configure(config):
    config.stash[_EVAL_SKIPPED] = _EvalSkips()
    config.pluginmanager.register(config.stash[_EVAL_SKIPPED])


def pytest_sessionfinish(session, exitstatus):
    """With ``GRADCAM_STUDIO_REQUIRE_EVAL`` set (``.ci/run``), a skipped test on the evaluation set fails the run."""
    if eval_required() and session.config.stash[_EVAL_SKIPPED].nodeids and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = config.stash[_EVAL_SKIPPED].nodeids
    if eval_required() and skipped:
        terminalreporter.write_line(f"FAILED: {len(skipped)} test(s) on the shared evaluation set skipped although "
                                    f"{REQUIRE_EVAL_ENV} is set: " + ", ".join(skipped), red=True, bold=True)


def own_class(index: int) -> int:
    """dog (0) / bird (1) / everything else (2), by ImageNet class index: the own-classes task of the tests."""
    if 151 <= index <= 268:
        return 0
    if 7 <= index <= 24 or 80 <= index <= 100 or 127 <= index <= 146:
        return 1
    return 2


@pytest.fixture(scope="session")
def dog_bird_other(eval_set):
    """The shared 400 ImageNet validation images (never copied into the project) as three own classes:
    dict with thumbs (the Train page's thumbnails), labels, classes, files, imagenet (each image's ImageNet class
    index), boxes (file → boxes in the original's pixels) and sizes (file → the original's (width, height))."""
    import numpy as np
    from PIL import Image

    from core.metrics import read_boxes
    from core.training.data import example_from_bytes

    boxes = read_boxes(eval_set / "annotations.csv")
    files = sorted(boxes)
    thumbs = [example_from_bytes((eval_set / "images" / f).read_bytes(), f).thumb for f in files]
    labels = np.array([own_class(boxes[f][0]) for f in files])
    return {"thumbs": thumbs, "labels": labels, "classes": ["dog", "bird", "other"], "files": files,
            "imagenet": np.array([boxes[f][0] for f in files]),
            "boxes": {f: boxes[f][1] for f in files},
            "sizes": {f: Image.open(eval_set / "images" / f).size for f in files}}
