"""A use case is a spec: one validated YAML file (`usecases/<name>/usecase.yaml`) per model.

It names what the shared DAG builders (pipelines/orchestration/dag_builders.py) and the
stages need to know about one model: its schedules and operations time zone, the
FeatureService it is trained on, its model families and their hyperparameters, the training
windows, the evaluation gate and its slices, the drift and retraining policy, and the
residency class of its data. The platform's settings (pipelines/settings.py) say where
things run; the spec says what one use case is.

YAML, not a Python dataclass: a spec is data an engineer edits and a reviewer reads, the
Airflow UI shows it verbatim in each DAG's docs, and the scaffold writes it; pydantic gives it
the checks a dataclass would, with the failing field's path in the message.

Per-environment overrides (a shorter window for the tests, a quicker policy for a demo) go
in `PLATFORM_USECASE_OVERRIDES`, a JSON object of dotted field paths per use case, e.g.
`{"taxi_fares": {"training.windows.train_days": 21}}`: they are validated like the file.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipelines.errors import SettingsError
from pipelines.usecases.governance import Deploy, Retention, Subject
from pipelines.usecases.objectives import Objectives
from pipelines.usecases.prediction import Prediction
from pipelines.usecases.sources import ColumnType, Sources, SourceTable  # noqa: F401 (re-exported)
from pipelines.usecases.streaming import Streaming, check_streams

if TYPE_CHECKING:
    from pipelines.settings import Settings

SPEC_FILE = "usecase.yaml"
NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
# A table or column the stages put into SQL (marts, the entity mart's columns): a plain lowercase identifier.
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
# The hyperparameters each family's trainer (pipelines/training/trainers.py) takes, and their values
# where a spec leaves one out.
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 600, "learning_rate": 0.05, "max_depth": 6, "min_child_weight": 5, "subsample": 0.8,
                "colsample_bytree": 0.8, "reg_lambda": 1.0, "reg_alpha": 0.0, "gamma": 0.0, "max_bin": 256,
                "early_stopping_rounds": 40},
    "mlp": {"hidden": [64, 32], "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "max_epochs": 60, "patience": 8},
}  # fmt: skip


Task = Literal["binary_classification", "regression"]
DagKind = Literal["ingest", "training", "deploy", "monitoring", "reconciliation", "housekeeping", "batch_scoring"]
# The holdout metrics of each task (pipelines/evaluation/metrics.py) that a gate may bound.
METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("roc_auc", "pr_auc", "log_loss", "log_loss_skill", "brier", "ece"),
    "regression": ("rmse", "mae", "bias", "r2", "rmse_vs_baseline"),
}
PRIMARY_METRIC = {"binary_classification": "roc_auc", "regression": "rmse"}
HIGHER_IS_BETTER = frozenset({"roc_auc", "pr_auc", "log_loss_skill", "r2"})


class UseCaseError(SettingsError):
    """A use-case spec that cannot be read or does not validate."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cron(value: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron expression (five fields, e.g. '0 3 * * 1')")
    return value


class Residency(_Section):
    data_class: Literal["public", "internal", "confidential", "restricted"] = Field(
        description="How sensitive the use case's data is; confidential and restricted data never leave `regions`."
    )
    regions: list[str] = Field(min_length=1, description="Cloud regions its data and artifacts may be stored in.")


class Transform(_Section):
    select: str = Field(description="dbt node selection of the use case's models, e.g. path:models/<name>.")


class RequestTime(_Section):
    column: Identifier = Field(description="The entity mart's local wall-clock time a request carries (no time zone).")
    prefix: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Its features: <prefix>_hour, _weekday, _month.")

    @property
    def features(self) -> list[str]:
        return [f"{self.prefix}_{part}" for part in ("hour", "weekday", "month")]


class Label(_Section):
    column: Identifier = Field(description="The entity mart's column the model predicts.")
    available_at: Identifier = Field(description="The entity mart's column saying when the label became known (UTC).")


