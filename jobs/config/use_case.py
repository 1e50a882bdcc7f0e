"""A use case's schema: its sources, features, model, seed data and demo calendar."""

from __future__ import annotations

import difflib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from jobs.config.base import IDENTIFIER, ColumnType, ConfigKeyError, StrictModel

# What a use case's file may set (its thresholds and streaming events; each environment may override).
USE_CASE_KEYS = {"use_case", "validation", "promotion", "monitoring", "inference"}

USE_CASE_FILE = "use_case.yaml"

# Why a model is trained (kept on its MLflow run): the training DAG's Param and the train job's argument.
TRAINING_REASONS = ("manual", "schedule", "asset", "drift")


class SourceConfig(StrictModel):
    """One raw feed landing as files: ``daily`` (one file per day) or ``reference`` (one snapshot file)."""

    kind: Literal["daily", "reference"]
    format: Literal["csv"] = "csv"
    columns: dict[str, ColumnType]
    keys: list[str]
    event_date: str | None = Field(None, description="SQL expression giving a row's date (daily sources)")
    sampled: bool = Field(False, description="environments with sample_fraction < 1 keep a subset")
    null_values: list[str] = [""]
    expectations: str | None = Field(None, description="GX suite file in the use case's expectations/")
    quality: dict[str, float | int | str] = Field(
        default_factory=dict, description="suite parameters; min_rows_per_day scales to the interval"
    )
    lookback_days: int = Field(
        0,
        ge=0,
        description="days of published history before the window the feature SQL sees (lags, trailing "
        "windows); only the window's rows are written, so a day's features do not depend on how a refresh "
        "was split",
    )

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if self.lookback_days and self.kind != "daily":
            raise ConfigKeyError(("lookback_days",), "only a daily source has days to look back over")
        missing = [k for k in self.keys if k not in self.columns]
        if missing:
            raise ValueError(f"keys {missing} are not among the declared columns")
        if self.kind == "daily" and not self.event_date:
            raise ValueError("a daily source needs an event_date expression")
        return self


class FeaturesConfig(StrictModel):
    sql: str = Field(description="feature SQL file in the use case's sql/")
    table: str
    keys: list[str]
    date_column: str


class ModelFeatures(StrictModel):
    numeric: list[str]
    categorical: list[str] = []
    expected_to_move: list[str] = Field(
        default_factory=list,
        description="features that move by construction (calendar, season): reported, not counted as drift",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelFeatures:
        names = self.numeric + self.categorical
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"features {repeated} are listed more than once")
        if unknown := [n for n in self.expected_to_move if n not in names]:
            typos = {n: kind for kind in ("numeric", "categorical") for n in getattr(self, kind)}
            for name in unknown:  # a feature list's typo shows first here: name that list, not this one
                if close := difflib.get_close_matches(name, list(typos), n=1):
                    raise ConfigKeyError(
                        (typos[close[0]],),
                        f"{close[0]!r} is listed, but expected_to_move names {name!r}: "
                        f"did you mean {name!r}?",
                    )
            raise ConfigKeyError(
                ("expected_to_move",), f"{unknown} are not among the model's features {names}"
            )
        return self

    @property
    def all(self) -> list[str]:
        return self.numeric + self.categorical


class TrainingConfig(StrictModel):
    window_days: int = Field(90, gt=0)
    validation_days: int = Field(14, gt=0)
    test_days: int = Field(14, gt=0)
    threshold: float | Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if self.validation_days + self.test_days >= self.window_days:
            raise ValueError("validation_days + test_days must leave training days inside window_days")
        return self


