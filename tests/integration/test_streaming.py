"""The real-time path on a real broker (Redis Streams) and a real Feast store: replayed weather events
through the stream processor into the online store and the stream sink; what serving reads at the
prediction time equals training's point-in-time join; the stream agrees with the batch's dbt mart;
bad events are dead-lettered with their reason; redeliveries, duplicates and a SIGKILLed processor
lose and duplicate nothing."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time

import numpy as np
import pandas as pd
import pytest

from pipelines.features.store import export_marts, feature_store, materialize
from pipelines.streaming.broker import RedisStreams, dead_letter_key, stream_key
from pipelines.streaming.events import to_json
from pipelines.streaming.processor import GROUP, StreamProcessor
from pipelines.streaming.reconcile import StreamBatchMismatch, reconcile_day
from pipelines.streaming.replay import EventClock, replay_events, stream_events
from pipelines.streaming.status import stream_status
from pipelines.usecases.spec import load_usecase, resolve_usecase
from tests.conftest import FLIGHT_DELAY, make_settings, require_service
from tests.integration.conftest import build_days

BROKER_URL = "redis://127.0.0.1:6379/12"  # a database of its own, emptied before each test
DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]
STREAMED_DAY = DAYS[1]  # the batch has materialized the online store to its start; the stream carries it
TZ = FLIGHT_DELAY.tz
LEAD = {"prediction.lead_time": "PT2H"}


def _local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), TZ)


# When the streamed day's 72 observations become known: its 00:00 hour at 01:00, its 23:00 hour at midnight.
DAY_EVENTS = (_local(STREAMED_DAY, 1), _local(STREAMED_DAY + dt.timedelta(days=1), 0, 1))


@pytest.fixture(scope="module")
def batch_root(tmp_path_factory):
    """Two days built by the batch; the online store materialized to the start of the second."""
    settings = make_settings(tmp_path_factory.mktemp("streaming") / "var")
    build_days(settings, DAYS)
    export_marts(settings, FLIGHT_DELAY)
    materialize(settings, FLIGHT_DELAY, _local(STREAMED_DAY, 0))
    return settings.data_root


@pytest.fixture
def platform(batch_root, tmp_path):
    """A private copy of the built platform, on an empty broker database."""
    import redis

    try:
        client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=3)
        client.flushdb()
    except redis.RedisError as exc:
        require_service(False, f"Redis is not reachable at {BROKER_URL}: {exc}")
    shutil.copytree(batch_root, tmp_path / "var")
    return make_settings(tmp_path / "var", stream_broker_url=BROKER_URL, usecase_overrides={"flight_delay": LEAD})


class Running:
    """A StreamProcessor in a thread of this process, until stopped."""

    def __init__(self, settings, usecase):
        self.processor = StreamProcessor(settings, usecase)
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.processor.run(self.stop)
        except BaseException as exc:  # the test names it instead of waiting for a lag that never falls
            self.failure = exc

    def drain(self, timeout_s: float = 60) -> dict:
        """Wait until every published event is acknowledged; the processor's health then."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.failure is not None:
                raise AssertionError(f"the processor stopped: {self.failure!r}") from self.failure
            health = self.processor.health()
            if all(s["lag"] == 0 for s in health["streams"].values()) and self.thread.is_alive():
                return health
            time.sleep(0.05)
        raise AssertionError(f"the processor did not catch up: {self.processor.health()}")

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def processed(settings, usecase) -> dict:
    """Run a processor until it has acknowledged everything published; its counts of the weather stream."""
    with Running(settings, usecase) as running:
        return running.drain()["streams"]["weather_observations"]