class Features(_Section):
    definitions: str = Field("features.py", description="The Feast objects of the use case, in its folder.")
    feature_service: str = Field(description="The Feast FeatureService the model is trained and served on.")
    marts: list[Identifier] = Field(min_length=1, description="The dbt marts the feature store reads (Feast sources).")
    entity_mart: Identifier = Field(description="The mart with one row per prediction: ids, join keys, label.")
    entity_id: Identifier = Field(description="Its unique id of a prediction (a flight, an hour).")
    join_keys: list[Identifier] = Field(description="Its columns the feature views join on.")
    day: Identifier = Field(description="Its operations day (a local date): what a day's ingest lands and builds.")
    request_time: RequestTime
    request_inputs: list[Identifier] = Field(
        default_factory=list, description="Its numeric columns a request carries as model inputs (e.g. a forecast)."
    )
    label: Label

    @model_validator(mode="after")
    def _entity_mart_is_a_mart(self) -> Features:
        if self.entity_mart not in self.marts:
            raise ValueError(f"entity_mart {self.entity_mart!r} is not among the marts {self.marts}")
        return self

    @property
    def views(self) -> list[str]:
        """The marts served by feature views (all but the entity mart)."""
        return [mart for mart in self.marts if mart != self.entity_mart]

    @property
    def request_features(self) -> list[str]:
        """Model inputs computed from, or carried by, the request: after the stored features."""
        return self.request_time.features + self.request_inputs


class KnownValues(_Section):
    suite: str = Field(description="The Great Expectations suite (expectations/<suite>.json) holding the list.")
    column: str = Field(description="Its column whose expect_column_values_to_be_in_set lists the known values.")


class RequestField(_Section):
    type: Literal["string", "number", "integer", "local_datetime"]
    description: str = ""
    optional: bool = Field(False, description="May be left out or null.")
    pattern: str | None = Field(None, description="A string's regular expression.")
    max_length: int | None = Field(None, ge=1, description="A string's longest length.")
    minimum: float | None = Field(None, description="A number's smallest value.")
    maximum: float | None = Field(None, description="A number's largest value.")
    known: KnownValues | None = Field(None, description="A string must be one of the values its suite allows.")
    pii: bool = Field(False, description="Personal data: only its salted hash is used, it is never logged.")


class JoinKeyRule(_Section):
    hash: str | None = Field(None, description="The salted SHA-256 of this (PII) field; empty when it is missing.")
    hour_of: str | None = Field(None, description="The hour (0-23) of this local_datetime field.")

    @model_validator(mode="after")
    def _one(self) -> JoinKeyRule:
        if (self.hash is None) == (self.hour_of is None):
            raise ValueError("give exactly one of hash or hour_of")
        return self


class ReplayRule(_Section):
    column: str | None = Field(None, description="The source column's value...")
    scale: float | None = Field(None, description="...times this factor...")
    values: dict[str, float | int | str] | None = Field(None, description="...or mapped through this table.")
    clock_hhmm: str | None = Field(None, description="The local time on the day given by this HHMM column.")
    hour: str | None = Field(None, description="The local time on the day at the hour in this column.")

    @model_validator(mode="after")
    def _one(self) -> ReplayRule:
        if sum(v is not None for v in (self.column, self.clock_hhmm, self.hour)) != 1:
            raise ValueError("give exactly one of column, clock_hhmm or hour")
        if self.column is None and (self.scale is not None or self.values is not None):
            raise ValueError("scale and values apply to a column")
        return self


class Replay(_Section):
    table: str = Field(description="The day-partitioned source table whose rows of a day become the requests.")
    fields: dict[str, str | ReplayRule] = Field(
        description="Each request field from a source row: a template ('{date}-{carrier}{flight}', python format "
        "specs allowed) or a rule."
    )


