"""Days of operations in the order they happen, driven through Airflow and the model service.

For each day D: consumers ask about D's flights at their prediction time (the spec's
`prediction.lead_time`): at D 00:00 from what the daily batch left, or, on the real-time path
(`RealTime`), each flight two hours before its departure, once the stream processor has written every
event known by then; after midnight the ingest DAG lands, validates, transforms, reconciles the stream
with the batch and materializes D, whose arrivals become the labels of the logged answers; the next morning the
monitoring DAG judges the champion on D. When the retraining policy asks, the training DAG fits a
candidate on the window the request names (the run's `last_day`, as the retrain asset's
`window_end` would set it), and a candidate that passes the gate is released by the deploy DAG
under the next day's consumer traffic: through the canary if a champion is live.

`make run` operates July this way after its first week; the July-week e2e test operates one week
against a January-March champion.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase


class RealTime:
    """The real-time path while days are served (a use case with streams and a lead time): the stream
    processor runs, and one event clock moves the operational systems' time forward as requests are asked,
    so that each is answered with what was known at its prediction time. A served day's clock starts a day
    before its first request at the latest (a jump of months is not replayed), so that the stream, not the
    batch's later values, holds the state at that first instant."""

    def __init__(self, settings: Settings, usecase: UseCase):
        self.settings, self.usecase, self.clock = settings, usecase, None

    def until(self, day: dt.date) -> Callable[[dt.datetime], None]:
        """The `until` hook for serving `day` (serving.replay.replay)."""
        from pipelines.streaming.replay import EventClock
        from serving.replay import asked_at, day_requests

        first = asked_at(self.usecase, day, day_requests(self.settings, self.usecase, day))[0][0]
        start = first - dt.timedelta(days=1)
        if self.clock is None:
            self.clock = EventClock(self.settings, self.usecase, start)
        self.clock.now = max(self.clock.now, start)
        return self.clock.advance

    def summary(self) -> str:
        from pipelines.streaming.status import stream_status

        waited = f"; waited {self.clock.waited_s:.1f} s for the processor" if self.clock else ""
        lines = stream_status(self.settings, self.usecase).render().splitlines()
        return "Stream: " + "\n        ".join(lines) + waited


@contextlib.contextmanager
def real_time(settings: Settings, usecase: UseCase, env: dict[str, str] | None = None) -> Iterator[RealTime | None]:
    """The stream processor for the block, when the use case has streams and predicts ahead of its request
    time; None (nothing started) when it predicts at the start of the day from the daily batch."""
    if usecase.streaming is None or usecase.prediction.start_of_day:
        yield None
        return
    from pipelines.streaming.service import running_processor

    log = settings.data_root / "streaming" / f"{usecase.name}-processor.log"
    with running_processor(settings, usecase, log=log, env=env):
        yield RealTime(settings, usecase)


@dataclass
class Release:
    version: int
    alias: str
    released: bool
    detail: str  # why not, when not released
    seconds: float
    answered: int  # consumer requests answered while it ran
    sent: int
    canary: object = None  # the CanaryOutcome of a challenger's release
    approved_by: str | None = None  # who approved it, when the spec requires an approval

    def render(self) -> str:
        verdict = "released" if self.released else f"NOT released: {self.detail}"
        approval = f" (approved by {self.approved_by})" if self.approved_by else ""
        return (
            f"{self.alias} v{self.version} {verdict}{approval} in {self.seconds:.0f} s; consumers got "
            f"{self.answered}/{self.sent} requests answered meanwhile"
        )


@dataclass
class OperatedDay:
    day: dt.date
    served: str  # the replay report
    monitoring: dict  # the monitoring DAG's assessment.json
    training: dict | None = None  # the training run's outcome, when a retrain was requested
    release: Release | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    stream: str | None = None  # where the streams stood once the day was served (the real-time path)

    @property
    def decision(self) -> dict:
        return self.monitoring["decision"]

    def render(self) -> str:
        from pipelines.orchestration.monitoring import render as render_monitoring

        lines = [f"{self.day}: served {self.served}", *([f"  {self.stream}"] if self.stream else []),
                 *("  " + line for line in render_monitoring(self.monitoring).splitlines())]  # fmt: skip
        if self.training is not None:
            from pipelines.orchestration.training import render as render_training

            lines += ["  " + line for line in render_training(self.training).splitlines()]
        if self.release is not None:
            lines.append("  " + self.release.render())
            if self.release.canary is not None:
                lines += ["  " + line for line in self.release.canary.render().splitlines()]
        timings = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        lines.append(f"  ({timings})")
        return "\n".join(lines)