def _served_and_joined(settings, usecase, departing_from: dt.datetime, departing_to: dt.datetime, clock=None):
    """For the flights departing in [from, to): what the service's online lookup reads (at each flight's
    prediction time, the event clock advanced to it first; without a clock: now), and what training's
    point-in-time join gives them at their prediction time, side by side (one row per flight)."""
    from pipelines.features.store import build_training_set, training_entities
    from pipelines.security.secrets import pii_salt
    from pipelines.training.dataset import feature_columns
    from serving.model import OnlineFeatures
    from serving.replay import asked_at, day_requests
    from serving.schema import item_model

    day = departing_from.date()
    stored = [f for f in feature_columns(settings, usecase) if f not in usecase.features.request_features]
    requests = [r for r in day_requests(settings, usecase, day)
                if departing_from.replace(tzinfo=None) <= dt.datetime.fromisoformat(r["scheduled_departure"])
                < departing_to.replace(tzinfo=None)]  # fmt: skip
    lookup, parts = OnlineFeatures(settings, usecase, pii_salt(settings)), []
    for instant, asked in asked_at(usecase, day, requests) if clock else [(None, requests)]:
        if clock:
            clock.advance(instant)
        items = [item_model(usecase)(**r).model_dump() for r in asked]
        parts.append(pd.DataFrame(lookup.matrix(items, stored), columns=stored, index=[i["flight_id"] for i in items]))
    online = pd.concat(parts)
    entities = training_entities(settings, usecase, day, day, _local(day + dt.timedelta(days=2), 0))
    entities = entities[entities.flight_id.isin(online.index)].drop(columns=["is_late_arrival", "label_available_at"])
    online = online.loc[entities.flight_id]  # a cancelled flight has no label, so no training row
    offline = build_training_set(settings, usecase, entities).set_index("flight_id").loc[online.index, stored]
    return online, offline.astype("float64")


def test_served_features_at_the_prediction_time_equal_the_training_join(platform):
    """Two hours of departures (08:00 to 10:00), each flight looked up at its own prediction time with the
    event clock replaying the streams up to that instant: every feature the service reads, the weather of
    the hour before and the airport's departures of the last two hours among them, equals training's
    point-in-time join at the same instant."""
    usecase = resolve_usecase(platform, "flight_delay")
    start = _local(STREAMED_DAY, 0)
    with Running(platform, usecase):
        clock = EventClock(platform, usecase, start)
        online, offline = _served_and_joined(platform, usecase, _local(STREAMED_DAY, 8), _local(STREAMED_DAY, 10),
                                             clock)  # fmt: skip
    assert len(online) > 80, "flights departing from 08:00 to 10:00"
    weather = ["temperature_f", "humidity_pct", "pressure_mb", "visibility_mi"]
    assert online[weather].notna().all().all(), "the weather of the hour before the prediction time"
    departures = ["origin_departures_2h", "origin_dep_delay_2h"]
    assert online[departures].notna().mean().min() > 0.9, "the airport's departures of the last two hours"
    assert online["origin_departures_2h"].nunique() > 5, "a value that moves with the instant, not a snapshot"
    arrivals = ["carrier_arrivals_6h", "carrier_arr_delay_6h"]
    assert online[arrivals].notna().mean().min() > 0.5, "the carrier's arrivals of the last six hours"
    assert online["carrier_arr_delay_6h"].nunique() > 5, "the day's arrivals so far, as they land"
    for feature in online.columns:
        np.testing.assert_allclose(online[feature], offline[feature], rtol=1e-6, err_msg=feature)  # float32 inputs
    # The stream, not the batch, brought those values: the batch's online store stopped at midnight.
    known = stream_events(platform, usecase, start - usecase.streaming.lookback, clock.now)
    for status in stream_status(platform, usecase).streams:
        published = sum(e.stream == status.stream for e in known)
        assert status.processed == published > 0 and status.dead_lettered == 0 and status.lag == 0, status


def test_a_skewed_stream_fails_parity_and_reconciliation_naming_keys_and_values(platform):
    """The stream feeds temperature_f from the dew point instead of the temperature: the service reads a
    value the training join never had, and the day's reconciliation names each differing value."""
    skewed_features = {**FLIGHT_DELAY.streaming.streams["weather_observations"].features, "temperature_f": "dewp"}
    overrides = {**LEAD, "streaming.streams.weather_observations.features": skewed_features}
    skewed = load_usecase(platform.usecases_dir, "flight_delay", overrides)
    with Running(platform, skewed) as running:
        replay_events(platform, skewed, _local(STREAMED_DAY, 0), _local(STREAMED_DAY, 7, 30), 0)
        running.drain()
        online, offline = _served_and_joined(platform, skewed, _local(STREAMED_DAY, 9), _local(STREAMED_DAY, 10))
        assert (online["temperature_f"] != offline["temperature_f"]).all()
        np.testing.assert_allclose(online["pressure_mb"], offline["pressure_mb"], rtol=1e-6)
        replay_events(platform, skewed, *DAY_EVENTS, 0)
        running.drain()
    with pytest.raises(StreamBatchMismatch) as caught:
        reconcile_day(platform, skewed, STREAMED_DAY)
    message = str(caught.value)
    assert "0 rows missing from the stream, 0 not in the batch, 72 values differ" in message
    assert "'origin': 'EWR'" in message and "temperature_f: stream" in message


