"""The BentoML service as consumers meet it: a real `bentoml serve` process on the session's built
features and a champion trained on them, reached over HTTP (and HTTPS with a self-signed pair)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time

import httpx
import numpy as np
import pytest

from pipelines.errors import ArtifactTampered
from pipelines.registry.registry import Registry
from pipelines.security.audit import audit_ledger
from pipelines.security.store import artifact_store
from serving import predictions
from serving.auth import create_key
from serving.local import ServiceFailed, wait_ready
from serving.model import ModelUnavailable, load_model
from serving.schema import MAX_BATCH
from tests.conftest import FLIGHT_DELAY, make_settings
from tests.e2e.conftest import auth, flight, serve, tampered

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(champion, openbao, tmp_path_factory):
    settings, version = champion
    keys = {
        "predict": create_key(openbao.root, "consumer-test", ["predict"]),
        "admin": create_key(openbao.root, "operator-test", ["admin"]),
        "bikes": create_key(openbao.root, "bikes-only", ["predict:bike_rentals"]),
        "flights": create_key(openbao.root, "flights-only", ["predict:flight_delay"]),
    }
    with serve(settings, openbao, tmp_path_factory.mktemp("svc")) as base:
        wait_ready(base)
        yield settings, version, base, keys


def test_ready_and_serving_the_champion_beside_a_use_case_without_a_model(service):
    settings, version, base, keys = service
    status = httpx.post(f"{base}/status", json={}).json()
    assert status["ready"] is True
    assert status["usecases"]["flight_delay"] == {"ready": True, "reason": "ready", "route": "/predict", "shadow": None,
                                                  "variants": [{"name": "champion", "version": version,
                                                                "weight": 100.0}]}  # fmt: skip
    # the bike-rental use case is served by the same deployment, at its own route; it has no model here
    bikes = status["usecases"]["bike_rentals"]
    assert (bikes["ready"], bikes["route"]) == (False, "/bike_rentals/predict")
    assert "bike_rentals has no champion yet" in bikes["reason"]
    hour = {
        "hour_id": "2013-01-05T08",
        "hour_start": "2013-01-05T08:00:00",
        "temp_c": 3.0,
        "feels_like_c": 1.0,
        "humidity_pct": 60.0,
        "wind_speed": 12.0,
        "weather_code": 1,
        "is_holiday": 0,
        "is_workingday": 0,
    }
    response = httpx.post(f"{base}/bike_rentals/predict", json={"hours": [hour]}, headers=auth(keys["predict"]))
    assert response.status_code == 503 and "no bike_rentals model is being served" in response.json()["error"]


def test_predict_answers_and_every_answer_is_logged(service):
    settings, version, base, keys = service
    before = len(predictions.read(settings, FLIGHT_DELAY))
    responses = []
    for n in range(5):
        body = {"flights": [flight(n), flight(100 + n, carrier="AA", origin="JFK", destination="LAX", tailnum=None)]}
        response = httpx.post(f"{base}/predict", json=body, headers=auth(keys["predict"]), timeout=30)
        assert response.status_code == 200, response.text
        responses.append(response.json())
    for answer in responses:
        assert [p["model_version"] for p in answer["predictions"]] == [version, version]
        assert all(0 <= p["probability"] <= 1 and p["variant"] == "champion" for p in answer["predictions"])
    logged = predictions.read(settings, FLIGHT_DELAY)
    assert len(logged) - before == 10
    mine = logged[logged.request_id.isin([a["request_id"] for a in responses])]
    served = {(a["request_id"], p["flight_id"]): p["probability"] for a in responses for p in a["predictions"]}
    assert {(r.request_id, r.flight_id): r.probability for r in mine.itertuples()} == served
    assert "N14228" not in mine.to_csv()  # the tail number is never logged in clear
    assert {"dep_hour", "carrier_late_rate_7d", "latency_ms", "caller"} <= set(mine.columns)


def test_the_served_probability_is_the_models_on_the_online_features(service, openbao):
    settings, version, base, keys = service
    response = httpx.post(f"{base}/predict", json={"flights": [flight(7)]}, headers=auth(keys["predict"]))
    served = response.json()["predictions"][0]["probability"]
    logged = predictions.read(settings, FLIGHT_DELAY)
    row = logged[logged.request_id == response.json()["request_id"]].iloc[0]
    ledger = audit_ledger(settings)
    model = load_model(settings, FLIGHT_DELAY, artifact_store(settings, ledger), openbao.role("serving"), ledger)
    x = np.array([[row[f] for f in model.features]], dtype=np.float32)
    assert model.predict(x)[0] == pytest.approx(served, abs=1e-6)
    assert row["dep_hour"] == pytest.approx(17.5)


def _metric(text: str, name: str, **labels) -> float:
    """The value of the sample `name{labels}` in a Prometheus exposition (0 when it has none yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_count_requests_refusals_and_items_per_use_case_and_variant(service):
    """/metrics (no key: nothing secret) carries BentoML's metrics and the platform's: a request answered, one
    refused for its key and one for its body each count with their status, and the live variant's version."""
    _, version, base, keys = service
    before = httpx.get(f"{base}/metrics").text
    body = {"flights": [flight(1), flight(2)]}
    assert httpx.post(f"{base}/predict", json=body, headers=auth(keys["predict"]), timeout=30).status_code == 200
    assert httpx.post(f"{base}/predict", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    bad = {"flights": [{**flight(3), "carrier": "united"}]}
    assert httpx.post(f"{base}/predict", json=bad, headers=auth(keys["predict"])).status_code == 400
    after = httpx.get(f"{base}/metrics")
    assert after.status_code == 200 and "bentoml_service_request_total" in after.text

    def grew(name: str, **labels) -> float:
        return _metric(after.text, name, **labels) - _metric(before, name, **labels)

    flights = {"usecase": "flight_delay"}
    assert grew("platform_serving_requests_total", **flights, code="200") == 1
    assert grew("platform_serving_requests_total", **flights, code="401") == 1
    assert grew("platform_serving_requests_total", **flights, code="400") == 1
    assert grew("platform_serving_errors_total", **flights, kind="unauthorized") == 1
    assert grew("platform_serving_errors_total", **flights, kind="invalid") == 1
    assert grew("platform_serving_items_total", **flights, variant="champion") == 2
    assert grew("platform_serving_request_duration_seconds_count", **flights) == 3
    assert grew("platform_serving_feature_lookup_duration_seconds_count", **flights) == 1
    assert grew("platform_serving_scoring_duration_seconds_count", **flights, variant="champion") == 1
    assert _metric(after.text, "platform_serving_model_version", **flights, variant="champion") == version
    assert _metric(after.text, "platform_serving_variant_weight_ratio", **flights, variant="champion") == 1.0


@pytest.mark.parametrize(
    ("headers", "path", "status", "message"),
    [
        ({}, "/predict", 401, "missing or unknown API key"),
        ({"Authorization": "Bearer fo_not-a-key"}, "/predict", 401, "missing or unknown API key"),
        ("admin", "/predict", 403, "lacks the 'predict:flight_delay' scope"),
        ("bikes", "/predict", 403, "lacks the 'predict:flight_delay' scope"),
        ("predict", "/admin/reload", 403, "lacks the 'admin' scope"),
    ],
)
def test_keys_and_scopes_are_enforced_with_clear_messages(service, headers, path, status, message):
    _, _, base, keys = service
    headers = auth(keys[headers]) if isinstance(headers, str) else headers
    response = httpx.post(f"{base}{path}", json={"flights": [flight(1)]}, headers=headers)
    assert response.status_code == status and message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"flights": [flight(1, carrier="united")]}, "carrier"),
        ({"flights": [flight(1, surprise=1)]}, "surprise"),
        ({"flights": [flight(1, carrier="ZZ")]}, "unknown carrier 'ZZ'"),
        ({"flights": [flight(1, flight_id="AB\u202eCD")]}, "flight_id"),  # a bidirectional override
        ({"flights": [flight(1, flight_id="AB\u0000CD")]}, "flight_id"),
        ({"flights": [flight(1, flight_id="AB CD")]}, "flight_id"),  # outside the spec's pattern
        ({"flights": [flight(1, origin="BOS")]}, "unknown origin 'BOS'"),
        ({"flights": [flight(1, origin=7)]}, "origin"),
        ({"flights": [flight(1, scheduled_departure="tomorrow-ish")]}, "scheduled_departure"),
        ({"flights": [flight(1, scheduled_departure="0001-01-01T00:00:00")]}, "outside 1990-01-01 .. 2100-01-01"),
        ({"flights": []}, "flights"),
        ({"flights": [flight(n) for n in range(MAX_BATCH + 1)]}, "flights"),
    ],
)
def test_bad_requests_get_400_naming_the_field(service, body, field):
    _, _, base, keys = service
    response = httpx.post(f"{base}/predict", json=body, headers=auth(keys["predict"]), timeout=30)
    assert response.status_code == 400, response.text
    assert field in response.text


