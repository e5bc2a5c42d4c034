"""Does the retraining policy retrain when it pays, and only then? Measured on real data.

`replay` serves a champion day after day on the real point-in-time features (the Feast training
frame of the whole period) and, each day, runs exactly what the monitoring DAG runs: the champion's
reference and detector configuration, alibi-detect in the drift virtualenv, live performance on the
day's landed arrivals, `assess` and `decide` with the whole history. When the policy asks, a
candidate is trained on the window ending that day (labels known by then), gated against the
champion on its holdout by the training DAG's gate, and serves from the next day if it passes (as a
promoted canary would). A stale copy of the first champion scores every day beside it, so each
retrain's payoff is the served model's log loss against the stale one's on the following days.

`null_control` draws reference and current windows as random halves of the days of the champion's
own reference period (nothing changed between them) and runs the same assessment and decision
over the current half: any retrain request there is a false alarm.

The drift detectors skip MMD here (the policy does not read it; it costs 0.3 s a window).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.evaluation.gate import GatePolicy
from pipelines.evaluation.gate import decide as gate
from pipelines.evaluation.metrics import row_losses
from pipelines.monitoring.policy import Assessment, RetrainPolicy, assess, decide
from pipelines.monitoring.reference import build_reference
from pipelines.orchestration.training import evaluate_predictions, evaluate_trained
from pipelines.training.dataset import TrainingData, TrainingWindow
from pipelines.usecases.spec import UseCase


@dataclass(frozen=True)
class WindowLengths:
    """Training window lengths in days (the spec's training.windows)."""

    train: int
    validation: int
    holdout: int

    def ending(self, last_day: dt.date) -> TrainingWindow:
        return TrainingWindow.ending(last_day, self.train, self.validation, self.holdout)


@dataclass
class Champion:
    version: int
    window: TrainingWindow
    predict: Callable[[np.ndarray], np.ndarray]
    reference: pd.DataFrame
    config: dict


def days_of(frame: pd.DataFrame, usecase: UseCase) -> pd.Series:
    return pd.to_datetime(frame[usecase.features.request_time.column]).dt.date


def window_data(data: TrainingData, usecase: UseCase, window: TrainingWindow) -> TrainingData:
    """The window's rows of `data` whose label was known by the end of its holdout, tagged with their split."""
    frame = data.frame
    day = days_of(frame, usecase)
    known = pd.to_datetime(frame[usecase.features.label.available_at], utc=True) <= pd.Timestamp(
        window.known_at(usecase.tz)
    )
    part = frame[(day >= window.train_start) & (day <= window.holdout_end) & known].copy()
    part["split"] = [window.split_of(d) for d in days_of(part, usecase)]
    return TrainingData(part.reset_index(drop=True), data.features, window, data.label, data.entity_id, data.task,
                        data.increasing)  # fmt: skip


def _frame_data(usecase: UseCase, frame: pd.DataFrame, features: list[str], window: TrainingWindow | None = None):
    """Rows of the backtest's frame as the use case's training data (the window, if any, set later)."""
    f = usecase.features
    return TrainingData(frame, features, window, f.label.column, f.entity_id, usecase.task,
                        [c for c in usecase.gate.behaviour.increasing if c in features])  # fmt: skip


def fit(usecase: UseCase, data: TrainingData, version: int, seed: int) -> tuple[Champion, dict]:
    """Train XGBoost as the training DAG does with the use case's spec; the model, its reference and its
    gate evaluation."""
    from pipelines.training.trainers import train_xgboost

    trained = train_xgboost(data, usecase.training.hyperparameters("xgboost"), seed=seed, device="cpu")
    evaluation, _, scorer = evaluate_trained(trained, data, usecase)
    reference, config = build_reference(data, scorer.predict, seed, usecase)
    return Champion(version, data.window, scorer.predict, reference, config), evaluation


class _Monitor:
    """One model's day: the window written as the monitoring DAG writes it, detected, assessed."""

    def __init__(self, detectors, folder: Path, policy: RetrainPolicy, usecase: UseCase):
        self.detectors, self.folder, self.policy, self.usecase = detectors, folder, policy, usecase

    def assess(
        self, champion: Champion, day: dt.date, current: pd.DataFrame, history: list[dict]
    ) -> tuple[Assessment, np.ndarray]:
        from pipelines.orchestration.monitoring import live_performance

        features, key = champion.config["features"], self.usecase.features.entity_id
        prediction = champion.predict(current[features].to_numpy(dtype=np.float32))
        columns = list(dict.fromkeys([key, *champion.config["categorical"], *features]))
        served = current[columns].assign(prediction=prediction)
        folder = self.folder / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        champion.reference.to_parquet(folder / "reference.parquet", index=False)
        served.to_parquet(folder / "current.parquet", index=False)
        (folder / "config.json").write_text(json.dumps(champion.config))
        report = self.detectors.run(str(folder), multivariate=False)
        performance = live_performance(self.usecase, served, current[[key, champion.config["label"]]])
        assessment = assess(day, report, champion.config, performance, self.policy, history, champion.version)
        return assessment, prediction


@dataclass
class ReplayResult:
    days: list[dict] = field(default_factory=list)  # one per replayed day
    retrains: list[dict] = field(default_factory=list)  # one per retrain request

    def payoff(self, request: dict, horizon_days: int) -> dict | None:
        """Served against stale log loss per flight over the `horizon_days` after a promoted retrain."""
        start = dt.date.fromisoformat(request["day"])
        after = [d for d in self.days if 0 < (dt.date.fromisoformat(d["day"]) - start).days <= horizon_days]
        rows = sum(d["rows"] for d in after)
        if not request["promoted"] or rows == 0:
            return None
        served = sum(d["served_loss_sum"] for d in after) / rows
        stale = sum(d["stale_loss_sum"] for d in after) / rows
        return {"day": request["day"], "days": len(after), "rows": rows, "served": served, "stale": stale}


def replay(
    frame: pd.DataFrame,
    champion: Champion,
    *,
    first_day: dt.date,
    last_day: dt.date,
    usecase: UseCase,
    lengths: WindowLengths,
    policy: RetrainPolicy,
    gate_policy: GatePolicy,
    detectors,
    folder: Path,
    seed: int = 0,
) -> ReplayResult:
    """Serve `champion` from `first_day` to `last_day`, retraining as the policy decides."""
    features = champion.config["features"]
    stale = champion
    monitor = _Monitor(detectors, folder, policy, usecase)
    result = ReplayResult()
    history: list[dict] = []
    last_request: dt.date | None = None
    day_of = days_of(frame, usecase)
    day = first_day
    while day <= last_day:
        current = frame[day_of == day].reset_index(drop=True)
        if len(current):
            assessment, served = monitor.assess(champion, day, current, history)
            y = current[usecase.features.label.column].to_numpy()
            stale_p = served if stale is champion else stale.predict(current[features].to_numpy(dtype=np.float32))
            decision = decide(assessment, history, policy, last_request=last_request, in_flight=False)
            history.append(assessment.as_dict())
            result.days.append({
                "day": day.isoformat(), "version": champion.version, "rows": len(current),
                "served_loss_sum": float(row_losses(usecase.task, y, served).sum()),
                "stale_loss_sum": float(row_losses(usecase.task, y, stale_p).sum()),
                "breaches": assessment.breaches, "retrain": decision.retrain, "reason": decision.reason,
            })  # fmt: skip
            if decision.retrain:
                last_request = day
                data = window_data(_frame_data(usecase, frame, features), usecase, lengths.ending(day))
                candidate, evaluation = fit(usecase, data, champion.version + 1, seed)
                # the gate's comparison
                theirs, _ = evaluate_predictions("xgboost", champion.predict, data, usecase)
                report = gate(evaluation, gate_policy, theirs, champion.version)
                result.retrains.append({
                    "day": day.isoformat(), "reason": decision.reason, "promoted": report.passed,
                    "version": candidate.version, "gate_reasons": report.reasons,
                })  # fmt: skip
                if report.passed:
                    champion = candidate
        day += dt.timedelta(days=1)
    return result


def null_control(
    champion: Champion,
    frame: pd.DataFrame,
    *,
    usecase: UseCase,
    pairs: int,
    policy: RetrainPolicy,
    detectors,
    folder: Path,
    seed: int = 0,
) -> list[dict]:
    """For each pair, the reference period's days split at random in two halves: a reference built
    from one half (sample, natural drift, importance, as at training time), then every day of the
    other half assessed and decided in date order. Returns per pair its breach days and requests."""
    features = champion.config["features"]
    period = [dt.date.fromisoformat(d) for d in champion.config["reference_days"]]
    day_of = days_of(frame, usecase)
    rng = np.random.default_rng(seed)
    outcomes = []
    for pair in range(pairs):
        shuffled = rng.permutation(len(period))
        half = len(period) // 2
        reference_days = sorted(period[i] for i in shuffled[:half])
        current_days = sorted(period[i] for i in shuffled[half:])
        part = frame[day_of.isin(reference_days)].assign(split="validation").reset_index(drop=True)
        labelled = _frame_data(usecase, part, features, champion.window)
        reference, config = build_reference(labelled, champion.predict, seed, usecase)
        pair_champion = Champion(champion.version, champion.window, champion.predict, reference, config)
        monitor = _Monitor(detectors, folder / f"pair-{pair:02d}", policy, usecase)
        history: list[dict] = []
        last_request: dt.date | None = None
        breaches, requests = [], []
        for day in current_days:
            current = frame[day_of == day].reset_index(drop=True)
            assessment, _ = monitor.assess(pair_champion, day, current, history)
            decision = decide(assessment, history, policy, last_request=last_request, in_flight=False)
            history.append(assessment.as_dict())
            if assessment.breaches:
                breaches.append({"day": day.isoformat(), "breaches": assessment.breaches})
            if decision.retrain:
                last_request = day
                requests.append(day.isoformat())
        outcomes.append({"pair": pair, "current_days": len(current_days), "breach_days": breaches,
                         "requests": requests})  # fmt: skip
    return outcomes


@dataclass(frozen=True)
class Scenario:
    """The measurement of issue 6 on the 2013 flights: a champion of January to March; April to
    August replayed; a step change (the same champion suddenly serving July); null pairs."""

    first: dt.date = dt.date(2013, 1, 1)
    champion_end: dt.date = dt.date(2013, 3, 31)
    last: dt.date = dt.date(2013, 8, 31)
    step_start: dt.date = dt.date(2013, 7, 1)
    step_days: int = 14
    lengths: WindowLengths = WindowLengths(62, 14, 14)
    pairs: int = 20
    payoff_days: int = 28


def evaluate_policy(settings, usecase: UseCase, policy: RetrainPolicy, scenario: Scenario, folder: Path) -> dict:
    """Build the scenario's days (if not built yet), then replay, step and null control, with the use case's
    model and gate (its spec) and `policy`."""
    import time

    from pipelines.orchestration.bulk import build_days
    from pipelines.orchestration.monitoring import DriftDetectors
    from pipelines.training.dataset import build_dataset

    started = time.monotonic()
    build_days(settings, usecase, scenario.first, scenario.last, validate=False)
    week_after = scenario.champion_end + dt.timedelta(days=7)  # the splits are set per fit (window_data)
    window = TrainingWindow(scenario.first, scenario.champion_end, week_after, scenario.last)
    data = build_dataset(settings, usecase, window)
    built = time.monotonic() - started
    first = window_data(data, usecase, scenario.lengths.ending(scenario.champion_end))
    champion, _ = fit(usecase, first, 1, 0)
    gate_policy = GatePolicy.of(usecase, settings)
    common = dict(usecase=usecase, lengths=scenario.lengths, policy=policy, gate_policy=gate_policy)
    with DriftDetectors(settings) as detectors:
        replayed = replay(data.frame, champion, first_day=scenario.champion_end + dt.timedelta(days=1),
                          last_day=scenario.last, detectors=detectors, folder=folder / "replay", **common)  # fmt: skip
        step_end = scenario.step_start + dt.timedelta(days=scenario.step_days - 1)
        step = replay(data.frame, champion, first_day=scenario.step_start, last_day=step_end,
                      detectors=detectors, folder=folder / "step", **common)  # fmt: skip
        nulls = null_control(champion, data.frame, usecase=usecase, pairs=scenario.pairs, policy=policy,
                             detectors=detectors,
                             folder=folder / "null")  # fmt: skip
    requests = replayed.retrains
    gaps = [(dt.date.fromisoformat(b["day"]) - dt.date.fromisoformat(a["day"])).days
            for a, b in zip(requests, requests[1:], strict=False)]  # fmt: skip
    served = sum(d["served_loss_sum"] for d in replayed.days) / sum(d["rows"] for d in replayed.days)
    stale = sum(d["stale_loss_sum"] for d in replayed.days) / sum(d["rows"] for d in replayed.days)
    step_request = next((d["day"] for d in step.days if d["retrain"]), None)
    delay = (dt.date.fromisoformat(step_request) - scenario.step_start).days + 1 if step_request else None
    false_alarms = [n for n in nulls if n["requests"]]
    null_days = sum(n["current_days"] for n in nulls)
    return {
        "policy": policy.__dict__,
        "scenario": {k: str(v) for k, v in scenario.__dict__.items()},
        "build_seconds": round(built, 1),
        "seconds": round(time.monotonic() - started, 1),
        "replay": {
            "days": len(replayed.days),
            "requests": requests,
            "first_request": requests[0]["day"] if requests else None,
            "first_promoted": next((r["day"] for r in requests if r["promoted"]), None),
            "min_gap_days": min(gaps) if gaps else None,
            "payoffs": [p for r in requests if (p := replayed.payoff(r, scenario.payoff_days))],
            "served_log_loss": served,
            "stale_log_loss": stale,
            "breach_days": sum(bool(d["breaches"]) for d in replayed.days),
        },
        "step": {
            "start": scenario.step_start.isoformat(),
            "request": step_request,
            "delay_days": delay,  # days of shifted traffic seen when the request is made
            "promoted": bool(step.retrains and step.retrains[0]["promoted"]),
        },
        "null": {
            "pairs": len(nulls),
            "false_alarm_pairs": len(false_alarms),
            "false_alarm_rate": len(false_alarms) / len(nulls) if nulls else None,
            "requests": sum(len(n["requests"]) for n in nulls),
            "days": null_days,
            "breach_day_rate": sum(len(n["breach_days"]) for n in nulls) / null_days if null_days else None,
        },
    }


def render(name: str, outcome: dict) -> str:
    r, s, n = outcome["replay"], outcome["step"], outcome["null"]
    lines = [f"### {name}: {json.dumps(outcome['policy'])}", ""]
    lines.append(
        f"- Replay {outcome['scenario']['champion_end']} +1 .. {outcome['scenario']['last']} ({r['days']} days): "
        f"{len(r['requests'])} retrain requests, first {r['first_request']}, first promoted {r['first_promoted']}, "
        f"shortest gap {r['min_gap_days']} days; breaching days {r['breach_days']}"
    )
    for q in r["requests"]:
        verdict = "promoted" if q["promoted"] else "rejected by the gate: " + "; ".join(q["gate_reasons"])
        lines.append(f"  - {q['day']}: {q['reason']} -> v{q['version']} {verdict}")
    for p in r["payoffs"]:
        lines.append(
            f"  - after {p['day']}, {p['days']} days ({p['rows']} flights): log loss served {p['served']:.4f} "
            f"vs stale {p['stale']:.4f} ({p['stale'] - p['served']:+.4f} per flight)"
        )
    lines.append(
        f"- Whole replay: log loss served {r['served_log_loss']:.4f} vs never retrained {r['stale_log_loss']:.4f}"
    )
    lines.append(
        f"- Step to July traffic from {s['start']}: retrain requested {s['request']} "
        f"(detection delay {s['delay_days']} days), candidate {'promoted' if s['promoted'] else 'not promoted'}"
    )
    lines.append(
        f"- Null control: {n['false_alarm_pairs']} of {n['pairs']} pairs requested a retrain "
        f"(false-alarm rate {n['false_alarm_rate']:.2f}); breaching days {n['breach_day_rate']:.2f} of {n['days']}"
    )
    return "\n".join(lines)