def test_the_stream_agrees_with_the_batch_for_a_whole_day(platform):
    usecase = resolve_usecase(platform, "flight_delay")
    with Running(platform, usecase) as running:
        # The day's batch may run while the stream is short of the day's end: compared up to its watermark.
        replay_events(platform, usecase, DAY_EVENTS[0], _local(STREAMED_DAY, 7, 30), 0)
        running.drain()
        partial = {r.stream: r for r in reconcile_day(platform, usecase, STREAMED_DAY)}
        weather = partial["weather_observations"]
        assert weather.agrees and weather.stream_rows == weather.batch_rows == 21, weather.describe()
        assert weather.watermark.startswith(_local(STREAMED_DAY, 7).astimezone(dt.UTC).isoformat()[:19])
        # The whole day: every row stamped in [00:00, next 00:00), the evening before's 23:00 observation too.
        replay_events(platform, usecase, _local(STREAMED_DAY, 0), DAY_EVENTS[1], 0)
        running.drain()
    result = {r.stream: r for r in reconcile_day(platform, usecase, STREAMED_DAY)}
    weather, departures, arrivals = (
        result[s] for s in ("weather_observations", "flight_departures", "flight_arrivals")
    )
    assert weather.agrees and weather.stream_rows == weather.batch_rows == 72, weather.describe()
    # Each departure's two-hour window, from the first whose window the stream saw whole, equal to dbt's.
    assert departures.agrees and departures.stream_rows == departures.batch_rows > 500, departures.describe()
    # Each arrival's six-hour window: the destination's local clock placed in its time zone as dbt places it.
    assert arrivals.agrees and arrivals.stream_rows == arrivals.batch_rows > 400, arrivals.describe()


def _publish(settings, events: list[dict]) -> None:
    broker = RedisStreams(settings.stream_broker_url)
    key = stream_key(settings, "flight_delay", "weather_observations")
    broker.publish(key, [(f"test/{i}", str(e.get("time_hour")), e) for i, e in enumerate(events)], time.time())


def _valid_event(hour: int) -> dict:
    """A weather observation as the stream carries it: its key, time and the columns the view reads."""
    return {"origin": "JFK", "temp": 30.0 + hour, "dewp": 20.0, "humid": 60.0, "wind_speed": 10.0,
            "wind_gust": None, "precip": 0.0, "pressure": 1010.0, "visib": 10.0,
            "time_hour": f"2013-01-02T{hour + 5:02d}:00:00+00:00"}  # fmt: skip


