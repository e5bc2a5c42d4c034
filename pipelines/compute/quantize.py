"""The `cpu-small` profile of a small deployment: the MLP's ONNX graph with dynamic int8 quantisation (its weights
stored as int8, its activations quantised per call; ONNX Runtime's graph optimisations on, as for every session),
accepted only when its answers on the reference rows stay within a stated tolerance of the float graph's.

A refused quantisation is kept out of the registry: the service of a `cpu-small` deployment then runs the float
graph and says why.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

QUANTIZED_FILE = "model.int8.onnx"
PARITY_TOLERANCE = 0.01  # the largest difference from the float graph's answer (absolute within [-1, 1])


@dataclass
class QuantizedGraph:
    accepted: bool
    parity: float  # the largest difference from the float graph on the reference rows
    tolerance: float
    float_bytes: int
    int8_bytes: int
    float_p50_ms: float  # one-row latency
    int8_p50_ms: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def quantize_int8(model: bytes) -> bytes:
    """The graph with its weights quantised to int8 (onnxruntime.quantization's dynamic quantisation)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(model)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


def cpu_small(
    model: bytes,
    output: dict,
    reference: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
    quantized: bytes | None = None,
) -> tuple[QuantizedGraph, bytes | None]:
    """The quantised graph (`quantized`, or made here) judged against the float graph on `reference` rows: the
    verdict, and the graph when it is accepted (None when refused)."""
    from pipelines.export.onnx import OnnxScorer, latency_ms, parity

    quantized = quantize_int8(model) if quantized is None else quantized
    original, small = OnnxScorer(model, output), OnnxScorer(quantized, output)
    gap = parity(small, original.predict(reference), reference)
    accepted = bool(np.isfinite(gap) and gap <= tolerance)
    reason = (
        f"int8 answers within {gap:.2g} of the float graph's on {len(reference)} reference rows "
        f"({'within' if accepted else 'beyond'} the tolerance {tolerance:g})"
    )
    verdict = QuantizedGraph(accepted, float(gap), tolerance, len(model), len(quantized),
                             latency_ms(original, reference[0])["p50"], latency_ms(small, reference[0])["p50"],
                             reason if accepted else f"refused: {reason}; the float graph is served")  # fmt: skip
    return verdict, quantized if accepted else None
