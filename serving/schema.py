"""What consumers send and receive. Strict: unknown fields, wrong types, out-of-range values and
oversized batches are refused with a 4xx that names the field, before any model code runs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_BATCH = 1000
Carrier = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2}$")]
Airport = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class FlightRequest(BaseModel):
    """One scheduled flight, as a consumer knows it before departure."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    flight_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    carrier: Carrier = Field(description="IATA carrier code, e.g. UA")
    origin: Airport = Field(description="Departure airport, e.g. EWR")
    destination: Airport = Field(description="Arrival airport, e.g. IAH")
    scheduled_departure: dt.datetime = Field(description="Local wall-clock time at the origin, no time zone")
    tailnum: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,8}$")] | None = Field(
        None, description="Aircraft registration, e.g. N14228 (hashed on arrival, never stored in clear)"
    )


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
