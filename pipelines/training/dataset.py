"""Training data: a time-split, point-in-time-correct frame from the Feast FeatureService.

Windows are whole operations days. The split never crosses time the wrong way: a model is
fitted on the earliest days, early-stopped on the days after them, and judged on a holdout
that follows both. Labels count only if they were known by the end of the holdout (a flight's
arrival is known shortly after it lands), so nothing in the frame comes from the future. What a
row is, its label and its features come from the use case's spec (`features`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.errors import NotEnoughData
from pipelines.features.store import build_training_set, feature_store, training_entities
from pipelines.settings import Settings
from pipelines.usecases.spec import UseCase

SPLITS = ("train", "validation", "holdout")


@dataclass(frozen=True)
class TrainingWindow:
    """Consecutive day ranges: fit on `train`, early-stop on `validation`, judge on `holdout`."""

    train_start: dt.date
    train_end: dt.date
    validation_end: dt.date
    holdout_end: dt.date

    @classmethod
    def ending(cls, last_day: dt.date, train_days: int, validation_days: int, holdout_days: int) -> TrainingWindow:
        holdout_end = last_day
        validation_end = holdout_end - dt.timedelta(days=holdout_days)
        train_end = validation_end - dt.timedelta(days=validation_days)
        return cls(train_end - dt.timedelta(days=train_days - 1), train_end, validation_end, holdout_end)

    def split_of(self, day: dt.date) -> str:
        if day <= self.train_end:
            return "train"
        return "validation" if day <= self.validation_end else "holdout"

    @property
    def days(self) -> list[dt.date]:
        count = (self.holdout_end - self.train_start).days + 1
        return [self.train_start + dt.timedelta(days=i) for i in range(count)]

    def known_at(self, tz: dt.tzinfo) -> dt.datetime:
        """Labels are used only if known by the end of the holdout's last day (local, in `tz`)."""
        return dt.datetime.combine(self.holdout_end + dt.timedelta(days=1), dt.time(), tz)

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> TrainingWindow:
        return cls(**{k: dt.date.fromisoformat(v) for k, v in data.items()})


def feature_columns(settings: Settings, usecase: UseCase) -> list[str]:
    """The model's inputs, in the FeatureService's order, then the request-time features."""
    service = feature_store(settings).get_feature_service(usecase.features.feature_service)
    stored = [field.name for projection in service.feature_view_projections for field in projection.features]
    return stored + usecase.features.request_features


def feature_definitions_hash(settings: Settings, usecase: UseCase) -> str:
    """A hash of what the features mean (views, fields, types, entities, ttl, request-time features), not
    of when they were applied.

    Serving compares it with the model's manifest before it serves the model.
    """
    store = feature_store(settings)
    service = store.get_feature_service(usecase.features.feature_service)
    definition = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        definition.append(
            {
                "view": view.name,
                "entities": sorted(view.entities),
                "ttl_s": view.ttl.total_seconds() if view.ttl else None,
                "fields": [[f.name, str(f.dtype)] for f in projection.features],
            }
        )
    definition.append({"request_time": usecase.features.request_features})
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


@dataclass
class TrainingData:
    frame: pd.DataFrame  # one row per prediction: ids, join keys, request time, split, label, features
    features: list[str]
    window: TrainingWindow
    label: str
    entity_id: str
    task: str  # the spec's task: binary_classification or regression
    increasing: list[str] = field(default_factory=list)  # features the model must not find less risky as they rise

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name]

    def xy(self, name: str) -> tuple[pd.DataFrame, pd.Series]:
        part = self.split(name)
        dtype = "int64" if self.task == "binary_classification" else "float32"
        return part[self.features].astype("float32"), part[self.label].astype(dtype)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "dataset.parquet"
        self.frame.to_parquet(path, index=False)
        meta = {"features": self.features, "window": self.window.as_dict(), "label": self.label,
                "entity_id": self.entity_id, "task": self.task, "increasing": self.increasing}  # fmt: skip
        (folder / "dataset.json").write_text(json.dumps(meta))
        return path

    @classmethod
    def load(cls, folder: Path) -> TrainingData:
        meta = json.loads((folder / "dataset.json").read_text())
        frame = pd.read_parquet(folder / "dataset.parquet")
        window = TrainingWindow.from_dict(meta["window"])
        return cls(frame, meta["features"], window, meta["label"], meta["entity_id"], meta["task"],
                   meta.get("increasing", []))  # fmt: skip


def build_dataset(
    settings: Settings, usecase: UseCase, window: TrainingWindow, min_rows_per_split: int = 100
) -> TrainingData:
    """The use case's labelled rows of the window with its FeatureService's point-in-time features, each
    tagged with its split."""
    f = usecase.features
    label, available_at = f.label.column, f.label.available_at
    entities = training_entities(settings, usecase, window.train_start, window.holdout_end, window.known_at(usecase.tz))
    if entities.empty:
        raise NotEnoughData(
            f"no labelled {f.entity_mart} rows between {window.train_start} and {window.holdout_end}; ingest them first"
        )
    frame = build_training_set(settings, usecase, entities.drop(columns=[label, available_at]))
    labels = entities[[f.entity_id, label, available_at]]
    frame = frame.merge(labels, on=f.entity_id, how="left", validate="one_to_one")
    frame["split"] = [window.split_of(d.date()) for d in frame[f.request_time.column]]
    features = feature_columns(settings, usecase)
    binary = usecase.task == "binary_classification"
    for name in SPLITS:
        part = frame[frame["split"] == name]
        if len(part) < min_rows_per_split or (binary and part[label].nunique() < 2):
            raise NotEnoughData(
                f"the {name} split ({window.as_dict()}) has {len(part)} labelled {f.entity_mart} rows"
                + (f" and classes {sorted(part[label].unique().tolist())}" if binary else "")
                + f"; it needs {min_rows_per_split}{' with both classes' if binary else ''}. "
                "Ingest more days or shorten the window (the spec's training.windows)."
            )
    keep = [f.entity_id, *f.join_keys, f.request_time.column, "split", label, available_at]
    frame = frame[keep + [c for c in features if c not in keep]].reset_index(drop=True)
    return TrainingData(frame, features, window, label, f.entity_id, usecase.task, _increasing(usecase, features))


def _increasing(usecase: UseCase, features: list[str]) -> list[str]:
    """The gate's `behaviour.increasing` features among the model's: trainers that can hold a model to them
    do (XGBoost's monotone constraints), rather than leave it to the gate to reject."""
    return [f for f in usecase.gate.behaviour.increasing if f in features]
