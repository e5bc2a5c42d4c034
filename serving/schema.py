"""What consumers send and receive, per use case, from its spec's `serving` section. Strict: unknown
fields, wrong types, out-of-range values, values outside the data contract and oversized batches are
refused with a 4xx that names the field, before any model code runs."""

from __future__ import annotations

import datetime as dt
import functools
import json
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model, field_validator

from pipelines.settings import REPO_ROOT
from pipelines.usecases.spec import RequestField, UseCase

MAX_BATCH = 1000
# Local times a consumer may ask about: wide enough for any schedule, narrow enough for every date type.
EARLIEST, LATEST = dt.datetime(1990, 1, 1), dt.datetime(2100, 1, 1)


@functools.cache
def known_values(suite: str, column: str) -> tuple[str, ...]:
    """The values a request may use, from the same data contract the ingest validates against (the suite's
    expect_column_values_to_be_in_set of `column`); the OpenAPI document lists them too."""
    path = REPO_ROOT / "expectations" / f"{suite}.json"
    for expectation in json.loads(path.read_text())["expectations"]:
        if expectation["type"] == "expect_column_values_to_be_in_set" and expectation["kwargs"].get("column") == column:
            return tuple(sorted(expectation["kwargs"]["value_set"]))
    raise ValueError(f"{path} has no expect_column_values_to_be_in_set for {column!r} (a request field's `known`)")


def printable(value: str) -> str:
    """Refuse control, format (the bidirectional overrides among them), private-use and unassigned
    characters in any string field: an id is echoed back and written to the prediction log, where
    U+0000 or U+202E would forge or hide what a reader sees."""
    bad = next((c for c in value if unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise ValueError(
            f"contains U+{ord(bad):04X} ({unicodedata.name(bad, 'a control character')}) at position "
            f"{value.index(bad)}; send printable characters only"
        )
    return value


def _annotation(spec: RequestField) -> tuple[Any, Any]:
    extra = {"enum": list(known_values(spec.known.suite, spec.known.column))} if spec.known else None
    if spec.type == "string":
        kind: Any = Annotated[
            str,
            StringConstraints(min_length=1, max_length=spec.max_length, pattern=spec.pattern),
            AfterValidator(printable),
        ]
    elif spec.type in ("number", "integer"):
        base = float if spec.type == "number" else int
        kind = Annotated[base, Field(ge=spec.minimum, le=spec.maximum, allow_inf_nan=False)]
    else:
        kind = dt.datetime
    if spec.optional:
        kind = kind | None
    return kind, Field(None if spec.optional else ..., description=spec.description, json_schema_extra=extra)


def _validators(usecase: UseCase) -> dict:
    serving = usecase.serving
    validators = {}

    def plausible(cls, value: dt.datetime) -> dt.datetime:
        if not EARLIEST <= value.replace(tzinfo=None) < LATEST:
            raise ValueError(
                f"{serving.time} {value.isoformat()} is outside {EARLIEST.date()} .. {LATEST.date()}; send the "
                "local wall-clock time, e.g. 2013-01-05T17:30:00"
            )
        return value

    validators["_plausible_time"] = field_validator(serving.time)(classmethod(plausible))
    for name, spec in serving.fields.items():
        if spec.known is None:
            continue
        known = known_values(spec.known.suite, spec.known.column)

        def check(cls, value, name=name, known=known):
            if value is not None and value not in known:
                raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")
            return value

        validators[f"_known_{name}"] = field_validator(name)(classmethod(check))
    return validators


def _by_spec(build):
    """Cache a model builder per spec (a UseCase is not hashable; its JSON is)."""
    cached = functools.cache(lambda text: build(UseCase.model_validate_json(text)))
    return functools.wraps(build)(lambda usecase: cached(usecase.model_dump_json()))


@_by_spec
def item_model(usecase: UseCase) -> type[BaseModel]:
    """One item of a request (a flight, an hour), as the spec's `serving.fields` describe it."""
    fields = {name: _annotation(spec) for name, spec in usecase.serving.fields.items()}
    model = create_model(
        f"{_camel(usecase.name)}{_camel(usecase.serving.batch).removesuffix('s')}",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        __validators__=_validators(usecase),
        **fields,
    )
    model.__doc__ = f"One item of a {usecase.title.lower()} request."
    return model


@_by_spec
def request_model(usecase: UseCase) -> type[BaseModel]:
    """The request body: {<batch>: [item, ...]} with 1 to MAX_BATCH items."""
    items = Annotated[list[item_model(usecase)], Field(min_length=1, max_length=MAX_BATCH)]
    return create_model(f"{_camel(usecase.name)}Request", __config__=ConfigDict(extra="forbid"),
                        **{usecase.serving.batch: (items, ...)})  # fmt: skip


@_by_spec
def prediction_model(usecase: UseCase) -> type[BaseModel]:
    """One answer: the item's id, the model's answer (a probability and its decision, or a prediction),
    the model version and the variant that answered."""
    fields: dict[str, Any] = {usecase.features.entity_id: (str, ...)}
    none = " (null for a human_review answer)"
    if usecase.task == "binary_classification":
        fields["probability"] = (float | None, Field(ge=0, le=1, description="the positive class's probability" + none))
        decided = "probability at or above the model's threshold" + none
        fields[usecase.serving.decision] = (bool | None, Field(description=decided))
    else:
        predicted = f"the predicted {usecase.features.label.column}" + none
        fields["prediction"] = (float | None, Field(description=predicted))
    who = ("model: a model answered; human_review: the data subject objects to automated decisions (UAE PDPL "
           "Art. 18): no model scored the item, a person decides")  # fmt: skip
    fields.update(model_version=(int | None, Field(description="the model version that answered" + none)),
                  variant=(str, ...), decision=(Literal["model", "human_review"], Field(description=who)))  # fmt: skip
    return create_model(f"{_camel(usecase.name)}Prediction", **fields)


@_by_spec
def response_model(usecase: UseCase) -> type[BaseModel]:
    return create_model(f"{_camel(usecase.name)}Response", request_id=(str, ...),
                        predictions=(list[prediction_model(usecase)], ...))  # fmt: skip


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