def test_bad_events_are_dead_lettered_with_their_reason_and_never_written(platform):
    usecase = resolve_usecase(platform, "flight_delay")
    bad = {
        "humid 150": ({**_valid_event(1), "humid": 150.0}, "humid 150.0 is outside the suite's bounds [0, 100]"),
        "unknown airport": ({**_valid_event(1), "origin": "XYZ"}, "origin 'XYZ' is not one of the suite's values"),
        "NaN temperature": ({**_valid_event(1), "temp": float("nan")}, "temp is nan; send null"),
        "text temperature": ({**_valid_event(1), "temp": "warm"}, "temp 'warm' is not a number"),
        "missing column": ({k: v for k, v in _valid_event(1).items() if k != "visib"}, "missing ['visib']"),
        "extra column": ({**_valid_event(1), "snow": 1}, "unexpected ['snow']"),
        "null airport": ({**_valid_event(1), "origin": None}, "origin is null; the suite requires a value"),
        "naive timestamp": ({**_valid_event(1), "time_hour": "2013-01-02T06:00:00"}, "with its offset"),
        "a column it does not carry": ({**_valid_event(1), "hour": 1}, "unexpected ['hour']"),
    }
    _publish(platform, [event for event, _ in bad.values()] + [_valid_event(2)])
    broker = RedisStreams(BROKER_URL)
    broker.client.xadd(
        stream_key(platform, "flight_delay", "weather_observations"), {"event_id": "x", "data": "{not json"}
    )
    with Running(platform, usecase) as running:
        counts = running.drain()["streams"]["weather_observations"]
    assert counts["dead_lettered"] == len(bad) + 1 and counts["processed"] == 1
    dead = broker.entries(dead_letter_key(platform, "flight_delay", "weather_observations"))
    reasons = [d["reason"] for d in dead]
    for (_, expected), reason in zip(bad.values(), reasons, strict=False):
        assert expected in reason, (expected, reason)
    assert "not a JSON object" in reasons[-1]
    assert all(d["source_id"] for d in dead), "each dead letter names the delivery it came from"
    sink = stream_status(platform, usecase).streams[0]
    assert sink.processed == 1 and sink.lag == 0
    online = (
        feature_store(platform)
        .get_online_features(
            features=["origin_weather:humidity_pct", "origin_weather:temperature_f"], entity_rows=[{"origin": "JFK"}]
        )
        .to_dict()
    )
    assert online["temperature_f"] == [32.0] and online["humidity_pct"] == [60.0], "only the valid event"
    text = running.processor.registry.get_sample_value(
        "platform_stream_events_total",
        {"usecase": "flight_delay", "stream": "weather_observations", "outcome": "dead_lettered"},
    )
    assert text == len(bad) + 1


def test_an_arrival_that_cannot_be_placed_in_time_is_dead_lettered_naming_why(platform):
    """A destination without a time zone, and an arrival without its delay: no event time, so no window row."""
    usecase = resolve_usecase(platform, "flight_delay")
    arrival = {"year": 2013, "month": 1, "day": 2, "carrier": "UA", "flight": 1, "origin": "EWR", "dest": "LAX",
               "sched_dep_time": 900, "sched_arr_time": 1200, "arr_delay": 5.0}  # fmt: skip
    broker, key = RedisStreams(BROKER_URL), stream_key(platform, "flight_delay", "flight_arrivals")
    events = [{**arrival, "dest": "XYZ"}, {**arrival, "flight": 2, "arr_delay": None}, arrival]
    broker.publish(key, [(f"test/{i}", "", e) for i, e in enumerate(events)], time.time())
    with Running(platform, usecase) as running:
        counts = running.drain()["streams"]["flight_arrivals"]
    assert counts["dead_lettered"] == 2 and counts["processed"] == 1
    reasons = [d["reason"] for d in broker.entries(dead_letter_key(platform, "flight_delay", "flight_arrivals"))]
    assert all("no event time" in r and "or its dest has no time zone" in r for r in reasons), reasons
    online = (
        feature_store(platform)
        .get_online_features(features=["carrier_arrival_delays:carrier_arrivals_6h"], entity_rows=[{"carrier": "UA"}])
        .to_dict()
    )
    assert online["carrier_arrivals_6h"] == [1], "only the arrival it could place: 12:05 Los Angeles time"


def test_redelivered_duplicated_and_late_events_change_nothing(platform):
    usecase = resolve_usecase(platform, "flight_delay")
    newer, older = _valid_event(3), _valid_event(2)
    _publish(platform, [older, newer, newer, older])  # a duplicate of each, and the older one again last
    with Running(platform, usecase) as running:
        health = running.drain()
        _publish(platform, [newer, older])  # republished later: nothing new
        health = running.drain()
    counts = health["streams"]["weather_observations"]
    assert counts["processed"] == 2 and counts["duplicates"] == 4
    assert stream_status(platform, usecase).streams[0].processed == 2
    online = (
        feature_store(platform)
        .get_online_features(features=["origin_weather:temperature_f"], entity_rows=[{"origin": "JFK"}])
        .to_dict()
    )
    assert online["temperature_f"] == [33.0], "the newest observation stays, whatever arrives after it"


