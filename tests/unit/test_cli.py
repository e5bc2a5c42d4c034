import datetime as dt

import pytest

from pipelines.cli import build_parser


def test_run_takes_a_window_of_days():
    args = build_parser().parse_args(["run", "--start", "2013-03-01", "--days", "3"])
    assert (args.start, args.days) == (dt.date(2013, 3, 1), 3)


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

    args = build_parser().parse_args(["run", "--start", "2013-07-01", "--operate-from", "2013-07-03",
                                      "--operate-days", "7"])  # fmt: skip
    with pytest.raises(PlatformError, match="lies inside the first window"):
        cmd_run(args)