TEMPLATE_FIELD = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class Serving(_Section):
    route: str = Field(pattern=r"^/[a-z0-9_/]+$", description="The HTTP route of the use case's predictions.")
    batch: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="The request body's list of items, e.g. flights.")
    time: str = Field(description="The field holding features.request_time: a local wall-clock time.")
    decision: str | None = Field(
        None, description="A binary model's yes/no answer (its probability at or above the model's threshold)."
    )
    fields: dict[str, RequestField] = Field(min_length=1, description="What one item of a request carries.")
    join_keys: dict[str, str | JoinKeyRule] = Field(
        description="How an item gives each feature view's join key: a template of fields ('{origin}-{destination}', "
        "'{carrier}'), a constant, or a rule (hash, hour_of)."
    )
    replay: Replay = Field(
        description="How a day of the source becomes the requests consumers would send about it (make run's "
        "traffic, the deploy smoke test)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Serving:
        if self.fields.get(self.time) is None or self.fields[self.time].type != "local_datetime":
            raise ValueError(f"time {self.time!r} must be a field of type local_datetime")
        for key, rule in self.join_keys.items():
            used = TEMPLATE_FIELD.findall(rule) if isinstance(rule, str) else [rule.hash or rule.hour_of]
            missing = [name for name in used if name not in self.fields]
            if missing:
                raise ValueError(f"join_keys.{key} uses {missing}, which are not among the fields")
        unknown = sorted(set(self.replay.fields) - set(self.fields))
        uncovered = sorted(n for n, f in self.fields.items() if not f.optional and n not in self.replay.fields)
        if unknown or uncovered:
            raise ValueError(f"replay.fields: {unknown} are not fields; required fields {uncovered} are not replayed")
        return self

    def key_of(self, key: str, item: dict, hash_pii) -> object:
        """Join key `key` of one request item (a dict of its fields); `hash_pii(value)` hashes personal data."""
        rule = self.join_keys[key]
        if isinstance(rule, JoinKeyRule):
            if rule.hash:
                return hash_pii(item[rule.hash]) if item.get(rule.hash) else ""
            return item[rule.hour_of].hour
        whole = TEMPLATE_FIELD.fullmatch(rule)
        if whole:  # one field as it is (an integer key stays an integer)
            return item[whole.group(1)]
        return TEMPLATE_FIELD.sub(lambda m: str(item[m.group(1)]), rule)


class Ingest(_Section):
    schedule: str = Field(description="Cron of the daily ingest, in the use case's time zone; one run per day.")
    first_day: dt.date = Field(description="The first operations day the source holds.")
    last_day: dt.date = Field(description="The last operations day the source holds.")
    max_active_runs: int = Field(2, ge=1, le=16)

    _schedule = field_validator("schedule")(_cron)

    @model_validator(mode="after")
    def _ordered(self) -> Ingest:
        if self.last_day < self.first_day:
            raise ValueError(f"last_day {self.last_day} is before first_day {self.first_day}")
        return self


class Windows(_Section):
    train_days: int = Field(ge=1, description="Days the model is fitted on.")
    validation_days: int = Field(ge=1, description="Days after those, for early stopping and the threshold.")
    holdout_days: int = Field(ge=1, description="Days after those, on which candidate and champion are judged.")


class Training(_Section):
    schedule: str = Field(description="Cron of the scheduled retraining (it also runs on new features and on drift).")
    windows: Windows
    families: dict[Literal["xgboost", "mlp"], dict[str, Any]] = Field(
        min_length=1, description="Candidate model families and their hyperparameters; each is trained and gated."
    )

    _schedule = field_validator("schedule")(_cron)

    @field_validator("families")
    @classmethod
    def _known_hyperparameters(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for family, params in value.items():
            unknown = sorted(set(params) - set(HYPERPARAMETERS[family]))
            if unknown:
                raise ValueError(
                    f"{family}: unknown hyperparameter(s) {unknown}; known: {sorted(HYPERPARAMETERS[family])}"
                )
        return value

    def hyperparameters(self, family: str) -> dict[str, Any]:
        """The family's full hyperparameters: the spec's, then the trainer's defaults for the rest."""
        return {**HYPERPARAMETERS[family], **self.families[family]}


class Limit(_Section):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Limit:
        if self.min is None and self.max is None:
            raise ValueError("needs a min or a max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class ClearCases(_Section):
    high: dict[str, float] = Field(min_length=1, description="Feature values that must predict higher...")
    low: dict[str, float] = Field(min_length=1, description="...than these, for every holdout row.")
    min_share: float = Field(0.9, gt=0, le=1, description="Share of rows that must rank high above low.")


class Behaviour(_Section):
    invariant_to: list[str] = Field(
        default_factory=list, description="Identifiers (entity keys) that must never be model inputs."
    )
    increasing: list[str] = Field(
        default_factory=list, description="Features whose rise by one standard deviation must not lower the mean."
    )
    clear_cases: ClearCases | None = None


class Gate(_Section):
    limits: dict[str, Limit] = Field(
        min_length=1, description="Bounds on holdout metrics (the task's: see METRICS), e.g. roc_auc: {min: 0.6}."
    )
    baseline: list[str] = Field(
        min_length=1,
        description="The naive baseline: the first of these features a row has, else the training mean of the label.",
    )
    tolerance_abs: float = Field(ge=0, description="It may trail the champion by this much...")
    tolerance_rel: float = Field(ge=0, description="...or by this fraction of the champion's metric.")
    slices: list[str] = Field(min_length=1, description="Columns whose values are judged one by one.")
    slice_margin: float = Field(
        ge=0, description="Largest loss of a slice's primary metric (ROC AUC, RMSE) against the champion."
    )
    slice_min_rows: int = Field(ge=1, description="Slices smaller than this are reported, not gated.")
    behaviour: Behaviour = Field(default_factory=Behaviour)


class Retraining(_Section):
    min_rows: int = Field(ge=1, description="Scored rows a day needs to count.")
    max_feature_drift: float = Field(gt=0, description="Importance-weighted KS beyond natural drift.")
    max_prediction_drift: float = Field(gt=0, description="Prediction KS beyond natural drift.")
    max_loss_ratio: float = Field(
        gt=1, description="Pooled live loss / the reference's (log loss, or squared error for a regressor)."
    )
    max_bias: float = Field(
        gt=0, description="Pooled |mean prediction - mean label| (a classifier's calibration gap), in label units."
    )
    consecutive_days: int = Field(ge=1, description="Breaching days in a row before a retrain.")
    cooldown_days: int = Field(ge=0, description="Days after a retrain request before another.")
    performance_days: int = Field(ge=1, description="Assessed days pooled for log loss and calibration.")


class Monitoring(_Section):
    schedule: str = Field(description="Cron of the daily drift and performance check of the day before.")
    categorical: list[str] = Field(description="Features compared with chi-squared instead of KS.")
    retraining: Retraining

    _schedule = field_validator("schedule")(_cron)


class UseCase(_Section):
    name: str = Field(description="Model name in the registry, prefix of its DAGs and assets.")
    title: str
    description: str
    owner: str = Field(description="Who answers for the use case (the DAGs' owner).")
    timezone: str = Field(description="The operations day's time zone: a logical date is a local day.")
    task: Task = Field(description="What the model predicts: a probability of the positive class, or a number.")
    residency: Residency
    sources: Sources
    transform: Transform
    features: Features
    prediction: Prediction = Field(default_factory=Prediction)
    streaming: Streaming | None = Field(None, description="Event streams that keep online features current.")
    ingest: Ingest
    training: Training
    gate: Gate
    serving: Serving
    monitoring: Monitoring
    objectives: Objectives = Field(default_factory=Objectives, description="The service levels it is run against.")
    deploy: Deploy = Field(default_factory=Deploy, description="Who must approve a release before it takes traffic.")
    subject: Subject | None = Field(None, description="Who the data is about: erasure and objection act on it.")
    retention: Retention = Field(default_factory=Retention, description="How long each kind of data is kept.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r} must be 2-40 lowercase letters, digits or _, starting with a letter")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/New_York, Asia/Dubai)") from None
        return value

    @field_validator("gate")
    @classmethod
    def _metrics_of_the_task(cls, gate: Gate, info: ValidationInfo) -> Gate:
        task = info.data.get("task")
        unknown = sorted(set(gate.limits) - set(METRICS.get(task, ())))
        if task and unknown:
            raise ValueError(f"limits {unknown} are not metrics of a {task} model: {sorted(METRICS[task])}")
        return gate

    @model_validator(mode="after")
    def _served_as_featured(self) -> UseCase:
        f, s = self.features, self.serving
        problems = []
        if f.entity_id not in s.fields:
            problems.append(f"the entity id {f.entity_id!r} (features.entity_id) is not a field")
        for name in f.request_inputs:
            if s.fields.get(name) is None or s.fields[name].type not in ("number", "integer"):
                problems.append(f"request input {name!r} (features.request_inputs) is not a number field")
        if sorted(s.join_keys) != sorted(f.join_keys):
            problems.append(f"join_keys {sorted(s.join_keys)} differ from features.join_keys {sorted(f.join_keys)}")
        if s.replay.table not in self.sources.partitioned:
            problems.append(f"replay.table {s.replay.table!r} is not a day-partitioned source table")
        if s.decision == "decision":
            problems.append(
                "decision may not be called `decision`: every answer has that field (model or human_review)"
            )
        if (s.decision is None) != (self.task == "regression"):
            problems.append("decision names a binary model's yes/no answer: required for one, refused for a regressor")
        if problems:
            raise ValueError("serving: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _subject_exists(self) -> UseCase:
        if self.subject is None:
            return self
        tables = self.sources.tables
        problems = [f"{table}.{column} is not a source column" for table, column in self.subject.columns.items()
                    if column not in (tables[table].columns if table in tables else {})]  # fmt: skip
        field = self.subject.request_field
        if field is not None and field not in self.serving.fields:
            problems.append(f"request_field {field!r} is not a serving field")
        if problems:
            raise ValueError("subject: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _streams_fit(self) -> UseCase:
        problems = check_streams(self.streaming, self.sources, self.features.views) if self.streaming else []
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def prediction_column(self) -> str:
        """What the model answers, in responses and the prediction log: a probability, or a prediction."""
        return "probability" if self.task == "binary_classification" else "prediction"

    @property
    def primary_metric(self) -> str:
        """The metric candidates are ranked, and slices compared, on."""
        return PRIMARY_METRIC[self.task]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def dag_id(self, kind: DagKind) -> str:
        return f"{self.name}_{kind}"

    def as_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, width=100)


def spec_path(usecases_dir: Path, name: str) -> Path:
    return usecases_dir / name / SPEC_FILE


def available(usecases_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in usecases_dir.glob(f"*/{SPEC_FILE}"))


def load_usecase(usecases_dir: Path, name: str, overrides: dict[str, Any] | None = None) -> UseCase:
    """The validated spec of use case `name`, with dotted-path `overrides` applied; UseCaseError names the field."""
    path = spec_path(usecases_dir, name)
    if not path.is_file():
        raise UseCaseError(
            f"use case {name!r} has no spec at {path}; known: {available(usecases_dir)}. "
            f"Create one with `platform new-usecase {name}`."
        )
    stat = path.stat()
    return _load(str(path), stat.st_mtime_ns, yaml.safe_dump(overrides or {}, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _load(path: str, _mtime_ns: int, overrides_yaml: str) -> UseCase:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise UseCaseError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UseCaseError(f"{path} must hold a mapping of fields (name, title, ...), holds {type(data).__name__}")
    for dotted, value in yaml.safe_load(overrides_yaml).items():
        data = _with(data, dotted, value, path)
    try:
        spec = UseCase.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != '[key]') or '(top level)'}: {e['msg']}"
                    + (f" (got {_short(e['input'])})" if e["type"] != "missing" else "")
                    for e in exc.errors()]  # fmt: skip
        raise UseCaseError(f"{path} is not a valid use-case spec:\n  " + "\n  ".join(problems)) from None
    if spec.name != Path(path).parent.name:
        raise UseCaseError(f"{path}: name: {spec.name!r} must equal its folder's name {Path(path).parent.name!r}")
    return spec


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _with(data: dict, dotted: str, value: Any, path: str) -> dict:
    """`data` with the field at `dotted` (e.g. training.windows.train_days) set to `value`."""
    updated = copy.deepcopy(data)
    node, parts = updated, dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise UseCaseError(
                f"override {dotted!r} of {path}: {'.'.join(parts[: i + 1])} is not a section of the spec"
            )
        node = node[part]
    node[parts[-1]] = value
    return updated


def resolve_usecase(settings: Settings, name: str) -> UseCase:
    """Use case `name` as this platform runs it: the spec under `settings.usecases_dir` with the
    settings' overrides, refused where the platform may store data outside the spec's regions."""
    spec = load_usecase(settings.usecases_dir, name, settings.usecase_overrides.get(name))
    outside = sorted(set(settings.allowed_regions) - set(spec.residency.regions))
    if outside and spec.residency.data_class in ("confidential", "restricted"):
        raise UseCaseError(
            f"use case {name} holds {spec.residency.data_class} data that must stay in {spec.residency.regions}, "
            f"but PLATFORM_ALLOWED_REGIONS also allows {outside}: narrow PLATFORM_ALLOWED_REGIONS, or widen "
            f"residency.regions in {spec_path(settings.usecases_dir, name)} if the data owner agrees"
        )
    return spec


def write_snapshot(spec: UseCase, folder: Path) -> None:
    """Freeze the spec a run started with in its folder: its later tasks read this, not the file."""
    (folder / SPEC_FILE).write_text(spec.as_yaml())


def read_snapshot(folder: Path) -> UseCase:
    return UseCase.model_validate(yaml.safe_load((folder / SPEC_FILE).read_text()))


def with_overrides(settings: Settings, name: str, updates: dict[str, Any]) -> Settings:
    """`settings` whose spec of use case `name` gets `updates` (dotted field paths) on top of its overrides."""
    mine = {**settings.usecase_overrides.get(name, {}), **updates}
    return settings.model_copy(update={"usecase_overrides": {**settings.usecase_overrides, name: mine}})


def windows(train_days: int, validation_days: int, holdout_days: int) -> dict[str, int]:
    """The overrides of a spec's training windows."""
    return {"training.windows.train_days": train_days, "training.windows.validation_days": validation_days,
            "training.windows.holdout_days": holdout_days}  # fmt: skip
