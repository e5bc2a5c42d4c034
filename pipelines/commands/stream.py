"""`platform stream ...`: the real-time path by hand: replay events, run the processor, see where it stands,
reconcile a day with the batch."""

from __future__ import annotations

import argparse
import datetime as dt

from pipelines.settings import get_settings
from pipelines.usecases.spec import resolve_usecase


def _local_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; use YYYY-MM-DDTHH:MM (local to the use case unless it carries an offset)"
        ) from None


def add_commands(commands) -> None:
    stream = commands.add_parser("stream", help="the real-time path: replay events, process them, reconcile")
    actions = stream.add_subparsers(dest="action", required=True)
    replay = actions.add_parser("replay", help="publish a use case's source rows as events, in event-time order")
    replay.add_argument("usecase")
    replay.add_argument("--from", dest="start", type=_local_time, required=True, help="first instant (local)")
    replay.add_argument("--to", dest="end", type=_local_time, required=True, help="instant after the last (local)")
    replay.add_argument("--speed", type=float, default=0, help="times real time; 0 (default): as fast as possible")
    replay.add_argument("--streams", nargs="+", help="only these of the spec's streams")
    process = actions.add_parser("process", help="run the stream processor in the foreground until Ctrl-C")
    process.add_argument("usecase")
    process.add_argument("--consumer", default="processor-1", help="this instance's name in the consumer group")
    status = actions.add_parser("status", help="events published, processed and dead-lettered, and the lag")
    status.add_argument("usecase")
    reconcile = actions.add_parser("reconcile", help="compare a day's stream-written values with the batch's")
    reconcile.add_argument("usecase")
    reconcile.add_argument("day", type=dt.date.fromisoformat)
    stream.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    usecase = resolve_usecase(settings, args.usecase)
    if args.action == "replay":
        from pipelines.streaming.replay import replay_events

        start, end = (t if t.tzinfo else t.replace(tzinfo=usecase.tz) for t in (args.start, args.end))
        print(replay_events(settings, usecase, start, end, args.speed, args.streams).render())
    elif args.action == "process":
        from pipelines.streaming.service import run_processor

        run_processor(settings, usecase, args.consumer)
    elif args.action == "status":
        from pipelines.streaming.status import stream_status

        print(stream_status(settings, usecase).render())
    else:
        from pipelines.streaming.reconcile import reconcile_day

        for result in reconcile_day(settings, usecase, args.day):
            print(result.describe())
