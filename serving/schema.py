"""What consumers send and receive. Strict: unknown fields, wrong types, out-of-range values and
oversized batches are refused with a 4xx that names the field, before any model code runs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_BATCH = 1000
# Departures a consumer may ask about: wide enough for any schedule, narrow enough for every date type.
EARLIEST_DEPARTURE, LATEST_DEPARTURE = dt.datetime(1990, 1, 1), dt.datetime(2100, 1, 1)
Carrier = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2}$")]
Airport = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# The codes a request may use, from the same data contract the ingest validates against (the Great
# Expectations suite of raw flights): the carriers, and the three New York origins the model has
# weather for. Destinations are checked for form only: the FAA list lacks some that real flights use.
# The OpenAPI document lists them, so consumers (and generated tests) know them too.


def _known_codes() -> dict[str, list[str]]:
    import json

    from pipelines.settings import REPO_ROOT

    suite = json.loads((REPO_ROOT / "expectations" / "raw_flights.json").read_text())
    known = {}
    for expectation in suite["expectations"]:
        column = expectation["kwargs"].get("column")
        if expectation["type"] == "expect_column_values_to_be_in_set" and column in ("carrier", "origin"):
            known[column] = sorted(expectation["kwargs"]["value_set"])
    return known


KNOWN = _known_codes()


class FlightRequest(BaseModel):
    """One scheduled flight, as a consumer knows it before departure."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    flight_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    carrier: Carrier = Field(description="IATA carrier code, e.g. UA", json_schema_extra={"enum": KNOWN["carrier"]})
    origin: Airport = Field(description="Departure airport, e.g. EWR", json_schema_extra={"enum": KNOWN["origin"]})
    destination: Airport = Field(description="Arrival airport, e.g. IAH")
    scheduled_departure: dt.datetime = Field(description="Local wall-clock time at the origin, no time zone")
    tailnum: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,8}$")] | None = Field(
        None, description="Aircraft registration, e.g. N14228 (hashed on arrival, never stored in clear)"
    )

    @field_validator("carrier")
    @classmethod
    def _known_carrier(cls, value: str) -> str:
        if value not in KNOWN["carrier"]:
            raise ValueError(f"unknown carrier {value!r}; known carriers: {', '.join(sorted(KNOWN['carrier']))}")
        return value

    @field_validator("scheduled_departure")
    @classmethod
    def _plausible_departure(cls, value: dt.datetime) -> dt.datetime:
        if not EARLIEST_DEPARTURE <= value.replace(tzinfo=None) < LATEST_DEPARTURE:
            raise ValueError(
                f"scheduled departure {value.isoformat()} is outside {EARLIEST_DEPARTURE.date()} .. "
                f"{LATEST_DEPARTURE.date()}; send the local departure time, e.g. 2013-01-05T17:30:00"
            )
        return value

    @field_validator("origin")
    @classmethod
    def _known_origin(cls, value: str) -> str:
        if value not in KNOWN["origin"]:
            raise ValueError(
                f"unknown origin {value!r}; the model serves departures from {', '.join(sorted(KNOWN['origin']))}"
            )
        return value


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flights: list[FlightRequest] = Field(min_length=1, max_length=MAX_BATCH)


class Prediction(BaseModel):
    flight_id: str
    probability: float = Field(ge=0, le=1)
    late: bool = Field(description="probability at or above the model's decision threshold")
    model_version: int
    variant: str


class PredictResponse(BaseModel):
    request_id: str
    predictions: list[Prediction]