def test_a_key_created_while_the_service_runs_works_at_once_without_a_reload(service, openbao):
    """A probe found a key made by `platform api-key` refused (401) until an admin reload, and a new admin
    key unable to do that reload: the service rereads its key set on an unknown key."""
    _, version, base, _ = service
    late = create_key(openbao.root, "late-consumer", ["predict"])
    time.sleep(2)  # the earlier tests' unknown keys made the service reread its keys moments ago
    assert httpx.post(f"{base}/predict", json={"flights": [flight(3)]}, headers=auth(late)).status_code == 200
    admin = create_key(openbao.root, "late-operator", ["admin"])
    time.sleep(2)  # past the service's bound on rereads after the consumer's key
    reload = httpx.post(f"{base}/admin/reload", json={}, headers=auth(admin), timeout=60)
    assert reload.status_code == 200 and reload.json()["usecases"]["flight_delay"]["variants"][0]["version"] == version


def test_https_with_a_self_signed_certificate(champion, openbao, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings, _ = champion
    with serve(settings, openbao, tmp_path, ssl=(cert_path, key_path)) as base:
        assert base.startswith("https://")
        assert wait_ready(base, verify=str(cert_path))["ready"] is True
        with pytest.raises(httpx.ConnectError):  # an unknown certificate is refused by a verifying client
            httpx.get(f"{base}/livez", timeout=10)


def test_no_champion_means_not_ready_with_the_reason(built, openbao, tmp_path):
    settings = make_settings(built.settings.data_root, artifact_store_uri=(tmp_path / "empty").as_uri())
    with serve(settings, openbao, tmp_path) as base:
        assert httpx.get(f"{base}/readyz", timeout=60).status_code == 503
        status = httpx.post(f"{base}/status", json={}).json()
        assert status["ready"] is False and "has no champion yet" in status["usecases"]["flight_delay"]["reason"]
        with pytest.raises(
            ServiceFailed, match="not ready: .*flight_delay: NoModelYet: flight_delay has no champion yet: train one"
        ):
            wait_ready(base, timeout_s=1)


def test_a_tampered_champion_is_never_loaded(champion, openbao, tmp_path):
    settings, version = champion
    ledger = audit_ledger(settings)
    store = artifact_store(settings, ledger)
    registry = Registry(store, openbao.role("serving"), ledger)
    digest = registry.manifest("flight_delay", version)["files"]["model.onnx"]["sha256"]
    with tampered(store, digest), pytest.raises(ArtifactTampered):
        load_model(settings, FLIGHT_DELAY, store, openbao.role("serving"), ledger)


def test_a_model_trained_on_other_feature_definitions_is_refused(champion, openbao, monkeypatch):
    settings, _ = champion
    ledger = audit_ledger(settings)
    import serving.model

    monkeypatch.setattr(serving.model, "feature_definitions_hash", lambda *_: "0" * 64)  # definitions changed
    with pytest.raises(ModelUnavailable, match="FeatureService flight_delay_v3 with definitions .* refusing"):
        load_model(settings, FLIGHT_DELAY, artifact_store(settings, ledger), openbao.role("serving"), ledger)


def test_replaying_a_day_sends_its_flights_and_logs_them(service, built):
    from serving.replay import day_requests, replay

    settings, _, base, keys = service
    day = built.days[-1]
    before = len(predictions.read(settings, FLIGHT_DELAY))
    report = replay(settings, FLIGHT_DELAY, day, base, keys["flights"], batch=200)
    assert report.sent == len(day_requests(settings, FLIGHT_DELAY, day)) > 500
    assert report.answered == report.sent and report.failed == 0 and report.human_review == 0
    assert len(predictions.read(settings, FLIGHT_DELAY)) - before == report.sent


def test_ab_split_and_shadow_from_the_deployment_plan(service, openbao, trained_models):
    """A challenger takes a sticky share of live traffic; a shadow scores everything and is only logged."""
    from pipelines.deploy.plan import DeploymentPlan, Variant, read_plan, write_plan

    settings, champion_version, base, keys = service
    challenger = trained_models[1]["challenger"]
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), openbao.role("evaluation"), ledger)
    _, raw = read_plan(registry, "flight_delay")
    split = DeploymentPlan([Variant("champion", champion_version, 70), Variant("challenger", challenger, 30)],
                           shadow=None, reason="A/B test")  # fmt: skip
    raw_written = write_plan(registry, "flight_delay", split, expected=raw).to_json()
    reload = httpx.post(f"{base}/admin/reload", json={}, headers=auth(keys["admin"]), timeout=60).json()
    assert [(v["name"], v["version"], v["weight"]) for v in reload["usecases"]["flight_delay"]["variants"]] == [
        ("champion", champion_version, 70.0), ("challenger", challenger, 30.0)]  # fmt: skip
    body = {"flights": [flight(n) for n in range(400)]}
    first = httpx.post(f"{base}/predict", json=body, headers=auth(keys["predict"]), timeout=60).json()
    again = httpx.post(f"{base}/predict", json=body, headers=auth(keys["predict"]), timeout=60).json()
    variants = [p["variant"] for p in first["predictions"]]
    assert variants == [p["variant"] for p in again["predictions"]]  # sticky per flight
    assert variants.count("challenger") / len(variants) == pytest.approx(0.30, abs=0.07)
    assert {p["model_version"] for p in first["predictions"] if p["variant"] == "challenger"} == {challenger}

    shadowed = DeploymentPlan([Variant("champion", champion_version, 100)], Variant("challenger", challenger),
                              reason="shadow")  # fmt: skip
    write_plan(registry, "flight_delay", shadowed, expected=raw_written)
    httpx.post(f"{base}/admin/reload", json={}, headers=auth(keys["admin"]), timeout=60)
    answer = httpx.post(
        f"{base}/predict", json={"flights": [flight(1), flight(2)]}, headers=auth(keys["predict"])
    ).json()
    assert [p["variant"] for p in answer["predictions"]] == ["champion", "champion"]
    logged = predictions.read(settings, FLIGHT_DELAY)
    mine = logged[logged.request_id == answer["request_id"]]
    assert sorted(mine.variant) == ["champion", "champion", "shadow:challenger", "shadow:challenger"]


