"""A use case's folder: a new one from the template, and the checks of an existing one."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.config.base import IDENTIFIER, ConfigError
from jobs.config.loader import load_config
from jobs.config.use_case import USE_CASE_FILE
from jobs.features.use_case_check import check_use_case
from jobs.runtime.spark_session import get_spark

log = logging.getLogger("runway.use_case")

SITES = ("north", "south", "east")

MODELS = ("A100", "B200", "C300")


def sample_frames(start: date, days: int, rows_per_day: int, seed: int = 0) -> dict[str, Any]:
    """A year-like sample of three sources as pandas frames: ``readings`` (daily: one row per sensor
    reading, with the ``failed`` outcome), ``site_weather`` (daily: one row per site and day) and
    ``devices`` (reference). Failures depend on load, vibration, heat, age and model, so a model has
    something to learn; temperatures follow the seasons, so ``month`` moves by construction."""

    rng = np.random.default_rng(seed)
    device_ids = [f"D{i:03d}" for i in range(24)]
    devices = pd.DataFrame(
        {
            "device_id": device_ids,
            "model": rng.choice(MODELS, len(device_ids)),
            "installed_year": rng.integers(start.year - 9, start.year + 1, len(device_ids)),
        }
    )
    site_of = dict(zip(device_ids, rng.choice(SITES, len(device_ids)), strict=True))
    age_of = {r.device_id: start.year - int(r.installed_year) for r in devices.itertuples()}
    model_risk = {
        r.device_id: {"A100": 0.0, "B200": 0.4, "C300": -0.3}[r.model] for r in devices.itertuples()
    }
    day_list = [start + timedelta(days=i) for i in range(days)]
    season = {d: 12 * np.sin(2 * np.pi * (d.timetuple().tm_yday - 110) / 365.25) for d in day_list}
    weather = pd.DataFrame(
        [
            {
                "site": site,
                "reading_date": d,
                "outdoor_temp": round(12 + season[d] + rng.normal(0, 3), 1),
                "humidity": round(float(np.clip(rng.normal(65, 12), 5, 100)), 1),
            }
            for d in day_list
            for site in SITES
        ]
    )
    outdoor = {(r.site, r.reading_date): r.outdoor_temp for r in weather.itertuples()}
    rows = []
    for d in day_list:
        count = int(rng.integers(int(rows_per_day * 0.8), int(rows_per_day * 1.2) + 1))
        for n in range(count):
            device = rng.choice(device_ids)
            hour = int(rng.integers(0, 24))
            load = float(np.clip(rng.normal(55, 18), 0, 100))
            temperature = 40 + 0.3 * outdoor[(site_of[device], d)] + 0.25 * load + rng.normal(0, 4)
            vibration = float(abs(rng.normal(0.8 + 0.01 * load, 0.35)))
            logit = (
                -3.0
                + 0.035 * (load - 55)
                + 1.6 * (vibration - 1.3)
                + 0.06 * (temperature - 58)
                + 0.12 * age_of[device]
                + model_risk[device]
            )
            rows.append(
                {
                    "reading_id": f"{d:%Y%m%d}-{n:04d}",
                    "device_id": device,
                    "site": site_of[device],
                    "reading_date": d,
                    "hour": hour,
                    "read_at": f"{d.isoformat()}T{hour:02d}:{int(rng.integers(0, 60)):02d}:00Z",
                    "temperature": round(temperature, 2),
                    "vibration": None if rng.random() < 0.01 else round(vibration, 3),  # a flaky sensor
                    "load_pct": round(load, 1),
                    "failed": int(rng.random() < 1 / (1 + np.exp(-logit))),
                }
            )
    return {"readings": pd.DataFrame(rows), "site_weather": weather, "devices": devices}


def _month(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _template(name: str, start: date, rows_per_day: int) -> str:
    training_end = _month(start, 2)
    return f"""# Use case `{name}`: everything specific to it lives in this folder (this file, sql/,
