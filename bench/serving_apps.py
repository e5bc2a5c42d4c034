"""The servers `bench.serving` compares, all scoring one ONNX file (BENCH_ONNX) with the same
ORT session settings the platform uses: a BentoML endpoint, the same endpoint with adaptive
batching, and a bare Starlette app under uvicorn."""

from __future__ import annotations

import os

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipelines.export.onnx import OnnxScorer

OUTPUT = {"name": "probabilities", "column": 1}


def _scorer() -> OnnxScorer:
    with open(os.environ["BENCH_ONNX"], "rb") as model:
        return OnnxScorer(model.read(), OUTPUT)


@bentoml.service(name="bench_plain", traffic={"max_concurrency": 256})
class Plain:
    def __init__(self) -> None:
        self.scorer = _scorer()

    @bentoml.api
    def score(self, rows: list[list[float]]) -> list[float]:
        return self.scorer.predict(np.asarray(rows, dtype=np.float32)).tolist()


@bentoml.service(name="bench_batched", traffic={"max_concurrency": 256})
class Batched:
    def __init__(self) -> None:
        self.scorer = _scorer()

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=100)
    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.scorer.predict(rows.astype(np.float32))


_bare = None


async def _score(request: Request) -> JSONResponse:
    global _bare
    _bare = _bare or _scorer()
    rows = (await request.json())["rows"]
    return JSONResponse(_bare.predict(np.asarray(rows, dtype=np.float32)).tolist())


starlette_app = Starlette(routes=[Route("/score", _score, methods=["POST"])])