def test_a_burst_beyond_the_concurrency_limit_gets_429_loses_nothing_and_recovers(service):
    """Under load every 200 is logged, the excess is told to back off (429), nothing answers 5xx."""
    from concurrent.futures import ThreadPoolExecutor

    settings, _, base, keys = service
    status = httpx.post(f"{base}/status", json={}).json()["usecases"]["flight_delay"]
    rows_per_flight = 2 if status["shadow"] else 1  # a shadow logs too
    before = len(predictions.read(settings, FLIGHT_DELAY))
    body = {"flights": [flight(n) for n in range(300)]}

    def call(_: int) -> int:
        return httpx.post(f"{base}/predict", json=body, headers=auth(keys["predict"]), timeout=120).status_code

    with ThreadPoolExecutor(max_workers=96) as pool:
        statuses = list(pool.map(call, range(96)))
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) > 0 and statuses.count(200) > 0
    assert (
        len(predictions.read(settings, FLIGHT_DELAY)) - before
        == statuses.count(200) * len(body["flights"]) * rows_per_flight
    )
    assert call(0) == 200  # and it recovers


def test_an_oversized_body_is_refused_before_it_is_read(service):
    _, _, base, keys = service
    huge = {"flights": [flight(n, flight_id="X" * 60) for n in range(4000)]}
    response = httpx.post(f"{base}/predict", json=huge, headers=auth(keys["predict"]), timeout=60)
    assert response.status_code == 413 and "exceeds the 512 KiB limit" in response.json()["error"]


