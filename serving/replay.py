"""Traffic replay: a day's scheduled flights sent to the endpoint as consumers would send them.

The requests come from the day's published schedule (the flights source, not the platform's raw
zone: consumers ask about a day before the ingest DAG has landed it) and carry only what is known
before departure; the day's actual arrivals, landed by the ingest DAG once the day is over, later
become the labels of the logged predictions.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np

from pipelines.ingest.landing import source_dir
from pipelines.ingest.source import read_source, rows_of_day
from pipelines.settings import Settings
from pipelines.usecases.spec import resolve_usecase


def day_requests(settings: Settings, day: dt.date) -> list[dict]:
    """The day's scheduled flights as request bodies; MissingPartitionError if the source has none."""
    from pipelines.errors import MissingPartitionError
    from serving.model import MODEL_NAME

    sources = resolve_usecase(settings, MODEL_NAME).sources
    folder, flights = source_dir(settings, sources), sources.tables["flights"]
    columns = ["sched_dep_time", "carrier", "flight", "origin", "dest", "tailnum"]
    rows = rows_of_day(read_source(folder, "flights", flights), day, flights).select(columns).to_pylist()
    if not rows:
        raise MissingPartitionError(f"the flights source in {folder} schedules no flights on {day}")
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


class ReplayLoop:
    """Consumer traffic in a background thread: `flights` sent in batches, round and round, until the
    block exits; every status (and every 200's answer) is kept. Canary steps need live traffic."""

    def __init__(self, base: str, api_key: str, flights: list[dict], batch: int = 100, verify: bool | str = True):
        self.base, self.api_key, self.flights, self.batch, self.verify = base, api_key, flights, batch, verify
        self.statuses: list[int] = []
        self.answers: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=60, verify=self.verify) as client:
            start = 0
            while not self._stop.is_set():
                response = client.post("/predict", json={"flights": self.flights[start : start + self.batch]})
                self.statuses.append(response.status_code)
                if response.status_code == 200:
                    self.answers.append(response.json())
                start = (start + self.batch) % max(len(self.flights) - self.batch, 1)

    def __enter__(self) -> ReplayLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def flights_answered(self) -> int:
        return sum(len(a["predictions"]) for a in self.answers)
