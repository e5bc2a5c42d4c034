"""Traffic replay: a day's requests sent to a use case's endpoint as consumers would send them.

The requests come from the day's rows of the source (not the platform's raw zone: consumers ask
about a day before the ingest DAG has landed it), mapped to request fields by the spec's
`serving.replay`, and carry only what is known beforehand (for flights the schedule; for bikes the
calendar and the hour's weather, standing in for a forecast); the day's outcomes, landed by the
ingest DAG once the day is over, later become the labels of the logged predictions.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np

from pipelines.ingest.sources import extract_day
from pipelines.settings import Settings
from pipelines.usecases.spec import ReplayRule, UseCase


def day_requests(settings: Settings, usecase: UseCase, day: dt.date) -> list[dict]:
    """The day's requests as consumers would send them, from the day's rows of the source table the spec's
    `serving.replay` names; MissingPartitionError or EmptyPartitionError if the source has none."""
    replay = usecase.serving.replay
    rows = extract_day(settings, usecase, replay.table, day).rows.to_pylist()
    midnight = dt.datetime.combine(day, dt.time())
    return [{name: _value(rule, row, day, midnight) for name, rule in replay.fields.items()} for row in rows]


def _value(rule: str | ReplayRule, row: dict, day: dt.date, midnight: dt.datetime):
    if isinstance(rule, str):
        return rule.format(date=day.isoformat(), **row)
    if rule.clock_hhmm is not None:
        hhmm = int(row[rule.clock_hhmm])
        return (midnight + dt.timedelta(hours=hhmm // 100, minutes=hhmm % 100)).isoformat()
    if rule.hour is not None:
        return (midnight + dt.timedelta(hours=int(row[rule.hour]))).isoformat()
    value = row[rule.column]
    if rule.values is not None:
        value = rule.values[value]
    return value * rule.scale if rule.scale is not None and value is not None else value


def asked_at(usecase: UseCase, day: dt.date, requests: list[dict]) -> list[tuple[dt.datetime, list[dict]]]:
    """The day's requests grouped by the instant (UTC) each is asked, its prediction time, in time order."""
    import pandas as pd

    from pipelines.features.request_time import prediction_time

    if not requests:
        return []
    local = pd.Series(pd.to_datetime([r[usecase.serving.time] for r in requests]))
    instants = prediction_time(usecase.prediction, pd.Series([pd.Timestamp(day)] * len(requests)), local, usecase.tz)
    groups: dict[dt.datetime, list[dict]] = {}
    for request, instant in zip(requests, instants, strict=True):
        groups.setdefault(instant.to_pydatetime(), []).append(request)
    return sorted(groups.items())


@dataclass
class ReplayReport:
    usecase: str
    batch: str  # what an item is (flights, hours)
    sent: int
    answered: int
    failed: int
    human_review: int  # answered `human_review`, unscored: their subject objects to automated decisions
    p50_ms: float
    p99_ms: float
    mean_answer: float  # the share answered yes (a decision), or the mean prediction
    answer: str  # the decision's name, or the prediction's
    decision: bool  # whether mean_answer is a share of decisions

    def render(self) -> str:
        answered = (f"predicted {self.answer}: {self.mean_answer:.1%}" if self.decision
                    else f"mean {self.answer}: {self.mean_answer:.4g}")  # fmt: skip
        return (
            f"{self.answered}/{self.sent} {self.batch} answered ({self.failed} failed), {self.human_review} for "
            f"human review, request p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, {answered}"
        )


def replay(
    settings: Settings,
    usecase: UseCase,
    day: dt.date,
    base: str,
    api_key: str,
    batch: int = 100,
    verify: bool | str = True,
    until=None,
) -> ReplayReport:
    """Send the day's requests to the use case's route in batches, each when it is asked: grouped by their
    prediction time (the spec's `prediction.lead_time`; one group at 00:00 at `start_of_day`), in time
    order, `until(instant)` called before each group is sent (the real-time path brings the online store
    up to that instant there); what came back."""
    requests = day_requests(settings, usecase, day)
    serving = usecase.serving
    answer = serving.decision or usecase.prediction_column
    latencies, answers, answered, failed, reviewed = [], [], 0, 0, 0
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=60, verify=verify
    ) as client:
        for instant, group in asked_at(usecase, day, requests):
            if until is not None:
                until(instant)
            for start in range(0, len(group), batch):
                chunk = group[start : start + batch]
                started = time.perf_counter()
                response = client.post(serving.route, json={serving.batch: chunk})
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code == 200:
                    answered += len(chunk)
                    predictions = response.json()["predictions"]
                    answers += [float(p[answer]) for p in predictions if p["decision"] == "model"]
                    reviewed += sum(p["decision"] == "human_review" for p in predictions)
                else:
                    failed += len(chunk)
    return ReplayReport(
        usecase.name,
        serving.batch,
        len(requests),
        answered,
        failed,
        reviewed,
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 99)),
        float(np.mean(answers)) if answers else 0.0,
        answer,
        serving.decision is not None,
    )


class ReplayLoop:
    """Consumer traffic in a background thread: `items` sent to the use case's route in batches, round and
    round, until the block exits; every status (and every 200's answer) is kept. Canary steps need live
    traffic."""

    def __init__(self, base: str, api_key: str, usecase: UseCase, items: list[dict], batch: int = 100,
                 verify: bool | str = True):  # fmt: skip
        self.base, self.api_key, self.items, self.batch, self.verify = base, api_key, items, batch, verify
        self.route, self.field = usecase.serving.route, usecase.serving.batch
        self.statuses: list[int] = []
        self.answers: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=60, verify=self.verify) as client:
            start = 0
            while not self._stop.is_set():
                response = client.post(self.route, json={self.field: self.items[start : start + self.batch]})
                self.statuses.append(response.status_code)
                if response.status_code == 200:
                    self.answers.append(response.json())
                start = (start + self.batch) % max(len(self.items) - self.batch, 1)

    def __enter__(self) -> ReplayLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def items_answered(self) -> int:
        return sum(len(a["predictions"]) for a in self.answers)
