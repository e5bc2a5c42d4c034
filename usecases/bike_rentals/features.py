"""Feast definitions of the bike-rentals use case: the hour of the day, the kind of day and the city as entities,
a feature view per mart of trailing demand, and the FeatureService the model names.

Each view is named after its mart (the spec's `features.marts`); `mart_source` reads the mart's
Parquet export locally and the marts schema in PostgreSQL in production. The hour's calendar and
weather forecast are not stored features: a request carries them (the spec's
`features.request_inputs` and `features.request_time`).
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field
from feast.types import Float64
from feast.value_type import ValueType

from pipelines.features.sources import mart_source

hour_of_day = Entity(
    name="hour_of_day", join_keys=["hour_of_day"], value_type=ValueType.INT64, description="Local hour, 0-23"
)
day_kind = Entity(
    name="day_kind", join_keys=["is_workingday"], value_type=ValueType.INT64, description="1 a working day, else 0"
)
city = Entity(name="city", join_keys=["city"], value_type=ValueType.STRING, description="The bike-share system")

hourly_demand = FeatureView(
    name="hourly_demand",
    entities=[hour_of_day, day_kind],
    ttl=timedelta(days=2),
    schema=[
        Field(name="riders_same_hour_7d", dtype=Float64),
        Field(name="riders_same_hour_28d", dtype=Float64),
        Field(name="riders_same_hour_day_kind_28d", dtype=Float64),
    ],
    source=mart_source("hourly_demand"),
    description="Mean riders of the same hour over the 7 and 28 days before the daily snapshot, and over the "
    "days of the same kind (working day or not) among those 28.",
)

daily_demand = FeatureView(
    name="daily_demand",
    entities=[city],
    ttl=timedelta(days=2),
    schema=[
        Field(name="riders_yesterday", dtype=Float64),
        Field(name="riders_daily_7d", dtype=Float64),
    ],
    source=mart_source("daily_demand"),
    description="Riders of the whole day before the snapshot, and the mean day of the week before it.",
)

bike_rentals_v1 = FeatureService(
    name="bike_rentals_v1",
    features=[hourly_demand, daily_demand],
    description="Stored features of the bike-rentals model, version 1 (plus the request's calendar and weather).",
)
