"""A use-case spec is validated when it is read: a bad field fails with its dotted path, the file and
the fix; overrides are validated like the file; a platform that may store data outside the spec's
regions is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.settings import REPO_ROOT, load_settings
from pipelines.usecases.spec import HYPERPARAMETERS, UseCaseError, load_usecase, resolve_usecase, windows

SHIPPED = REPO_ROOT / "usecases"


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A private copy of the shipped specs, for tests that break one."""
    shutil.copytree(SHIPPED, tmp_path / "usecases")
    return tmp_path / "usecases"


def edit(specs: Path, name: str, change) -> None:
    path = specs / name / "usecase.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_the_shipped_flight_delay_spec_is_valid_and_complete():
    spec = load_usecase(SHIPPED, "flight_delay")
    assert spec.name == "flight_delay" and spec.timezone == "America/New_York"
    assert set(spec.training.families) == {"xgboost", "mlp"}
    assert spec.training.windows.model_dump() == {"train_days": 21, "validation_days": 7, "holdout_days": 7}
    assert spec.gate.slices == ["carrier", "origin", "dep_month"] and spec.monitoring.retraining.consecutive_days == 3
    assert spec.dag_id("training") == "flight_delay_training"


@pytest.mark.parametrize(
    "change, field, words",
    [
        (lambda d: d["gate"]["limits"].update(rmse={"max": 10}), "gate",
         "limits ['rmse'] are not metrics of a binary_classification"),
        (lambda d: d["gate"]["limits"].update(roc_auc={}), "gate.limits.roc_auc", "needs a min or a max"),
        (lambda d: d.update(task="ranking"), "task", "'regression'"),
        (lambda d: d["features"].update(entity_mart="hours"), "features", "not among the marts"),
        (lambda d: d["features"].update(entity_id="flight_id; drop table x"), "features.entity_id", "pattern"),
        (lambda d: d["features"]["request_time"].update(prefix="Dep"), "features.request_time.prefix", "pattern"),
        (lambda d: d["training"].update(schedule="every monday"), "training.schedule", "not a cron expression"),
        (lambda d: d["training"]["windows"].update(train_days=0), "training.windows.train_days", "greater than"),
        (lambda d: d["training"]["families"].update(lightgbm={}), "training.families.lightgbm", "xgboost"),
        (lambda d: d["training"]["families"]["xgboost"].update(depth=3), "training.families", "unknown hyperparameter"),
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone", "not an IANA time zone"),
        (lambda d: d["residency"].update(data_class="secret"), "residency.data_class", "restricted"),
        (lambda d: d["monitoring"]["retraining"].pop("cooldown_days"), "monitoring.retraining.cooldown_days",
         "Field required"),
        (lambda d: d["gate"].update(min_roc_auc=0.6), "gate.min_roc_auc", "Extra inputs are not permitted"),
        (lambda d: d["ingest"].update(last_day="2012-12-31"), "ingest", "before first_day"),
        (lambda d: d["sources"]["tables"]["flights"].update(rows_per_day=[2000, 1000]), "sources.tables.flights",
         "0 <= min <= max"),
        (lambda d: d["sources"]["tables"]["flights"].update(partition=["year", "month", "dayofmonth"]),
         "sources.tables.flights", "not among the columns"),
        (lambda d: d["sources"]["tables"]["flights"].update(partition=["day"]), "sources.tables.flights",
         "day-of-year column with the file's `year`"),
        (lambda d: d["sources"]["tables"]["planes"].update(rows_per_day=[1, 2]), "sources.tables.planes",
         "a reference table has none"),
        (lambda d: d["sources"]["tables"]["flights"]["columns"].update(year="integer"),
         "sources.tables.flights.columns.year", "int16"),
    ],
)  # fmt: skip
def test_an_invalid_field_fails_naming_its_path(specs, change, field, words):
    edit(specs, "flight_delay", change)
    with pytest.raises(UseCaseError) as failure:
        load_usecase(specs, "flight_delay")
    message = str(failure.value)
    assert f"{field}:" in message and words in message and "flight_delay/usecase.yaml" in message


def test_a_missing_spec_names_the_known_ones_and_the_scaffold(specs):
    with pytest.raises(
        UseCaseError, match=r"no spec at .*known: \['bike_rentals', 'flight_delay'.*platform new-usecase taxi_fares"
    ):
        load_usecase(specs, "taxi_fares")


def test_a_spec_whose_name_is_not_its_folder_is_refused(specs):
    shutil.copytree(specs / "flight_delay", specs / "flight_delay_copy")
    with pytest.raises(UseCaseError, match="name: 'flight_delay' must equal its folder's name 'flight_delay_copy'"):
        load_usecase(specs, "flight_delay_copy")


def test_yaml_that_is_not_a_mapping_is_refused(specs):
    (specs / "flight_delay" / "usecase.yaml").write_text("- just\n- a list\n")
    with pytest.raises(UseCaseError, match="must hold a mapping"):
        load_usecase(specs, "flight_delay")


def test_overrides_are_applied_and_validated_like_the_file():
    spec = load_usecase(SHIPPED, "flight_delay", {**windows(3, 1, 1), "gate.limits.roc_auc.min": 0.55})
    assert (spec.training.windows.train_days, spec.gate.limits["roc_auc"].min) == (3, 0.55)
    assert load_usecase(SHIPPED, "flight_delay").training.windows.train_days == 21  # the file is unchanged
    with pytest.raises(UseCaseError, match="gate.tolerance_abs: Input should be greater than or equal to 0"):
        load_usecase(SHIPPED, "flight_delay", {"gate.tolerance_abs": -1})
    with pytest.raises(UseCaseError, match="override 'gates.tolerance_abs'.*gates is not a section"):
        load_usecase(SHIPPED, "flight_delay", {"gates.tolerance_abs": 0.5})


