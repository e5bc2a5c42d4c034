"""The alerting rules generated from the specs' objectives, checked by Prometheus's own promtool: they parse
(`promtool check rules`), and on synthetic series (`promtool test rules`) a breach fires the alert with the
use case, owner, severity and runbook, while a blip or a healthy service fires nothing."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from pipelines.alerting.rules import BURN_WINDOWS, RUNBOOKS, burn_rate, write_rules
from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import load_usecase
from tests.conftest import require_service

USECASES = [load_usecase(REPO_ROOT / "usecases", name) for name in ("flight_delay", "bike_rentals")]
FLIGHTS = 'usecase="flight_delay"'


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    require_service(path is not None, "promtool is not installed (`make monitoring-tools`: Debian's prometheus)")
    return path


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    return write_rules(USECASES, tmp_path_factory.mktemp("rules") / "platform-rules.yml")


def _run_tests(promtool: str, rules, tmp_path, tests: list[dict]) -> subprocess.CompletedProcess:
    spec = tmp_path / "rules_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}))
    return subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True, check=False)


DAY = 1440  # minutes of healthy history before what a test plays: the long windows have their day


def _requests(errors: str, minutes: int = DAY + 80) -> list[dict]:
    """Counters of flight requests, one sample a minute: 600 answered a minute throughout, and `errors` (a
    promtool series of the 500s' counter)."""
    return [
        {"series": f'platform_serving_requests_total{{{FLIGHTS},code="200"}}', "values": f"0+600x{minutes}"},
        {"series": f'platform_serving_requests_total{{{FLIGHTS},code="500"}}', "values": errors},
    ]


PAGE_1H = {"severity": "page", "usecase": "flight_delay", "owner": "ml-platform", "objective": "availability",
           "long_window": "1h"}  # fmt: skip


def test_the_generated_rules_pass_promtool_check(promtool, rules):
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    groups = {g["name"]: g for g in yaml.safe_load(rules.read_text())["groups"]}
    assert {"flight_delay_slis", "flight_delay_objectives", "bike_rentals_objectives", "platform"} <= set(groups)
    alerts = [r for g in groups.values() for r in g["rules"] if "alert" in r]
    for alert in alerts:
        runbook = alert["annotations"]["runbook_url"]
        assert runbook.startswith(RUNBOOKS) and (REPO_ROOT / runbook).is_file(), f"{alert['alert']}: {runbook}"
    # The bikes declare no quality objective: no quality alert for them.
    assert not [a for a in groups["bike_rentals_objectives"]["rules"] if a["alert"] == "ModelQualityBelowObjective"]


def test_the_burn_rates_spend_the_workbooks_shares_of_a_28_day_budget():
    assert [burn_rate(b) for b in BURN_WINDOWS] == [13.44, 5.6, 2.8, 0.9333]


def test_a_one_day_objective_alerts_on_windows_scaled_to_it(promtool, tmp_path):
    """The same shares of a 1-day budget, over windows 28 times shorter (Pyrra's scaling): the fast page looks at
    129 s and 11 s and waits 4 s, at the same 13.44x burn (0.0672 errors per request of a 99.5% target); the
    rules still pass promtool."""
    daily = load_usecase(REPO_ROOT / "usecases", "flight_delay", {"objectives.window": "P1D"})
    rules = write_rules([daily], tmp_path / "daily.yml")
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(rules.read_text())["groups"]}
    pages = [a for a in groups["flight_delay_objectives"] if a["alert"] == "ServingAvailabilityBudgetBurn"]
    scaled = [("129s", "4s"), ("771s", "32s"), ("3086s", "129s"), ("9257s", "386s")]
    assert [(a["labels"]["long_window"], a["for"]) for a in pages] == scaled
    assert pages[0]["expr"] == (
        'platform:serving_request_errors:ratio_rate129s{usecase="flight_delay"} > 0.0672 and '
        'platform:serving_request_errors:ratio_rate11s{usecase="flight_delay"} > 0.0672'
    )


def test_a_sustained_error_burst_pages_and_a_blip_does_not(promtool, rules, tmp_path):
    """After a healthy day, 60 of every 660 requests failing (9%) spends 2% of the 28-day budget (0.5%) within the
    hour: the fast page fires, and only it. Three minutes of 600 failures a minute after a healthy day fire
    nothing, then or later."""
    sustained = {
        "interval": "1m",
        "input_series": _requests(f"0x{DAY} 60+60x80"),
        "alert_rule_test": [
            {"eval_time": f"{DAY + 5}m", "alertname": "ServingAvailabilityBudgetBurn", "exp_alerts": []},
            {"eval_time": f"{DAY + 65}m", "alertname": "ServingAvailabilityBudgetBurn", "exp_alerts": [{
                "exp_labels": PAGE_1H,
                "exp_annotations": {
                    "summary": "flight_delay: 9.091% of requests answered with a server error over 1h",
                    "description": "The availability objective (99.50% over 28 days) is burning its budget 13.44x "
                                   "too fast over 1h and 5m: 2% of it gone in 1h at this rate.",
                    "runbook_url": "docs/runbooks/serving_availability.md",
                },
            }]},
        ],
    }  # fmt: skip
    blip = {
        "interval": "1m",
        "input_series": _requests(f"0x{DAY} 600+600x2 1800x80"),
        "alert_rule_test": [{"eval_time": f"{DAY + t}m", "alertname": "ServingAvailabilityBudgetBurn",
                             "exp_alerts": []} for t in (3, 5, 10, 30, 70)],
    }  # fmt: skip
    ran = _run_tests(promtool, rules, tmp_path, [sustained, blip])
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_rule_harness_fails_when_an_alert_does_not_fire_as_expected(promtool, rules, tmp_path):
    """The same healthy hour, expected (wrongly) to page: promtool fails and says which alert differed."""
    healthy = {
        "interval": "1m",
        "input_series": _requests(f"0x{DAY + 80}"),
        "alert_rule_test": [{"eval_time": f"{DAY + 65}m", "alertname": "ServingAvailabilityBudgetBurn",
                             "exp_alerts": [{"exp_labels": PAGE_1H}]}],
    }  # fmt: skip
    ran = _run_tests(promtool, rules, tmp_path, [healthy])
    assert ran.returncode != 0 and "ServingAvailabilityBudgetBurn" in ran.stdout + ran.stderr


