"""`make up` (platform up): the Airflow UI behind a login, the DAGs unpaused, the stream processor, Prometheus and
Alertmanager with every target up, a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines.settings import load_settings, settings_environment

pytestmark = pytest.mark.e2e
BASE = "http://127.0.0.1:8080"


def test_up_serves_the_ui_behind_a_login_and_stops_on_ctrl_c(tmp_path):
    settings = load_settings(data_root=tmp_path / "var")
    env = {**os.environ, **settings_environment(settings)}
    platform = Path(sys.executable).with_name("platform")
    process = subprocess.Popen(
        [str(platform), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while not any("Stop with Ctrl-C" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "platform up did not come up:\n" + "".join(lines)
            lines.append(process.stdout.readline())
        user, password = next(line for line in lines if "login:" in line).split("login:")[1].strip().split(" / ")

        assert httpx.get(f"{BASE}/api/v2/dags", timeout=10).status_code == 401  # nothing without a login
        wrong = {"username": user, "password": "wrong"}  # pragma: allowlist secret
        assert httpx.post(f"{BASE}/auth/token", json=wrong).status_code == 401
        token = httpx.post(f"{BASE}/auth/token", json={"username": user, "password": password}, timeout=10)
        assert token.status_code in (200, 201), token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        dags = httpx.get(f"{BASE}/api/v2/dags", headers=headers, timeout=10).json()["dags"]
        paused = {d["dag_id"]: d["is_paused"] for d in dags}
        # the ingest runs daily; the stream's days reach the reconciliation through its watcher in the triggerer
        assert paused["flight_delay_ingest"] is False and paused["flight_delay_reconciliation"] is False
        assert httpx.get(f"{BASE}/", timeout=10).status_code == 200
        # the flights' stream processor, in a process group of its own, with its health and metrics
        processor = f"http://127.0.0.1:{settings.stream_processor_port}"
        assert any(f"Stream processor of flight_delay: {processor}/healthz" in line for line in lines), lines
        health = httpx.get(f"{processor}/healthz", timeout=10).json()
        assert health["usecase"] == "flight_delay" and "weather_observations" in health["streams"]
        assert "platform_stream_lag_events" in httpx.get(f"{processor}/metrics", timeout=10).text
        # Prometheus scraping the model service, the exporter and the processor; Alertmanager beside it
        prometheus = f"http://127.0.0.1:{settings.prometheus_port}"
        assert any(f"Prometheus: {prometheus}" in line for line in lines), lines
        deadline, health, errors = time.monotonic() + 180, {}, {}
        while time.monotonic() < deadline and (not health or set(health.values()) != {"up"}):  # every 15 s
            targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            errors = {t["labels"]["job"]: t["lastError"] for t in targets if t["lastError"]}
            time.sleep(1)
        # With the session's own Vault (not one `make up` created) the model service is not started, nor scraped.
        serving = any("Model service:" in line for line in lines)
        expected = {"platform_exporter": "up", "stream_processor": "up", **({"model_service": "up"} if serving else {})}
        assert health == expected, errors
        alertmanager = f"http://127.0.0.1:{settings.alertmanager_port}"
        assert httpx.get(f"{alertmanager}/-/ready", timeout=10).status_code == 200

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
        assert "Airflow stopped." in process.stdout.read()
        for stopped in (BASE, processor, prometheus, alertmanager):
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{stopped}/", timeout=5)
    finally:
        if process.poll() is None:  # a failed assertion: stop what it started (Airflow, the service, Prometheus) too
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
