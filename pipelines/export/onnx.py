"""ONNX Runtime sessions of exported models: scoring, parity with the native model, latency."""

from __future__ import annotations

import time

import numpy as np


class OnnxScorer:
    """An ORT session over one model: raw features in (FeatureService order), one prediction per row out
    (a probability of the positive class, or a regressor's value)."""

    def __init__(self, model: bytes, output: dict, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Pool threads that spin after a call take the cores the next work needs (the booster, the next task):
        # measured on 2 cores, the booster run after a spinning 2-thread session took 1.6x its time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output, self.column = output["name"], output["column"]

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output], {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0]
        return np.asarray(out)[:, self.column]


def parity(scorer: OnnxScorer, native: np.ndarray, x: np.ndarray) -> float:
    """Largest difference between ONNX and native predictions on a reference batch: absolute for
    predictions within [-1, 1] (probabilities), relative to the native value beyond (a regressor's counts)."""
    native = np.asarray(native, dtype=np.float64)
    return float(np.max(np.abs(scorer.predict(x) - native) / np.maximum(1.0, np.abs(native))))


def latency_ms(scorer: OnnxScorer, row: np.ndarray, repeats: int = 300) -> dict[str, float]:
    """p50 and p99 of one-row ORT calls (after a warm-up)."""
    row = np.ascontiguousarray(row.reshape(1, -1), dtype=np.float32)
    for _ in range(20):
        scorer.predict(row)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        scorer.predict(row)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