def test_a_crash_between_the_writes_and_the_ack_redelivers_and_writes_once(platform, monkeypatch):
    """The processor dies after writing a batch and before acknowledging it: the next one reads the batch
    again from its pending list, inserts nothing twice and still leaves the online store current."""
    usecase = resolve_usecase(platform, "flight_delay")
    events = stream_events(
        platform, usecase, _local(STREAMED_DAY, 0), _local(STREAMED_DAY, 12), ["weather_observations"]
    )
    _publish(platform, [e.data for e in events])
    first = StreamProcessor(platform, usecase)
    state = next(s for s in first.streams if s.name == "weather_observations")
    messages = first.broker.read([state.key], GROUP, first.consumer, 1000, 0, pending=False)[state.key]
    monkeypatch.setattr(first.broker, "ack", lambda *a: (_ for _ in ()).throw(SystemExit("killed before the ack")))
    with pytest.raises(SystemExit):
        first.handle(state, messages)
    assert first.broker.lag(state.key, GROUP) == len(events), "written but not acknowledged"
    monkeypatch.undo()
    counts = processed(platform, usecase)
    assert counts["processed"] == 0 and counts["duplicates"] == len(events) == 36
    assert stream_status(platform, usecase).streams[0].processed == 36


def test_sigkill_of_the_processor_mid_stream_loses_and_duplicates_no_event(platform, tmp_path):
    """`platform stream process` in its own process group, SIGKILLed while a day is replayed at speed, then
    restarted: every published event is in the sink exactly once and the online store holds the last hour."""
    import os
    import signal

    from pipelines.streaming.service import health, running_processor
    from tests.conftest import free_port

    settings = platform.model_copy(update={"stream_processor_port": free_port()})
    usecase = resolve_usecase(settings, "flight_delay")
    start, end = DAY_EVENTS
    publisher = threading.Thread(target=replay_events, args=(settings, usecase, start, end, 25 * 3600 / 8))
    log = tmp_path / "processor.log"
    with running_processor(settings, usecase, log=log) as process:
        publisher.start()  # about 8 s for the day's 72 events
        deadline = time.monotonic() + 30
        while health(settings.stream_processor_port)["streams"]["weather_observations"]["processed"] < 10:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = stream_status(settings, usecase).streams[0].processed
    with running_processor(settings, usecase, log=log):
        publisher.join()
        deadline = time.monotonic() + 60
        while any(s.lag for s in stream_status(settings, usecase).streams):  # every stream drained
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    status = stream_status(settings, usecase).streams[0]
    assert 10 <= killed_at < 72, "killed mid-stream"
    assert status.published == 72 and status.processed == 72 and status.dead_lettered == 0
    departures = stream_status(settings, usecase).streams[1]
    assert departures.published == departures.processed > 800 and departures.lag == 0, departures
    sink_rows = _sink_event_ids(settings)
    assert len(sink_rows) == len(set(sink_rows)) == 72, "each event once"
    online = (
        feature_store(settings)
        .get_online_features(
            features=["origin_weather:temperature_f"], entity_rows=[{"origin": o} for o in ("EWR", "JFK", "LGA")]
        )
        .to_dict()
    )
    observations = stream_events(settings, usecase, start, end, ["weather_observations"])
    last_hour = [e for e in observations if e.data["time_hour"] == observations[-1].data["time_hour"]]
    assert online["temperature_f"] == [e.data["temp"] for e in sorted(last_hour, key=lambda e: e.data["origin"])]


def _sink_event_ids(settings) -> list[str]:
    import sqlalchemy as sa

    from pipelines.streaming.sink import sink_engine

    with sink_engine(settings, "flight_delay").connect() as con:
        return [i for (i,) in con.execute(sa.text("SELECT event_id FROM origin_weather"))]