def test_hyperparameters_left_out_of_a_spec_take_the_trainers_defaults():
    spec = load_usecase(SHIPPED, "flight_delay", {"training.families": {"xgboost": {"max_depth": 3}}})
    assert spec.training.hyperparameters("xgboost") == {**HYPERPARAMETERS["xgboost"], "max_depth": 3}


def test_a_platform_allowed_to_store_outside_the_spec_regions_is_refused(tmp_path):
    settings = load_settings(data_root=tmp_path, allowed_regions=["me-central-1", "eu-west-1"])
    with pytest.raises(UseCaseError, match=r"must stay in \['me-central-1'\].*also allows \['eu-west-1'\]"):
        resolve_usecase(settings, "flight_delay")
    assert resolve_usecase(settings.model_copy(update={"allowed_regions": ["me-central-1"]}), "flight_delay")


def test_the_environment_overrides_a_dag_and_its_docs_say_so():
    probe = "import runpy, sys; d = runpy.run_path(sys.argv[1])['dag']; print(d.timetable.summary); print(d.doc_md)"
    overrides = {"flight_delay": {"monitoring.schedule": "30 6 * * *"}}
    env = {**os.environ, "PLATFORM_USECASE_OVERRIDES": json.dumps(overrides)}
    shown = subprocess.run([sys.executable, "-c", probe, str(REPO_ROOT / "dags" / "flight_delay_monitoring.py")],
                           env=env, capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout  # fmt: skip
    assert shown.startswith("30 6 * * *") and "PLATFORM_USECASE_OVERRIDES" in shown and "schedule: 30 6 * * *" in shown
    env["PLATFORM_USECASE_OVERRIDES"] = json.dumps({"flight_delay": {"monitoring.schedule": "daily"}})
    broken = subprocess.run([sys.executable, "-c", probe, str(REPO_ROOT / "dags" / "flight_delay_monitoring.py")],
                            env=env, capture_output=True, text=True, check=False, cwd=REPO_ROOT)  # fmt: skip
    assert broken.returncode != 0
    assert "monitoring.schedule: Value error, 'daily' is not a cron expression" in broken.stderr


def test_the_spec_refuses_a_stream_that_does_not_fit_its_sources_and_views():
    for field, value, message in (
        ("table", "airports", "'airports' is not a day-partitioned source table"),
        ("event_time", {"column": "temp"}, "'temp' is not a timestamp column"),
        ("feature_view", "flights", "'flights' is not one of the feature views"),
        ("key", ["origin", "when"], "uses ['when'], which are not columns of the weather table"),
    ):
        with pytest.raises(UseCaseError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_usecase(REPO_ROOT / "usecases", "flight_delay",
                         {f"streaming.streams.weather_observations.{field}": value})  # fmt: skip


def test_the_spec_refuses_a_windowed_stream_that_cannot_be_computed():
    where = "streaming.streams.flight_departures"
    for field, value, message in (
        ("event_time.plus_minutes", ["minute", "carrier"], "adds or averages ['carrier'], which are not numeric"),
        ("window.means", {"origin_dep_delay_2h": "tailnum"}, "adds or averages ['tailnum'], which are not numeric"),
        ("window.length", "P2D", "is not more than 0 and at most a day"),
        ("window", {"length": "PT2H"}, "aggregates nothing"),
    ):
        with pytest.raises(UseCaseError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_usecase(REPO_ROOT / "usecases", "flight_delay", {f"{where}.{field}": value})


def test_the_spec_refuses_an_arrival_time_it_cannot_place():
    where = "streaming.streams.flight_arrivals.event_time"
    arrival = load_usecase(REPO_ROOT / "usecases", "flight_delay").streaming.streams["flight_arrivals"].event_time
    local, zone = arrival.local.model_dump(), arrival.zone.model_dump()
    for value, message in (
        ({"column": "time_hour", "local": local, "zone": zone}, "either a timestamp `column` or a `local` clock"),
        ({"local": local}, "a `local` clock needs its `zone`"),
        ({"local": {**local, "clock": "carrier"}, "zone": zone}, "adds or averages ['carrier'], which are not numeric"),
        ({"local": local, "zone": {**zone, "table": "weather"}}, "'weather' is not a reference source table"),
        ({"local": local, "zone": {**zone, "name": "iana"}}, "airports has no columns ['iana']"),
        ({"local": local, "zone": {**zone, "seed": "zones"}}, "zone.seed 'zones': there is no"),
    ):
        with pytest.raises(UseCaseError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_usecase(REPO_ROOT / "usecases", "flight_delay", {where: value})


def test_an_event_carries_only_what_its_stream_reads():
    departures = load_usecase(REPO_ROOT / "usecases", "flight_delay").streaming.streams["flight_departures"]
    assert departures.carried == ["year", "month", "day", "carrier", "flight", "origin", "time_hour", "minute",
                                  "dep_delay"]  # fmt: skip
    assert "tailnum" not in departures.carried, "personal data never enters the broker"


def test_the_lead_time_reaches_the_spec_and_a_bad_one_is_refused_naming_the_field():
    shipped = load_usecase(REPO_ROOT / "usecases", "flight_delay")
    assert shipped.prediction.lead_time.total_seconds() == 7200 and not shipped.prediction.start_of_day
    batch = load_usecase(REPO_ROOT / "usecases", "flight_delay", {"prediction.lead_time": "start_of_day"})
    assert batch.prediction.start_of_day
    with pytest.raises(UseCaseError, match="prediction.lead_time"):
        load_usecase(REPO_ROOT / "usecases", "flight_delay", {"prediction.lead_time": "two hours"})