def test_slow_answers_burn_the_latency_budget(promtool, rules, tmp_path):
    """Half the requests slower than the objective's 250 ms for half an hour: both pages fire (the 1-hour and
    the 6-hour burn; the tickets wait longer); every request within it fires nothing."""
    histogram = "platform_serving_request_duration_seconds"

    def answers(fast_per_min: int, total_per_min: int) -> list[dict]:
        return [
            {"series": f'{histogram}_bucket{{{FLIGHTS},le="0.25"}}', "values": f"0+{fast_per_min}x80"},
            {"series": f"{histogram}_count{{{FLIGHTS}}}", "values": f"0+{total_per_min}x80"},
        ]

    def page(long: str, short: str, rate: str, share: str) -> dict:
        return {"exp_labels": {**PAGE_1H, "objective": "latency", "long_window": long}, "exp_annotations": {
            "summary": f"flight_delay: 50% of requests slower than 0.25 s over {long}",
            "description": f"The latency objective (99.00% over 28 days) is burning its budget {rate}x too fast over "
                           f"{long} and {short}: {share} of it gone in {long} at this rate.",
            "runbook_url": "docs/runbooks/serving_latency.md"}}  # fmt: skip

    def at_30m(expected: list[dict]) -> list[dict]:
        return [{"eval_time": "30m", "alertname": "ServingLatencyBudgetBurn", "exp_alerts": expected}]

    slow = {"interval": "1m", "input_series": answers(300, 600),
            "alert_rule_test": at_30m([page("1h", "5m", "13.44", "2%"), page("6h", "30m", "5.6", "5%")])}  # fmt: skip
    fast = {"interval": "1m", "input_series": answers(600, 600), "alert_rule_test": at_30m([])}
    ran = _run_tests(promtool, rules, tmp_path, [slow, fast])
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_day_not_materialized_by_its_deadline_and_a_degraded_model_open_tickets(promtool, rules, tmp_path):
    """Freshness: the newest materialized day ended at 0 s; its successor was due 26 h later (the next day's
    end plus 02:00). At 26 h 10 min it is late; at 25 h it is not. Quality: a live loss 1.7x the reference's
    breaches the flights' 1.5; 1.3 does not."""
    gauge = f"platform_data_materialized_through_timestamp_seconds{{{FLIGHTS}}}"
    ratio = f"platform_model_loss_ratio{{{FLIGHTS}}}"
    ticket = {"severity": "ticket", "usecase": "flight_delay", "owner": "ml-platform"}
    tests = [
        {"interval": "1m", "input_series": [{"series": gauge, "values": "0x1600"}],
         "alert_rule_test": [
             {"eval_time": "25h", "alertname": "DataFreshnessMissed", "exp_alerts": []},
             {"eval_time": "26h10m", "alertname": "DataFreshnessMissed", "exp_alerts": [{
                 "exp_labels": {**ticket, "objective": "freshness"},
                 "exp_annotations": {
                     "summary": "flight_delay: the newest materialized day ended 1d 2h 10m 0s ago",
                     "description": "A day must be landed, validated and materialized by 02:00 (America/New_York) "
                                    "the next day; the day after the newest materialized one is past that.",
                     "runbook_url": "docs/runbooks/data_freshness.md"}}]}]},
        {"interval": "1m", "input_series": [{"series": ratio, "values": "1.3x5 1.7x5"}],
         "alert_rule_test": [
             {"eval_time": "3m", "alertname": "ModelQualityBelowObjective", "exp_alerts": []},
             {"eval_time": "8m", "alertname": "ModelQualityBelowObjective", "exp_alerts": [{
                 "exp_labels": {**ticket, "objective": "quality"},
                 "exp_annotations": {
                     "summary": "flight_delay: live loss 1.70x the reference's",
                     "description": "The live model's loss against its reference exceeds 1.5x (the monitoring "
                                    "DAG's latest assessment).",
                     "runbook_url": "docs/runbooks/model_quality.md"}}]}]},
    ]  # fmt: skip
    ran = _run_tests(promtool, rules, tmp_path, tests)
    assert ran.returncode == 0, ran.stdout + ran.stderr
