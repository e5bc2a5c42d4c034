"""Training data: a time-split, point-in-time-correct frame from the Feast FeatureService.

Windows are whole operations days. The split never crosses time the wrong way: a model is
fitted on the earliest days, early-stopped on the days after them, and judged on a holdout
that follows both. Labels count only if they were known by the end of the holdout (a flight's
arrival is known shortly after it lands), so nothing in the frame comes from the future.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.errors import NotEnoughData
from pipelines.features.request_time import REQUEST_FEATURES
from pipelines.features.store import (
    FEATURE_SERVICE,
    build_training_set,
    feature_store,
    training_entities,
)
from pipelines.settings import OPERATIONS_TZ, Settings

LABEL = "is_late_arrival"
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

    @property
    def known_at(self) -> dt.datetime:
        """Labels are used only if known by the end of the holdout's last day."""
        return dt.datetime.combine(self.holdout_end + dt.timedelta(days=1), dt.time(), OPERATIONS_TZ)

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> TrainingWindow:
        return cls(**{k: dt.date.fromisoformat(v) for k, v in data.items()})


def feature_columns(settings: Settings, feature_service: str = FEATURE_SERVICE) -> list[str]:
    """The model's inputs, in the FeatureService's order, then the request-time features."""
    service = feature_store(settings).get_feature_service(feature_service)
    stored = [field.name for projection in service.feature_view_projections for field in projection.features]
    return stored + list(REQUEST_FEATURES)


def feature_definitions_hash(settings: Settings, feature_service: str = FEATURE_SERVICE) -> str:
    """A hash of what the features mean (views, fields, types, entities, ttl), not of when they were applied.

    Serving compares it with the model's manifest before it serves the model.
    """
    store = feature_store(settings)
    service = store.get_feature_service(feature_service)
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
    definition.append({"request_time": list(REQUEST_FEATURES)})
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


@dataclass
class TrainingData:
    frame: pd.DataFrame  # one row per flight: features, label, split, slice columns, ids
    features: list[str]
    window: TrainingWindow

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name]

    def xy(self, name: str) -> tuple[pd.DataFrame, pd.Series]:
        part = self.split(name)
        return part[self.features].astype("float32"), part[LABEL].astype("int64")

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "dataset.parquet"
        self.frame.to_parquet(path, index=False)
        (folder / "dataset.json").write_text(json.dumps({"features": self.features, "window": self.window.as_dict()}))
        return path

    @classmethod
    def load(cls, folder: Path) -> TrainingData:
        meta = json.loads((folder / "dataset.json").read_text())
        frame = pd.read_parquet(folder / "dataset.parquet")
        return cls(frame, meta["features"], TrainingWindow.from_dict(meta["window"]))


def build_dataset(
    settings: Settings, window: TrainingWindow, feature_service: str, min_rows_per_split: int = 100
) -> TrainingData:
    """The labelled flights of the window with `feature_service`'s point-in-time features, each tagged with
    its split."""
    entities = training_entities(settings, window.train_start, window.holdout_end, window.known_at)
    if entities.empty:
        raise NotEnoughData(
            f"no labelled flights between {window.train_start} and {window.holdout_end}; ingest them first"
        )
    frame = build_training_set(settings, entities.drop(columns=[LABEL, "label_available_at"]), feature_service)
    labels = entities[["flight_id", LABEL, "label_available_at"]]
    frame = frame.merge(labels, on="flight_id", how="left", validate="one_to_one")
    frame["split"] = [window.split_of(d.date()) for d in frame["scheduled_departure_local"]]
    features = feature_columns(settings, feature_service)
    for name in SPLITS:
        part = frame[frame["split"] == name]
        if len(part) < min_rows_per_split or part[LABEL].nunique() < 2:
            raise NotEnoughData(
                f"the {name} split ({window.as_dict()}) has {len(part)} labelled flights and classes "
                f"{sorted(part[LABEL].unique().tolist())}; it needs {min_rows_per_split} with both classes. "
                "Ingest more days or shorten the window (the spec's training.windows)."
            )
    keep = ["flight_id", "carrier", "origin", "route", "tailnum_hash", "scheduled_departure_local", "split", LABEL,
            "label_available_at"]  # fmt: skip
    return TrainingData(frame[keep + [f for f in features if f not in keep]].reset_index(drop=True), features, window)