def test_replay_publishes_in_event_time_order_at_the_requested_speed(platform):
    usecase = resolve_usecase(platform, "flight_delay")
    start = _local(STREAMED_DAY, 0)
    report = replay_events(platform, usecase, start, start + dt.timedelta(hours=3), speed=3 * 3600 / 1.5,
                           streams=["weather_observations"])  # fmt: skip
    assert report.published == {"weather_observations": 9} and 1.0 <= report.seconds <= 3.0
    entries = RedisStreams(BROKER_URL).entries(stream_key(platform, "flight_delay", "weather_observations"))
    times = [e["event_time"] for e in entries]
    assert times == sorted(times) and times[0] == start.astimezone(dt.UTC).isoformat()
    first = json.loads(entries[0]["data"])
    carried = usecase.streaming.streams["weather_observations"].carried
    assert first == to_json({**first, "time_hour": dt.datetime.fromisoformat(first["time_hour"])}, carried)
    assert sorted(first) == sorted(carried) and "year" not in first, "an event carries what its stream reads"
    assert first["time_hour"] == "2013-01-02T04:00:00+00:00", "the observation of 23:00 is known at midnight"


def test_a_day_every_stream_has_passed_is_announced_once_and_reconciles_whole_before_the_next_is_built(platform):
    """The stream runs into the next morning while the batch has built only the streamed day: the processor
    announces the day on the `days` stream (once, also across a restart), and the day's reconciliation compares
    every row stamped in it, never meeting the next day's rows that the batch does not have yet."""
    from pipelines.streaming.broker import days_key
    from pipelines.streaming.reconcile import batch_built

    usecase, next_day = resolve_usecase(platform, "flight_delay"), STREAMED_DAY + dt.timedelta(days=1)
    with Running(platform, usecase) as running:
        replay_events(platform, usecase, _local(STREAMED_DAY, 0), _local(next_day, 6), 0)
        assert running.drain()["complete_through"] == STREAMED_DAY.isoformat()
    with Running(platform, usecase) as restarted:  # resumes from the announced day: nothing announced twice
        replay_events(platform, usecase, _local(next_day, 6), _local(next_day, 7), 0)
        assert restarted.drain()["complete_through"] == STREAMED_DAY.isoformat()
    announced = RedisStreams(BROKER_URL).entries(days_key(platform, "flight_delay"))
    assert [a["day"] for a in announced] == [STREAMED_DAY.isoformat()]
    assert announced[0]["through"] >= _local(next_day, 0).astimezone(dt.UTC).isoformat()
    assert batch_built(platform, usecase, STREAMED_DAY) and not batch_built(platform, usecase, next_day)
    result = {r.stream: r for r in reconcile_day(platform, usecase, STREAMED_DAY)}
    assert all(r.agrees for r in result.values()), [r.describe() for r in result.values()]
    weather = result["weather_observations"]
    assert weather.stream_rows == 72 and weather.watermark == _local(next_day, 0).astimezone(dt.UTC).isoformat()


def test_the_daily_batch_leaves_a_view_its_stream_is_past_to_the_stream(platform):
    """The ingest of the streamed day materializes at its end; the stream has already written the next
    day's first hours: the batch must not put the older values back, while unstreamed views still load."""
    from pipelines.streaming.sink import streamed_since

    usecase = resolve_usecase(platform, "flight_delay")
    with Running(platform, usecase) as running:
        replay_events(platform, usecase, DAY_EVENTS[0], _local(STREAMED_DAY + dt.timedelta(days=1), 3, 30), 0)
        running.drain()
    end = _local(STREAMED_DAY + dt.timedelta(days=1), 0)
    assert streamed_since(platform, usecase, end) == {
        "origin_weather",
        "origin_departure_delays",
        "carrier_arrival_delays",
    }
    assert streamed_since(platform, usecase, _local(STREAMED_DAY + dt.timedelta(days=2), 0)) == frozenset()
    result = materialize(platform, usecase, end, streamed_past_end=streamed_since(platform, usecase, end))
    assert result.left_to_stream == ["carrier_arrival_delays", "origin_departure_delays", "origin_weather"]
    online = (
        feature_store(platform)
        .get_online_features(
            features=["origin_weather:temperature_f", "carrier_delay_rates:carrier_flights_28d"],
            entity_rows=[{"origin": "EWR", "carrier": "UA"}],
        )
        .to_dict()
    )
    three_am = [e for e in stream_events(platform, usecase, end, _local(end.date(), 3, 30), ["weather_observations"])
                if e.data["origin"] == "EWR" and e.time == _local(end.date(), 3)]  # fmt: skip
    assert online["temperature_f"] == [three_am[0].data["temp"]], "the stream's 03:00 value, not the batch's 00:00"
    assert online["carrier_flights_28d"][0] > 0, "views without a stream are materialized as before"