# expectations/, sample/). Written by `make use-case NAME={name}`: a working example on generated
# sensor readings. Replace the sample, the sources, the SQL and the suites with your own, then run
# `python -m jobs.use_case check` (it checks every column named here against the sources and the
# SQL's output, and every expectation against Great Expectations).
#
# Besides `use_case`, this file may set the use case's own `validation`, `promotion`, `monitoring`
# and `inference` settings; each <env>.yaml may override them. MLflow names are derived from the
# names here: experiment /runway/<env>/{name}, registered model <env>.ml.<model.name>.
use_case:
  name: {name}
  start_date: {start.isoformat()}          # the first day of data (the DAGs' start_date)

  # Where `python -m jobs.seed` takes data from: `directory` (one <source>.csv per source in this
  # folder) or `package` (a Python package shipping one pandas DataFrame per source; `frames` maps
  # a source to another attribute). Daily files are cut by date_columns (a date, or year/month/day).
  seed:
    directory: sample
    date_columns: [reading_date]
    # Streaming events: the streaming source's rows without what is only known later.
    withheld_from_events: [failed]
    events_ordered_by: [read_at, reading_id]

  # `make demo USE_CASE={name}`: two months train the first model, then months are scored and
  # monitored one by one (needs sample data up to last_month's end).
  demo:
    training_end: {training_end.isoformat()}
    stream_day: {(training_end + timedelta(days=14)).isoformat()}
    last_month: {_month(start, 6).isoformat()}

  # Raw feeds land as CSV files: <landing_root>/<source>/<YYYY-MM-DD>.csv (daily) or
  # <landing_root>/<source>/<source>.csv (reference). Columns are typed strictly: a value that does
  # not parse whole goes to the quarantine with the reason.
  sources:
    readings:
      kind: daily
      columns:
        reading_id: string
        device_id: string
        site: string
        reading_date: date
        hour: int
        read_at: timestamp
        temperature: double
        vibration: double
        load_pct: double
        failed: int                 # the outcome: did the device fail within a day of the reading
      keys: [reading_id]
      event_date: reading_date      # a SQL expression over the columns giving the row's day
      sampled: true                 # environments with sample_fraction < 1 keep a subset
      null_values: ["", "NA"]
      expectations: silver_readings.json
      quality:                      # the suite's $PARAMETERs (per-day bounds scale to the interval)
        min_rows_per_day: {int(rows_per_day * 0.5)}
        max_rows_per_day: {int(rows_per_day * 1.5)}
        min_fraction_with_vibration: 0.95

    site_weather:
      kind: daily
      columns:
        site: string
        reading_date: date
        outdoor_temp: double
        humidity: double
      keys: [site, reading_date]
      event_date: reading_date
      null_values: ["", "NA"]
      expectations: silver_site_weather.json
      quality:
        min_rows_per_day: 2
        max_rows_per_day: 3

    devices:
      kind: reference
      columns:
        device_id: string
        model: string
        installed_year: int
      keys: [device_id]

  # Gold: the feature SQL's output (one row per reading), merged on keys, dated by date_column.
  features:
    sql: gold_{name}_features.sql
    table: {name}_features
    keys: [reading_id]
    date_column: reading_date

  model:
    name: {name}_classifier
    task: binary                    # binary classification is what Runway trains today
    label: failed                   # 0/1; null rows are scored but not used for training
    features:
      numeric: [temperature, vibration, load_pct, hour, device_age, outdoor_temp, humidity, month]
      categorical: [site, model]
      expected_to_move: [month]     # calendar features: monitored, not counted as drift
    estimator: sklearn.ensemble.HistGradientBoostingClassifier
    params:
      max_iter: 100
      learning_rate: 0.1
      random_state: 0
    slices: [site, model]           # the validation gate judges each slice
    training:
      window_days: 42               # gold days before the training end date
      validation_days: 7
      test_days: 7                  # the most recent days: held out for the validation gate

# This use case's gate thresholds (base.yaml holds the platform defaults).
validation:
  floors: {{roc_auc: 0.6, pr_auc: 0.2}}
  ceilings: {{calibration_error: 0.1}}
  slice_floor: 0.5
  slice_min_rows: 50                # smaller slices are reported as not judged

monitoring:
  quality_min_rows: 50
  quality_floors: {{roc_auc: 0.6}}

# Streaming inference: events carry the readings source's columns as JSON lines.
inference:
  streaming:
    source: readings
    landing_dir: ${{RUNWAY_DATA_DIR}}/stream/{name}_events
    required: [device_id, site, reading_date, hour, temperature, load_pct]
