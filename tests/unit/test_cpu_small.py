"""The cpu-small profile on a real MLP: its int8 graph is smaller and answers within a stated tolerance of the float
graph, so it is accepted; a quantisation whose scales were damaged answers otherwise and is refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bench.training_devices import synthetic
from pipelines.compute.quantize import PARITY_TOLERANCE, cpu_small, quantize_int8
from pipelines.export.onnx import OnnxScorer
from pipelines.training.trainers import train_mlp
from pipelines.usecases.spec import HYPERPARAMETERS


@pytest.fixture(scope="module")
def mlp():
    data = synthetic(6_000)
    trained = train_mlp(data, {**HYPERPARAMETERS["mlp"], "max_epochs": 5}, seed=0, device="cpu")
    reference = data.split("holdout")[data.features].to_numpy(dtype=np.float32)[:500]
    return trained, reference


def test_the_int8_graph_is_smaller_and_answers_within_the_tolerance(mlp):
    trained, reference = mlp
    verdict, graph = cpu_small(trained.onnx, trained.onnx_output, reference, tolerance=0.05)
    assert verdict.accepted and graph is not None, verdict.reason
    assert 0 < verdict.parity <= 0.05 and verdict.int8_bytes < verdict.float_bytes
    answers = OnnxScorer(graph, trained.onnx_output).predict(reference)
    assert np.all((answers >= 0) & (answers <= 1))
    assert verdict.float_p50_ms > 0 and verdict.int8_p50_ms > 0


def test_a_broken_quantisation_is_refused_and_the_float_graph_kept(mlp):
    trained, reference = mlp
    broken = onnx.load_from_string(quantize_int8(trained.onnx))
    for tensor in broken.graph.initializer:
        if tensor.name.endswith("_scale"):  # every weight's dequantisation scale tripled
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 3, tensor.name))
    verdict, graph = cpu_small(trained.onnx, trained.onnx_output, reference, quantized=broken.SerializeToString())
    assert not verdict.accepted and graph is None and verdict.parity > PARITY_TOLERANCE
    assert verdict.reason.startswith("refused: int8 answers within") and "the float graph is served" in verdict.reason