class ModelConfig(StrictModel):
    name: str
    task: str = Field("binary", description="the kind of model: binary classification is supported today")
    label: str
    features: ModelFeatures
    estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier"
    params: dict[str, Any] = {}
    slices: list[str] = []
    training: TrainingConfig = TrainingConfig()

    @field_validator("task")
    @classmethod
    def _supported_task(cls, value: str) -> str:
        if value != "binary":
            raise ValueError(
                f"task {value!r} is not supported: Runway trains binary classifiers today (task: binary)"
            )
        return value

    @model_validator(mode="after")
    def _label_is_not_a_feature(self) -> ModelConfig:
        if self.label in self.features.all:
            raise ValueError(f"label {self.label!r} is also listed as a feature")
        return self


class FrameLoader(StrictModel):
    """A package's loader called with arguments, e.g. ``data('pkg', 'Name')``-style functions."""

    call: str = Field(description="the attribute path of the loader in the package")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class SeedConfig(StrictModel):
    """Where ``python -m jobs.seed`` takes the use case's data from: a package that ships it, or a
    folder of the use case holding one ``<source>.csv`` per source (a sample)."""

    package: str | None = Field(None, description="a module shipping one pandas DataFrame per source")
    frames: dict[str, str | FrameLoader] = Field(
        default_factory=dict,
        description="source -> attribute path in the package (default: the source's name); callables are "
        "called, with {call: <path>, args: [...], kwargs: {...}} for loaders that take a dataset's name",
    )
    directory: str | None = Field(None, description="a folder of the use case holding <source>.csv files")
    date_columns: list[str] = Field(
        description="what dates a daily source's rows: one date column, or year, month, day columns"
    )
    events_ordered_by: list[str] = Field(default_factory=list, description="the order events arrive in")
    withheld_from_events: list[str] = Field(
        default_factory=list, description="columns unknown when a streaming event is emitted (outcomes)"
    )

    @model_validator(mode="after")
    def _check(self) -> SeedConfig:
        if (self.package is None) == (self.directory is None):
            raise ValueError("give exactly one of package (a module shipping the data) and directory")
        if len(self.date_columns) not in (1, 3):
            raise ValueError("date_columns is one date column or three (year, month, day)")
        return self


class DemoCalendar(StrictModel):
    """The days ``make demo`` tells the lifecycle on (from the use case's ``start_date``)."""

    training_end: date = Field(description="the first model learns the training window before this day")
    stream_day: date = Field(description="the day whose events the streaming stage lands and scores")
    last_month: date = Field(description="the last month scored and monitored (its first day)")

    @model_validator(mode="after")
    def _check(self) -> DemoCalendar:
        if not self.training_end <= self.stream_day <= self.last_month.replace(day=28):
            raise ValueError("demo days must follow each other: training_end <= stream_day <= last_month")
        if self.last_month.day != 1:
            raise ValueError("demo.last_month is a month's first day (YYYY-MM-01)")
        return self


class UseCase(StrictModel):
    name: str
    folder: Path = Field(description="the use case's folder (set by the loader): sql/, expectations/, data")
    start_date: date | None = Field(None, description="the first day of the use case's data")
    seed: SeedConfig | None = None
    demo: DemoCalendar | None = Field(None, description="the days `make demo` runs the lifecycle on")
    sources: dict[str, SourceConfig]
    features: FeaturesConfig
    model: ModelConfig

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.fullmatch(value):
            raise ValueError("a use case name is letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _seed_columns_exist(self) -> UseCase:
        if self.seed is None:
            return self
        for name, source in self.sources.items():
            if source.kind != "daily":
                continue
            if missing := [c for c in self.seed.date_columns if c not in source.columns]:
                raise ValueError(f"seed.date_columns {missing} are not columns of daily source {name!r}")
        for source in self.seed.frames:
            if source not in self.sources:
                raise ValueError(
                    f"seed.frames names {source!r}, which is not a source ({sorted(self.sources)})"
                )
        return self

    def file(self, kind: Literal["sql", "expectations"], name: str) -> Path:
        """A file of the use case's folder: ``<folder>/<kind>/<name>`` (absolute names as they are)."""
        path = Path(name)
        return path if path.is_absolute() else self.folder / kind / name