def test_a_day_the_stream_never_saw_is_not_reported_as_agreement(platform):
    from pipelines.errors import NothingToDo

    with pytest.raises(NothingToDo, match="did not see the day"):
        reconcile_day(platform, resolve_usecase(platform, "flight_delay"), STREAMED_DAY)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_stream_sink_inserts_each_event_once_and_names_the_newest_row_of_each_key(backend, tmp_path):
    """The offline side on both backends: the production warehouse's PostgreSQL (schema `streaming`) and the
    embedded SQLite; a batch may repeat an event, and an older event never becomes a key's newest row."""
    import contextlib

    import sqlalchemy as sa

    from pipelines.streaming.sink import StreamSink
    from tests.conftest import fresh_postgres_database

    with contextlib.ExitStack() as stack:
        if backend == "postgres":
            url = stack.enter_context(fresh_postgres_database("stream_sink"))
            engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
            with engine.begin() as con:
                con.execute(sa.text("CREATE SCHEMA streaming"))
        else:
            engine = sa.create_engine(f"sqlite:///{tmp_path / 'sink.sqlite'}")
        sink = StreamSink(engine, "origin_weather", ["origin"], {"origin": "string", "temperature_f": "float64"},
                          "feature_timestamp")  # fmt: skip

        def row(hour: int, origin: str = "JFK") -> dict:
            at = dt.datetime(2013, 1, 2, hour, tzinfo=dt.UTC)
            return {"event_id": f"w/{origin}|{hour}", "feature_timestamp": at, "origin": origin,
                    "temperature_f": 30.0 + hour}  # fmt: skip

        first = sink.write([row(6), row(7), row(7), row(6, "EWR")])
        assert [r["event_id"] for r in first.new] == ["w/JFK|6", "w/JFK|7", "w/EWR|6"]
        assert sorted(r["event_id"] for r in first.newest) == ["w/EWR|6", "w/JFK|7"]
        again = sink.write([row(6), row(7)])  # redelivered: nothing new; the newest is still written online
        assert again.new == [] and [r["event_id"] for r in again.newest] == ["w/JFK|7"]
        late = sink.write([row(5)])  # new, but older than what the key has
        assert [r["event_id"] for r in late.new] == ["w/JFK|5"] and late.newest == []
        assert sink.count() == 4 and sink.newest() == dt.datetime(2013, 1, 2, 7, tzinfo=dt.UTC)
        rows = sink.rows(dt.datetime(2013, 1, 2, 6, tzinfo=dt.UTC), dt.datetime(2013, 1, 2, 7, tzinfo=dt.UTC))
        assert sorted(rows.event_id) == ["w/EWR|6", "w/JFK|6"] and str(rows.feature_timestamp.dt.tz) == "UTC"
        engine.dispose()


