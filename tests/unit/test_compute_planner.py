"""The compute planner's choices on a synthetic calibration whose curves are known (the one-thread ORT session fast
at one row, the native booster per row, CUDA only past its fixed cost), and a real calibration of this machine
made again when the hardware changed."""

from __future__ import annotations

import json

import pytest

from pipelines.compute.planner import (
    BATCH_SIZES,
    Calibration,
    _interpolate,
    calibration_path,
    current_calibration,
    hardware,
    plan_scoring,
    plan_training,
)
from pipelines.settings import load_settings

# seconds per call = fixed + per row * rows
CURVES = {
    "onnxruntime/cpu/1": (5e-6, 2e-6),
    "onnxruntime/cpu/4": (20e-6, 0.7e-6),
    "xgboost/cpu/4": (150e-6, 0.3e-6),
    "xgboost/cuda/4": (2e-3, 0.01e-6),
}


def synthetic(curves=CURVES, training=None) -> Calibration:
    scoring = {key: {str(n): fixed + per_row * n for n in BATCH_SIZES} for key, (fixed, per_row) in curves.items()}
    return Calibration({"cpu": "synthetic", "cores": 4, "cuda": ["GPU 0"]}, 23, "2026-12-06T00:00:00+00:00",
                       scoring, training or {})  # fmt: skip


def test_one_row_goes_to_the_one_thread_session_and_ten_million_to_cuda_in_calls_memory_bounds():
    calibration = synthetic()
    one = plan_scoring(calibration, 1, 23)
    assert (one.runtime, one.device, one.threads, one.call_rows) == ("onnxruntime", "cpu", 1, 1)
    million = plan_scoring(calibration, 10_000_000, 23)
    assert (million.runtime, million.device) == ("xgboost", "cuda")
    assert million.call_rows == (256 << 20) // (4 * 23)  # as many rows as 256 MiB of float32 inputs hold
    cuda = {int(n): s for n, s in calibration.scoring["xgboost/cuda/4"].items()}
    assert million.predicted_seconds == pytest.approx(cuda[65536] * 10_000_000 / 65536)  # beyond 65,536: per row
    assert million.predicted_seconds < min(v for k, v in million.alternatives.items() if k != "xgboost/cuda/4")
    assert f"in calls of {million.call_rows}" in million.reason and "faster than xgboost/cpu/4" in million.reason
    narrow = plan_scoring(calibration, 10_000_000, 2300)  # a hundred times wider: a hundredth of the rows per call
    assert narrow.call_rows == (256 << 20) // (4 * 2300)


def test_a_model_without_a_native_runtime_is_planned_on_onnx_runtime_only():
    plan = plan_scoring(synthetic(), 1_000_000, 23, runtimes=("onnxruntime",))
    assert (plan.runtime, plan.threads) == ("onnxruntime", 4) and set(plan.alternatives) == {
        "onnxruntime/cpu/1", "onnxruntime/cpu/4"
    }  # fmt: skip
    with pytest.raises(ValueError, match="none of the runtimes .*platform calibrate"):
        plan_scoring(synthetic(), 10, 23, runtimes=("tensorrt",))


def test_an_online_call_takes_the_fastest_option_within_its_latency_budget():
    within = plan_scoring(synthetic(), 100, 23, latency_budget_ms=0.15)
    assert (within.runtime, within.threads, within.call_rows, within.within_budget) == ("onnxruntime", 4, 100, True)
    over = plan_scoring(synthetic(), 100, 23, latency_budget_ms=0.01)
    assert (over.runtime, over.threads, over.within_budget) == ("onnxruntime", 4, False)
    assert "over the 0.01 ms budget" in over.reason


def test_cost_grows_with_the_features_and_interpolates_between_calibrated_sizes():
    calibration = synthetic()
    narrow, wide = plan_scoring(calibration, 4096, 23), plan_scoring(calibration, 4096, 46)
    assert wide.predicted_seconds == pytest.approx(2 * narrow.predicted_seconds)
    curve = {1: 1e-6, 100: 1e-4}
    assert _interpolate(curve, 10) == pytest.approx(1e-5)  # log-log: halfway in log rows, halfway in log cost
    assert _interpolate(curve, 1000) == pytest.approx(1e-3)  # beyond the largest: per row


def test_training_uses_cuda_only_where_the_calibration_shows_it_faster():
    calibration = synthetic(training={"cpu": {"20000": 1.0, "200000": 10.0}, "cuda": {"20000": 2.0, "200000": 3.0}})
    assert plan_training(calibration, 10_000)[0] == "cpu"
    device, why = plan_training(calibration, 200_000)
    assert device == "cuda" and "CUDA 3 s, CPU 10 s" in why
    assert plan_training(synthetic(), 10_000_000) == ("cpu", "no CUDA device on this machine's calibration")


def test_a_calibration_from_other_hardware_is_measured_again_here(tmp_path):
    settings = load_settings(data_root=tmp_path)
    synthetic().save(calibration_path(settings))
    calibration = current_calibration(settings)
    assert calibration.hardware == hardware() and calibration.hardware["cpu"] != "synthetic"
    stored = json.loads(calibration_path(settings).read_text())
    assert stored["hardware"] == calibration.hardware and set(stored["scoring"]) >= {"onnxruntime/cpu/1"}
    for curve in stored["scoring"].values():
        assert [int(n) for n in curve] == list(BATCH_SIZES) and all(s > 0 for s in curve.values())
    assert current_calibration(settings).measured_at == calibration.measured_at  # the same machine: kept


def test_a_near_tie_goes_to_the_fewest_threads_on_the_cpu():
    """Within the calibration's noise (10%), more threads or a GPU are not worth taking from the other work."""
    curves = {
        "onnxruntime/cpu/1": (5e-6, 1.05e-6),
        "onnxruntime/cpu/4": (5e-6, 1.0e-6),
        "xgboost/cuda/4": (5e-6, 0.98e-6),
    }
    tie = plan_scoring(synthetic(curves), 10, 23)
    assert (tie.runtime, tie.device, tie.threads) == ("onnxruntime", "cpu", 1)
    clear = plan_scoring(synthetic({**curves, "onnxruntime/cpu/4": (5e-6, 0.5e-6)}), 10, 23)
    assert clear.threads == 4  # twice as fast: worth the cores
