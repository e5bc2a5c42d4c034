"""Feast definitions of the flight-delay use case: entities, sources over the dbt marts,
feature views, request-time features and the versioned FeatureService a model names.

One set of definitions for every environment: `mart_source` gives each view its mart (the
Parquet export locally, the marts schema in PostgreSQL in production). A view is named after its
mart, and the spec's `features.marts` lists them (usecase.yaml).

Request-time features (hour, weekday, month of the scheduled departure) are not an
on-demand feature view: Feast stores those as dill-serialized code in the registry and
runs it on read, which our no-pickle rule forbids. They are computed by
pipelines.features.request_time from the spec's `features.request_time`, called by training and
serving alike.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field
from feast.types import Float64, Int64
from feast.value_type import ValueType

from pipelines.features.sources import mart_source

carrier = Entity(
    name="carrier", join_keys=["carrier"], value_type=ValueType.STRING, description="Airline carrier code, e.g. UA"
)
route = Entity(
    name="route",
    join_keys=["route"],
    value_type=ValueType.STRING,
    description="Origin and destination airports, e.g. EWR-IAH",
)
plane = Entity(
    name="plane",
    join_keys=["tailnum_hash"],
    value_type=ValueType.STRING,
    description="Salted SHA-256 of the tail number (personal data is never stored in clear)",
)
origin_airport = Entity(
    name="origin_airport",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="Departure airport (EWR, JFK, LGA)",
)

carrier_delay_rates = FeatureView(
    name="carrier_delay_rates",
    entities=[carrier],
    ttl=timedelta(days=2),
    schema=[
        Field(name="carrier_flights_7d", dtype=Int64),
        Field(name="carrier_late_rate_7d", dtype=Float64),
        Field(name="carrier_flights_28d", dtype=Int64),
        Field(name="carrier_late_rate_28d", dtype=Float64),
    ],
    source=mart_source("carrier_delay_rates"),
    description="Trailing late-arrival rates of the carrier, from flights landed before the daily snapshot.",
)

route_delay_rates = FeatureView(
    name="route_delay_rates",
    entities=[route],
    ttl=timedelta(days=2),
    schema=[
        Field(name="route_flights_7d", dtype=Int64),
        Field(name="route_late_rate_7d", dtype=Float64),
        Field(name="route_flights_28d", dtype=Int64),
        Field(name="route_late_rate_28d", dtype=Float64),
        Field(name="route_distance_miles", dtype=Float64),
    ],
    source=mart_source("route_delay_rates"),
    description="Trailing late-arrival rates of the route and its distance.",
)

plane_features = FeatureView(
    name="plane_features",
    entities=[plane],
    ttl=timedelta(days=3650),  # registry attributes stay valid; the ttl bounds the first materialization
    schema=[
        Field(name="plane_age_years", dtype=Int64),
        Field(name="plane_seats", dtype=Int64),
        Field(name="plane_engines", dtype=Int64),
    ],
    source=mart_source("plane_features"),
    description="Aircraft age, seats and engines from the registry snapshot.",
)

origin_weather = FeatureView(
    name="origin_weather",
    entities=[origin_airport],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="temperature_f", dtype=Float64),
        Field(name="dewpoint_f", dtype=Float64),
        Field(name="humidity_pct", dtype=Float64),
        Field(name="wind_speed_mph", dtype=Float64),
        Field(name="wind_gust_mph", dtype=Float64),
        Field(name="precipitation_in", dtype=Float64),
        Field(name="pressure_mb", dtype=Float64),
        Field(name="visibility_mi", dtype=Float64),
    ],
    source=mart_source("origin_weather"),
    description="Latest hourly weather observation at the departure airport, at most 3 hours old.",
)

origin_departure_delays = FeatureView(
    name="origin_departure_delays",
    entities=[origin_airport],
    ttl=timedelta(hours=2),  # a windowed view lives as long as its window (the stream's window: PT2H)
    schema=[
        Field(name="origin_departures_2h", dtype=Int64),
        Field(name="origin_dep_delay_2h", dtype=Float64),
    ],
    source=mart_source("origin_departure_delays"),
    description="Departures of the last two hours at the airport and their mean delay, as of the latest departure "
    "(kept current by the flight_departures stream).",
)

carrier_arrival_delays = FeatureView(
    name="carrier_arrival_delays",
    entities=[carrier],
    ttl=timedelta(hours=6),  # the stream's window: PT6H
    schema=[
        Field(name="carrier_arrivals_6h", dtype=Int64),
        Field(name="carrier_arr_delay_6h", dtype=Float64),
    ],
    source=mart_source("carrier_arrival_delays"),
    description="The carrier's arrivals of the last six hours and their mean arrival delay, as of the latest arrival "
    "(kept current by the flight_arrivals stream).",
)

# Version 2 added the airport's departures of the last two hours; version 3 the carrier's arrivals of the last
# six: the day's own delays so far.
flight_delay_v3 = FeatureService(
    name="flight_delay_v3",
    features=[
        carrier_delay_rates,
        route_delay_rates,
        plane_features,
        origin_weather,
        origin_departure_delays,
        carrier_arrival_delays,
    ],
    description="Stored features of the flight-delay model, version 3 (plus request-time schedule features).",
)
