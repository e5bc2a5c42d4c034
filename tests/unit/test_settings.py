import pytest

from pipelines.errors import SettingsError
from pipelines.settings import load_settings


def test_embedded_defaults_need_no_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PLATFORM_WAREHOUSE_TARGET", raising=False)
    settings = load_settings(data_root=tmp_path)
    assert settings.warehouse_target == "duckdb"
    assert settings.feast_env == "local"
    assert settings.allowed_regions == ["me-central-1"]
    assert settings.warehouse_path == tmp_path / "warehouse" / "warehouse.duckdb"
    assert settings.airflow_dir == tmp_path / "airflow"
    assert settings.artifact_uri == (tmp_path / "artifacts").as_uri()


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("PLATFORM_DATA_ROOT", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("PLATFORM_WAREHOUSE_TARGET", "postgres")
    monkeypatch.setenv("PLATFORM_ALLOWED_REGIONS", '["me-central-1", "me-south-1"]')
    settings = load_settings()
    assert settings.data_root == tmp_path / "elsewhere"
    assert settings.warehouse_target == "postgres"
    assert settings.allowed_regions == ["me-central-1", "me-south-1"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PLATFORM_WAREHOUSE_TARGET", "oracle", "PLATFORM_WAREHOUSE_TARGET"),
        ("PLATFORM_FEAST_ENV", "staging", "PLATFORM_FEAST_ENV"),
        ("PLATFORM_ARTIFACT_STORE_URI", "ftp://host/models", "PLATFORM_ARTIFACT_STORE_URI"),
        ("PLATFORM_VAULT_PORT", "eighty", "PLATFORM_VAULT_PORT"),
        ("PLATFORM_AUDIT_TARGET", "syslog", "PLATFORM_AUDIT_TARGET"),
        ("PLATFORM_AIRFLOW_IDLE_SLEEP_SECONDS", "soon", "PLATFORM_AIRFLOW_IDLE_SLEEP_SECONDS"),
    ],
)
def test_a_wrong_value_names_its_variable(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert named in str(raised.value)
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize("variable", ["PLATFORM_POSTGRES_URL", "PLATFORM_PII_SALT"])
def test_secrets_in_the_environment_are_refused_with_where_they_live_now(monkeypatch, tmp_path, variable):
    monkeypatch.setenv(variable, "postgresql://u:hunter2@db/wh")  # pragma: allowlist secret
    with pytest.raises(SettingsError, match=f"{variable}.*Vault") as raised:
        load_settings(data_root=tmp_path)
    assert "hunter2" not in str(raised.value)


def test_airflow_time_zone_and_port_are_settings_defaulting_to_utc_and_8080(tmp_path):
    """Nothing of a worked example in Airflow's own configuration: two platforms can share a machine."""
    from pipelines.orchestration.airflow_env import airflow_environment

    default = airflow_environment(load_settings(data_root=tmp_path / "a"))
    assert (default["AIRFLOW__CORE__DEFAULT_TIMEZONE"], default["AIRFLOW__API__PORT"]) == ("UTC", "8080")
    chosen = airflow_environment(load_settings(data_root=tmp_path / "b", airflow_timezone="Asia/Dubai",
                                               airflow_api_port=8181))  # fmt: skip
    assert (chosen["AIRFLOW__CORE__DEFAULT_TIMEZONE"], chosen["AIRFLOW__API__PORT"]) == ("Asia/Dubai", "8181")
    with pytest.raises(SettingsError, match="PLATFORM_AIRFLOW_TIMEZONE: .*'Mars/Olympus' is not an IANA time zone"):
        load_settings(data_root=tmp_path / "c", airflow_timezone="Mars/Olympus")
