"""The model service's Prometheus metrics, per use case and variant, served at `/metrics` after BentoML's own.

Names and labels follow the Prometheus client's conventions (base units, `_total` counters, `_seconds`
histograms). They are what the spec's objectives are measured on (pipelines/alerting/rules.py):

- `platform_serving_requests_total{usecase, code}`: every prediction request, by the HTTP status it got
  (the refusals of the key check and the body limit included): availability is the share without a 5xx;
- `platform_serving_request_duration_seconds{usecase}`: from the request's arrival to its answer; latency
  is the share within the objective's threshold, which must be one of LATENCY_BUCKETS;
- `platform_serving_errors_total{usecase, kind}`: refusals by reason (unauthorized, forbidden, too_large,
  invalid, unavailable, error) and `variant_failure`: an item whose variant failed, answered by the champion;
- `platform_serving_items_total{usecase, variant}`: items answered, by the variant that answered;
- `platform_serving_scoring_duration_seconds{usecase, variant}`,
  `platform_serving_feature_lookup_duration_seconds{usecase}`;
- `platform_serving_model_version{usecase, variant}`, `platform_serving_variant_weight_ratio{usecase, variant}`:
  what is live, as the last (re)load set it.

The registry is the process's own: the service runs one worker, and `__metrics__` appends it to BentoML's.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pipelines.usecases.objectives import LATENCY_BUCKETS

REFUSALS = {400: "invalid", 401: "unauthorized", 403: "forbidden", 411: "too_large", 413: "too_large",
            422: "invalid", 503: "unavailable"}  # fmt: skip

REGISTRY = CollectorRegistry()
REQUESTS = Counter("platform_serving_requests", "Prediction requests, by HTTP status code", ["usecase", "code"],
                   registry=REGISTRY)  # fmt: skip
REQUEST_SECONDS = Histogram("platform_serving_request_duration_seconds", "Prediction request duration, arrival to "
                            "answer", ["usecase"], buckets=LATENCY_BUCKETS, registry=REGISTRY)  # fmt: skip
ERRORS = Counter("platform_serving_errors", "Refused requests by reason, and items whose variant failed",
                 ["usecase", "kind"], registry=REGISTRY)  # fmt: skip
ITEMS = Counter("platform_serving_items", "Items answered, by the variant that answered", ["usecase", "variant"],
                registry=REGISTRY)  # fmt: skip
SCORING_SECONDS = Histogram("platform_serving_scoring_duration_seconds", "Scoring time of one request's items",
                            ["usecase", "variant"], buckets=LATENCY_BUCKETS, registry=REGISTRY)  # fmt: skip
LOOKUP_SECONDS = Histogram("platform_serving_feature_lookup_duration_seconds", "Online feature lookup time of one "
                           "request", ["usecase"], buckets=LATENCY_BUCKETS, registry=REGISTRY)  # fmt: skip
MODEL_VERSION = Gauge("platform_serving_model_version", "Registry version each live variant serves",
                      ["usecase", "variant"], registry=REGISTRY)  # fmt: skip
VARIANT_WEIGHT = Gauge("platform_serving_variant_weight_ratio", "Share of the traffic each live variant gets",
                       ["usecase", "variant"], registry=REGISTRY)  # fmt: skip


def observe_request(usecase: str, code: int, seconds: float) -> None:
    """One prediction request's outcome: its status code, duration, and the reason of a refusal."""
    REQUESTS.labels(usecase, str(code)).inc()
    REQUEST_SECONDS.labels(usecase).observe(seconds)
    if code >= 400:
        ERRORS.labels(usecase, REFUSALS.get(code, "error")).inc()


def observe_plan(usecase: str, plan) -> None:
    """The variants a use case now serves (a reload replaces the previous ones)."""
    for gauge in (MODEL_VERSION, VARIANT_WEIGHT):
        for labels in [s.labels for m in gauge.collect() for s in m.samples if s.labels["usecase"] == usecase]:
            gauge.remove(usecase, labels["variant"])
    for variant in plan.variants:
        MODEL_VERSION.labels(usecase, variant.name).set(variant.version)
        VARIANT_WEIGHT.labels(usecase, variant.name).set(variant.weight / 100)


def exposition() -> str:
    return generate_latest(REGISTRY).decode()
