"""Traffic replay: a day's scheduled flights sent to the endpoint as consumers would send them.

The requests carry only what is known before departure; the same day's actual arrivals, landed
by the ingest DAG, later become the labels of the logged predictions.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import httpx
import numpy as np

from pipelines.ingest.landing import landed_partition
from pipelines.settings import Settings


def day_requests(settings: Settings, day: dt.date) -> list[dict]:
    """The day's flights as request bodies (from the landed, validated partition)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(landed_partition(settings, "flights", day)).to_pylist()
    requests = []
    for r in rows:
        hhmm = int(r["sched_dep_time"])
        departure = dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=hhmm // 100, minutes=hhmm % 100)
        requests.append(
            {
                "flight_id": f"{day.isoformat()}-{r['carrier']}{r['flight']}-{r['origin']}",
                "carrier": r["carrier"],
                "origin": r["origin"],
                "destination": r["dest"],
                "scheduled_departure": departure.isoformat(),
                "tailnum": r["tailnum"],
            }
        )
    return requests


@dataclass
class ReplayReport:
    sent: int
    answered: int
    failed: int
    p50_ms: float
    p99_ms: float
    late_share: float

    def render(self) -> str:
        return (
            f"{self.answered}/{self.sent} flights answered ({self.failed} failed), request p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, predicted late: {self.late_share:.1%}"
        )


def replay(
    settings: Settings, day: dt.date, base: str, api_key: str, batch: int = 100, verify: bool | str = True
) -> ReplayReport:
    requests = day_requests(settings, day)
    latencies, late, answered, failed = [], [], 0, 0
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=60, verify=verify
    ) as client:
        for start in range(0, len(requests), batch):
            chunk = requests[start : start + batch]
            started = time.perf_counter()
            response = client.post("/predict", json={"flights": chunk})
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 200:
                answered += len(chunk)
                late += [p["late"] for p in response.json()["predictions"]]
            else:
                failed += len(chunk)
    return ReplayReport(
        len(requests),
        answered,
        failed,
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 99)),
        float(np.mean(late)) if late else 0.0,
    )
