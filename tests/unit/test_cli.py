import datetime as dt

import pytest

from pipelines.cli import build_parser


def test_run_takes_a_use_case_and_a_window_of_days():
    args = build_parser().parse_args(["run", "--start", "2013-03-01", "--days", "3"])
    assert (args.usecase, args.start, args.days) == (None, dt.date(2013, 3, 1), 3)  # None: the default's (below)
    args = build_parser().parse_args(["run", "--usecase", "bike_rentals", "--days", "42"])
    assert (args.usecase, args.start, args.operate_days) == ("bike_rentals", None, 0)  # start: the spec's first day


def test_without_usecase_a_command_means_the_default_or_the_only_spec(tmp_path):
    """No use case's name in the platform's code: make run names one (USECASE), a deployment may set one."""
    import shutil

    from pipelines.cli import default_usecase
    from pipelines.errors import PlatformError
    from pipelines.settings import REPO_ROOT, load_settings

    assert default_usecase(load_settings(data_root=tmp_path, default_usecase="bike_rentals")) == "bike_rentals"
    with pytest.raises(PlatformError, match=r"--usecase \(known: bike_rentals, flight_delay\), or set PLATFORM"):
        default_usecase(load_settings(data_root=tmp_path))
    shutil.copytree(REPO_ROOT / "usecases" / "bike_rentals", tmp_path / "usecases" / "bike_rentals")
    assert default_usecase(load_settings(data_root=tmp_path, usecases_dir=tmp_path / "usecases")) == "bike_rentals"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--start", "01/03/2013"], "is not a date; use YYYY-MM-DD"),
        (["run", "--days", "0"], "is not a number of days"),
        (["run", "--operate-days", "-1"], "use a whole number of at least 0"),
        (["land", "2013-02-30"], "is not a date"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(argv, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_operating_days_inside_the_first_window_is_refused_before_any_work():
    from pipelines.cli import cmd_run
    from pipelines.errors import PlatformError

    args = build_parser().parse_args(["run", "--usecase", "flight_delay", "--start", "2013-07-01",
                                      "--operate-from", "2013-07-03", "--operate-days", "7"])  # fmt: skip
    with pytest.raises(PlatformError, match="lies inside the first window"):
        cmd_run(args)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """The process settings on a fresh data root, for commands that read them."""
    from pipelines.settings import get_settings

    monkeypatch.setenv("PLATFORM_DATA_ROOT", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_a_stage_command_runs_that_stage_of_the_named_use_case(data_root, capsys):
    import json

    from pipelines.cli import cmd_stage

    cmd_stage(build_parser().parse_args(["land", "2013-01-02", "--usecase", "flight_delay"]))
    landed = json.loads(capsys.readouterr().out)
    assert set(landed["tables"]) == {"flights", "weather", "planes", "airports", "airlines"}
    assert landed["tables"]["flights"]["2013-01-02"]["rows"] == 943 and landed["relanded"] == []
    assert set(landed["tables"]["planes"]) == {"reference"}
    assert (data_root / "raw" / "flights" / "date=2013-01-02" / "part.parquet").is_file()


def test_a_stage_command_for_an_unknown_use_case_names_the_known_ones(data_root):
    from pipelines.cli import cmd_stage
    from pipelines.usecases.spec import UseCaseError

    with pytest.raises(
        UseCaseError, match=r"use case 'taxi_fares' has no spec.*known: \['bike_rentals', 'flight_delay'\]"
    ):
        cmd_stage(build_parser().parse_args(["land", "2013-01-02", "--usecase", "taxi_fares"]))
    assert not (data_root / "raw").exists()


def test_the_stage_commands_take_any_use_case(data_root, capsys):
    """The guide's first command on the bike-rental use case: one day of its source landed."""
    import json

    from pipelines.cli import cmd_stage

    cmd_stage(build_parser().parse_args(["land", "2011-05-01", "--usecase", "bike_rentals"]))
    assert json.loads(capsys.readouterr().out)["tables"]["bikeshare_hours"]["2011-05-01"]["rows"] == 24
    assert (data_root / "raw" / "bikeshare_hours" / "date=2011-05-01" / "part.parquet").is_file()


def test_an_operator_creates_a_key_for_one_use_case(openbao, monkeypatch, capsys):
    """The guide's `platform api-key fleet-team --scope predict:bike_rentals`, as the operator AppRole."""
    from pipelines.cli import main
    from pipelines.security.vault import issue_credentials
    from pipelines.settings import get_settings
    from serving.auth import authenticate, load_keys

    role_id, secret_id = issue_credentials(openbao.root, "operator")
    monkeypatch.setenv("PLATFORM_VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("PLATFORM_VAULT_SECRET_ID", secret_id)
    get_settings.cache_clear()
    assert main(["api-key", "fleet-team", "--scope", "predict:bike_rentals"]) == 0
    key = capsys.readouterr().out.split(": ", 1)[1].split()[0]
    found = authenticate(load_keys(openbao.root), key)
    assert found.name == "fleet-team" and found.scopes == {"predict:bike_rentals"}
    assert main(["api-key", "other", "--scope", "predict:Bikes!"]) == 1
    assert "scopes must be among predict, admin or predict:<use case>" in capsys.readouterr().err
    get_settings.cache_clear()