def test_the_event_clock_publishes_the_events_known_at_an_instant_itself_and_waits_for_the_processor(platform):
    """A request asked at 04:00 reads the observation that became known at 04:00 (one second or a microsecond
    past an instant must not round back onto it), and nothing known later."""

    usecase = resolve_usecase(platform, "flight_delay")
    with Running(platform, usecase):
        clock = EventClock(platform, usecase, _local(STREAMED_DAY, 0))
        clock.advance(_local(STREAMED_DAY, 3, 59))
        # From twelve hours before the start (twice the arrivals' six-hour window): the weather known at
        # 12:00 .. 03:00, three airports an hour.
        assert usecase.streaming.lookback == dt.timedelta(hours=12)
        noon, four = _local(STREAMED_DAY - dt.timedelta(days=1), 12), _local(STREAMED_DAY, 4)
        before_four = len(stream_events(platform, usecase, noon, four, ["weather_observations"]))
        assert clock.published["weather_observations"] == before_four > 40
        clock.advance(four)
        assert clock.published["weather_observations"] == before_four + 3, "the three airports' 03:00 hour"
        clock.advance(_local(STREAMED_DAY, 3))  # time never runs backwards
        assert clock.published["weather_observations"] == before_four + 3
        for stream in ("flight_departures", "flight_arrivals"):
            known = stream_events(platform, usecase, noon, four + dt.timedelta(microseconds=1), [stream])
            assert clock.published[stream] == len(known) > 100, stream
        online = (
            feature_store(platform)
            .get_online_features(features=["origin_weather:temperature_f"], entity_rows=[{"origin": "EWR"}])
            .to_dict()
        )
    four = [e for e in stream_events(platform, usecase, _local(STREAMED_DAY, 4), _local(STREAMED_DAY, 4, 1))
            if e.data["origin"] == "EWR"]  # fmt: skip
    assert online["temperature_f"] == [four[0].data["temp"]] and stream_status(platform, usecase).streams[0].lag == 0


def test_a_value_older_than_its_views_ttl_at_the_prediction_time_is_not_served(platform):
    """The online store keeps the evening's last departures all night; training's join drops them once
    they are older than the view's ttl (2 hours, its window's) at a flight's prediction time, and so must serving."""
    from pipelines.security.secrets import pii_salt
    from serving.model import OnlineFeatures
    from serving.schema import item_model

    usecase = resolve_usecase(platform, "flight_delay")
    evening, midnight = _local(STREAMED_DAY, 18), _local(STREAMED_DAY + dt.timedelta(days=1), 0)
    with Running(platform, usecase) as running:
        replay_events(platform, usecase, evening, midnight, 0, ["flight_departures"])
        running.drain()
    last = stream_events(platform, usecase, evening, midnight, ["flight_departures"])[-1].time.astimezone(TZ)
    assert midnight + dt.timedelta(hours=5) - last > dt.timedelta(hours=2)
    item = item_model(usecase)(flight_id="probe", carrier="UA", origin="EWR", destination="IAH",
                               scheduled_departure=dt.datetime(2013, 1, 3, 7, 0)).model_dump()  # fmt: skip
    lookup, columns = (
        OnlineFeatures(platform, usecase, pii_salt(platform)),
        ["origin_departures_2h", "carrier_flights_7d"],
    )
    morning = lookup.matrix([item], columns)[0]
    assert np.isnan(morning[0]), "asked at 05:00: the evening's departures expired"
    assert np.isfinite(morning[1]), "the midnight rates (ttl 2 days) are still served"
    soon = {**item, "scheduled_departure": last.replace(tzinfo=None) + dt.timedelta(hours=3)}  # asked 1 h after it
    assert lookup.matrix([soon], columns)[0][0] >= 1, "inside the ttl: served"


def test_two_platforms_on_one_broker_keep_their_own_streams(platform, tmp_path):
    """Each data root publishes and reads under its own namespace unless PLATFORM_STREAM_NAMESPACE names one."""
    from pipelines.errors import SettingsError

    other = make_settings(tmp_path / "other" / "var", stream_broker_url=BROKER_URL)
    usecase, start = resolve_usecase(platform, "flight_delay"), _local(STREAMED_DAY, 0)
    replay_events(platform, usecase, start, start + dt.timedelta(hours=3), 0, streams=["weather_observations"])
    broker = RedisStreams(BROKER_URL)
    assert broker.length(stream_key(platform, "flight_delay", "weather_observations")) == 9
    assert broker.length(stream_key(other, "flight_delay", "weather_observations")) == 0
    assert other.broker_namespace.startswith("platform-") and other.broker_namespace != platform.broker_namespace
    named = make_settings(tmp_path / "named" / "var", stream_namespace="ops-uae")
    assert stream_key(named, "flight_delay", "flight_arrivals") == "ops-uae:flight_delay:flight_arrivals"
    with pytest.raises(SettingsError, match="PLATFORM_STREAM_NAMESPACE"):
        make_settings(tmp_path / "bad" / "var", stream_namespace="ops uae")