"""


def _sql(name: str) -> str:
    return f"""-- Gold features of use case `{name}`: one row per reading of the interval.
-- Views: `readings` and `site_weather` hold the interval's validated silver rows (event_date in the
-- interval); `devices` holds the reference table. Only what is known at reading time is a feature;
-- the outcome `failed` is the label.
SELECT
  r.reading_id,
  r.reading_date,
  r.device_id,
  r.site,
  d.model,
  r.hour,
  r.temperature,
  r.vibration,
  r.load_pct,
  CASE WHEN d.installed_year IS NULL THEN NULL ELSE year(r.reading_date) - d.installed_year END AS device_age,
  w.outdoor_temp,
  w.humidity,
  month(r.reading_date) AS month,
  r.failed
FROM readings AS r
LEFT JOIN site_weather AS w
  ON w.site = r.site AND w.reading_date = r.reading_date
LEFT JOIN devices AS d
  ON d.device_id = r.device_id
"""


def _suites() -> dict[str, dict[str, Any]]:
    notes = (
        "Row-level expectations (severity quarantine, the default) send failing rows to the "
        "quarantine; table-level ones (severity fail) fail the quality gate. $PARAMETER values come "
        "from the source's `quality` config."
    )
    fail = {"severity": "fail"}
    volume = {
        "type": "expect_table_row_count_to_be_between",
        "meta": fail,
        "kwargs": {"min_value": {"$PARAMETER": "min_rows"}, "max_value": {"$PARAMETER": "max_rows"}},
    }

    def check(kind: str, column: str, **kwargs) -> dict:
        return {"type": f"expect_column_values_to_{kind}", "kwargs": {"column": column, **kwargs}}

    vibration = {
        "type": "expect_column_proportion_of_non_null_values_to_be_between",
        "meta": fail,
        "kwargs": {"column": "vibration", "min_value": {"$PARAMETER": "min_fraction_with_vibration"}},
    }
    readings = [
        volume,
        vibration,
        check("not_be_null", "device_id"),
        check("be_in_set", "site", value_set=list(SITES)),
        check("be_between", "hour", min_value=0, max_value=23),
        check("be_between", "temperature", min_value=-40, max_value=150),
        check("be_between", "load_pct", min_value=0, max_value=100),
        check("be_in_set", "failed", value_set=[0, 1]),
    ]
    weather = [
        volume,
        check("be_in_set", "site", value_set=list(SITES)),
        check("be_between", "humidity", min_value=0, max_value=100),
    ]
    return {
        "silver_readings.json": {
            "name": "silver_readings",
            "meta": {"notes": notes},
            "expectations": readings,
        },
        "silver_site_weather.json": {
            "name": "silver_site_weather",
            "meta": {"notes": notes},
            "expectations": weather,
        },
    }


def new_use_case(
    name: str,
    parent: Path,
    *,
    start: date = date(2024, 1, 1),
    days: int = 365,
    rows_per_day: int = 40,
    force: bool = False,
) -> Path:
    """Write the folder of a new use case ``name`` under ``parent``; returns it."""
    if not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"use case name {name!r}: use letters, digits and underscores")
    folder = Path(parent) / name
    if folder.exists() and not force:
        raise ConfigError(f"{folder} exists already: choose another name (or --force to rewrite it)")
    for sub in ("sql", "expectations", "sample"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / USE_CASE_FILE).write_text(_template(name, start, rows_per_day))
    (folder / "sql" / f"gold_{name}_features.sql").write_text(_sql(name))
    for file_name, suite in _suites().items():
        (folder / "expectations" / file_name).write_text(json.dumps(suite, indent=2) + "\n")
    for source, frame in sample_frames(start, days, rows_per_day).items():
        frame.to_csv(folder / "sample" / f"{source}.csv", index=False)
    log.info("wrote use case %r in %s: select it with RUNWAY_USE_CASE=%s", name, folder, name)
    return folder


def check(env: str | None) -> dict[str, Any]:
    """Load the selected use case's config and run every load-time check on it."""

    config = load_config(env)
    schema = check_use_case(get_spark(config, app_name="runway-use-case-check"), config)
    return {
        "use_case": config.use_case.name,
        "folder": str(config.use_case.folder),
        "gold_columns": schema.fieldNames(),
        "ok": True,
    }