def test_a_ten_megabyte_body_gets_its_413_not_a_connection_reset(service):
    """A probe's 10 MB body was answered while it was still being sent, and the client saw a reset."""
    _, _, base, keys = service
    body = b'{"flights": [' + b'{"flight_id": "x"},' * (10 * 1024 * 1024 // 19) + b"{}]}"
    response = httpx.post(f"{base}/predict", content=body, headers={**auth(keys["predict"]),
                          "content-type": "application/json"}, timeout=60)  # fmt: skip
    assert response.status_code == 413, response.text
    assert f"request body of {len(body)} bytes exceeds the 512 KiB limit" in response.json()["error"]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_requests_from_the_openapi_schema_never_get_a_5xx(service, mode):
    """Schemathesis generates /predict bodies from the service's own OpenAPI document: valid ones
    (whose codes may still be unknown: 400) and schema-violating ones. None may get a 5xx or a stack
    trace; a 200 answers every flight with a probability in [0, 1]; a 4xx says what was wrong."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings

    _, _, base, keys = service
    operation = schemathesis.openapi.from_url(f"{base}/docs.json")["/predict"]["POST"]
    statuses = []

    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(schemathesis.GenerationMode(mode)))
    def check(case):
        response = case.call(base_url=base, headers=auth(keys["predict"]), timeout=60)
        statuses.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text)
        assert "Traceback" not in response.text
        if response.status_code == 200:
            answers = response.json()["predictions"]
            assert len(answers) == len(case.body["flights"])
            assert all(0 <= a["probability"] <= 1 for a in answers)
        else:
            assert response.status_code in (400, 413, 422) and response.text.strip(), response.text

    check()
    assert len(statuses) >= 20
    if mode == "negative":
        assert 200 not in statuses  # a body that violates the schema is never scored
    else:
        assert 200 in statuses  # generated valid bodies do reach the model


def test_a_port_another_process_holds_is_refused_before_anything_starts(tmp_path):
    """A model service left running by an earlier run would answer in the new one's place, with its own
    identity and models (a `make run` then reported the old one's Vault refusal): the port is checked first."""
    import socket

    from serving.local import running_service
    from tests.conftest import free_port

    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        starting = running_service(make_settings(tmp_path / "var"), "role", "secret", port, log=tmp_path / "log")
        with pytest.raises(ServiceFailed, match=f"port {port} is already in use"), starting:
            pass
    assert not (tmp_path / "log").exists(), "nothing was started"