def release(settings: Settings, usecase: UseCase, base: str, key: str, version: int, alias: str,
            traffic_day: dt.date) -> Release:  # fmt: skip
    """Run the deploy DAG for `version` while `traffic_day`'s requests are replayed as consumer traffic
    (a challenger's canary is judged on that traffic)."""
    from pipelines.orchestration import local_airflow
    from serving.replay import ReplayLoop, day_requests

    started = time.monotonic()
    deploy = usecase.dag_id("deploy")
    with contextlib.ExitStack() as stack:
        approved = (stack.enter_context(local_airflow.demo_approvals(settings, deploy))
                    if usecase.deploy.approval == "required" else [])  # fmt: skip
        traffic = stack.enter_context(ReplayLoop(base, key, usecase, day_requests(settings, usecase, traffic_day)))
        try:
            local_airflow.test_run(settings, deploy, {"version": version, "alias": alias})
            released, detail = True, ""
        except local_airflow.AirflowRunFailed as exc:
            report = canary_outcome(settings, usecase.name, version)
            why = [line for line in str(exc).splitlines() if "Error" in line or "Exception" in line]
            released = False
            detail = "; ".join(report.reasons) if report else (why or [str(exc)])[-1].strip()[:400]
    canary = canary_outcome(settings, usecase.name, version) if alias == "challenger" else None
    return Release(version, alias, released, detail, time.monotonic() - started, traffic.statuses.count(200),
                   len(traffic.statuses), canary, local_airflow.DEMO_APPROVER if approved else None)  # fmt: skip


def canary_outcome(settings: Settings, model: str, version: int):
    """The canary report the deploy DAG wrote for `version` (var/deployments), or None."""
    from pipelines.deploy.canary import CanaryOutcome
    from pipelines.orchestration.deploy import deployment_report

    path = deployment_report(settings, model, version)
    return CanaryOutcome.from_dict(json.loads(path.read_text())) if path.exists() else None


def operate(
    settings: Settings,
    usecase: UseCase,
    first: dt.date,
    last: dt.date,
    base: str,
    key: str,
    *,
    stop_after_release: bool = True,
    echo: Callable[[str], None] = print,
    realtime: RealTime | None = None,
) -> list[OperatedDay]:
    """Operate [first, last] day by day (see the module docstring); stops after the first release
    unless `stop_after_release` is False. The online store must hold what was known at `first` 00:00;
    with `realtime` each request is asked at its prediction time, the stream brought up to it."""
    from pipelines.orchestration import local_airflow

    operated = []
    with local_airflow.scheduling(settings) as airflow_scheduler:  # the ingest DAG's scheduler, for every day
        day = first
        while day <= last:
            record = _operate_day(settings, usecase, airflow_scheduler, day, base, key, realtime)
            echo(record.render())
            operated.append(record)
            if record.release is not None and stop_after_release:
                break
            day += dt.timedelta(days=1)
    return operated


def _operate_day(settings: Settings, usecase: UseCase, airflow_scheduler, day: dt.date, base: str,
                 key: str, realtime: RealTime | None) -> OperatedDay:  # fmt: skip
    """Serve `day`, land it through the ingest DAG, judge it with the monitoring DAG; retrain and release
    when the policy asks."""
    from pipelines.orchestration import local_airflow, monitoring
    from pipelines.orchestration.training import latest_outcome
    from serving.replay import replay

    seconds = {}
    started = time.monotonic()
    served = replay(settings, usecase, day, base, key, until=realtime.until(day) if realtime else None)
    seconds["serve"] = time.monotonic() - started
    started = time.monotonic()
    airflow_scheduler.backfill(usecase.dag_id("ingest"), day, day, usecase.tz)
    seconds["ingest DAG"] = time.monotonic() - started
    started = time.monotonic()
    local_airflow.test_run(settings, usecase.dag_id("monitoring"), {"day": day.isoformat()})
    seconds["monitoring DAG"] = time.monotonic() - started
    outcome = json.loads((monitoring.day_folder(settings, usecase.name, day) / "assessment.json").read_text())
    stream = realtime.summary() if realtime else None
    record = OperatedDay(day, served.render(), outcome, seconds=seconds, stream=stream)
    if record.decision["retrain"]:
        window_end = dt.date.fromisoformat(record.decision["window_end"])
        started = time.monotonic()
        local_airflow.test_run(settings, usecase.dag_id("training"), {"last_day": window_end.isoformat()})
        seconds["training DAG"] = time.monotonic() - started
        record.training = latest_outcome(settings, window_end)
        moved = next(((a, record.training[a]) for a in ("champion", "challenger") if record.training.get(a)), None)
        if moved:
            record.release = release(settings, usecase, base, key, moved[1], moved[0], day + dt.timedelta(days=1))
    return record
