"""Export: ONNX Runtime scoring, parity with native models, latency."""
