"""The platform exporter: what the data root and the ledger say, as Prometheus gauges read at each scrape.

`platform exporter` serves `/metrics` on 127.0.0.1:PLATFORM_EXPORTER_PORT (9464), per use case:

- `platform_data_landed_through_timestamp_seconds`: the end (the next local midnight, as a Unix time) of the
  newest day whose partitions of every day-partitioned table landed;
- `platform_data_materialized_through_timestamp_seconds`: how far every feature view of the use case's
  FeatureService is materialized into the online store (the oldest of their newest materializations);
- `platform_gate_last_passed`, `platform_gate_last_version`: the newest gate decision in the ledger;
- from the monitoring DAG's newest assessment: `platform_drift_feature_score`, `platform_drift_prediction_score`,
  `platform_model_loss_ratio` (when labels were pooled), `platform_monitoring_retrain_requested`,
  `platform_monitoring_assessed_day_timestamp_seconds`;

and for the platform: `platform_audit_ledger_records`, `platform_audit_ledger_intact` (1 when the hash chain
verifies). The rules of pipelines/alerting/rules.py alert on them; the stream processors export their own
lag (`platform_stream_lag_events`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from prometheus_client.core import GaugeMetricFamily

from pipelines.ingest.landing import landed_through
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

log = logging.getLogger(__name__)


def _end_of(day: dt.date, usecase: UseCase) -> float:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), usecase.tz).timestamp()


def materialized_through(settings: Settings, usecase: UseCase) -> dt.datetime | None:
    """The instant up to which every view of the use case's FeatureService is materialized (None before any)."""
    from pipelines.features.store import feature_store

    store = feature_store(settings)
    ends = []
    for projection in store.get_feature_service(usecase.features.feature_service).feature_view_projections:
        intervals = store.get_feature_view(projection.name).materialization_intervals
        if not intervals:
            return None
        ends.append(max(end for _, end in intervals))
    return min(ends) if ends else None


def newest_assessment(settings: Settings, usecase: UseCase) -> dict | None:
    folder = settings.data_root / "monitoring" / usecase.name
    days = sorted(p for p in folder.glob("*/assessment.json")) if folder.exists() else []
    return json.loads(days[-1].read_text()) if days else None


class PlatformCollector:
    """A prometheus_client collector that reads the platform's state at each scrape."""

    def __init__(self, settings: Settings, usecases: list[UseCase]):
        self.settings, self.usecases = settings, usecases

    def describe(self):
        return []  # read at collect time only: registering must not touch the data root

    def collect(self):
        from pipelines.errors import PlatformError
        from pipelines.security.audit import audit_ledger

        gauges = {name: GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in (
            ("platform_data_landed_through_timestamp_seconds", "End of the newest fully landed day", ["usecase"]),
            ("platform_data_materialized_through_timestamp_seconds", "How far the online store is materialized",
             ["usecase"]),
            ("platform_gate_last_passed", "1 when the newest gate decision passed its candidate", ["usecase"]),
            ("platform_gate_last_version", "The version the newest gate decision judged", ["usecase"]),
            ("platform_drift_feature_score", "Weighted feature drift beyond natural, newest assessment", ["usecase"]),
            ("platform_drift_prediction_score", "Prediction drift beyond natural, newest assessment", ["usecase"]),
            ("platform_model_loss_ratio", "Live loss over the reference's, newest assessment", ["usecase"]),
            ("platform_monitoring_retrain_requested", "1 when the newest assessment asked for a retrain", ["usecase"]),
            ("platform_monitoring_assessed_day_timestamp_seconds", "End of the newest assessed day", ["usecase"]),
            ("platform_audit_ledger_records", "Records in the audit ledger", []),
            ("platform_audit_ledger_intact", "1 when the ledger's hash chain verifies", []),
        )}  # fmt: skip
        ledger = audit_ledger(self.settings)
        try:
            chain = ledger.verify()
            gauges["platform_audit_ledger_records"].add_metric([], chain.records)
            gauges["platform_audit_ledger_intact"].add_metric([], 1)
        except PlatformError as exc:
            log.error("audit ledger: %s", exc)
            gauges["platform_audit_ledger_intact"].add_metric([], 0)
        decisions = {}
        for record in ledger.records() if gauges["platform_audit_ledger_intact"].samples[0].value else []:
            if record.action == "gate.decision":
                name, _, version = record.subject.partition("/v")
                decisions[name] = (int(version), bool(record.details.get("passed")))
        for usecase in self.usecases:
            name = usecase.name
            landed = landed_through(self.settings, usecase)
            if landed:
                gauges["platform_data_landed_through_timestamp_seconds"].add_metric([name], _end_of(landed, usecase))
            try:
                materialized = materialized_through(self.settings, usecase)
            except Exception as exc:  # noqa: BLE001 (a store not applied yet has no FeatureService: not materialized)
                log.info("%s: not materialized (%s)", name, exc)
                materialized = None
            if materialized:
                gauges["platform_data_materialized_through_timestamp_seconds"].add_metric(
                    [name], materialized.timestamp()
                )
            if name in decisions:
                gauges["platform_gate_last_version"].add_metric([name], decisions[name][0])
                gauges["platform_gate_last_passed"].add_metric([name], int(decisions[name][1]))
            found = newest_assessment(self.settings, usecase)
            if found:
                assessed = found["assessment"]
                gauges["platform_drift_feature_score"].add_metric([name], assessed["feature_drift"])
                gauges["platform_drift_prediction_score"].add_metric([name], assessed["prediction_drift"])
                if assessed.get("loss_ratio") is not None:
                    gauges["platform_model_loss_ratio"].add_metric([name], assessed["loss_ratio"])
                gauges["platform_monitoring_retrain_requested"].add_metric([name], int(found["decision"]["retrain"]))
                day = dt.date.fromisoformat(assessed["day"])
                gauges["platform_monitoring_assessed_day_timestamp_seconds"].add_metric([name], _end_of(day, usecase))
        yield from gauges.values()


def serve_exporter(settings: Settings, usecases: list[UseCase], port: int):
    """`/metrics` of a PlatformCollector on 127.0.0.1:`port`, in a daemon thread; returns the server."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(PlatformCollector(settings, usecases))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
