"""Baseline for `make bench`: the demo's data work and training as one plain script — one process,
no Airflow, no MLflow. The same seed, the same feature refresh functions (Spark, Delta, DQ gates),
the same estimator fitted for each training the demo ran, each month and the stream day scored and
written to Delta, and the same Evidently drift report per month. Prints seconds per stage as JSON.

    python scripts/bench_demo_plain.py <data dir> <last month YYYY-MM> <training end> [<training end> ...]
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runway_env  # noqa: E402
from demo import add_month, month_starts  # noqa: E402


def main(data_dir: str, last_month: str, training_ends: list[str]) -> dict:
    runway_env.configure(Path(data_dir), override=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 1)
        return now

    import pandas as pd
    from deltalake import DeltaTable, write_deltalake
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from jobs.config.loader import load_config
    from jobs.core.window import Window
    from jobs.features.refresh import JobContext, refresh
    from jobs.features.seed import seed
    from jobs.modeling.estimator import (
        build_pipeline,
        classification_metrics,
        feature_columns,
        model_inputs,
        time_split,
    )

    config = load_config("dev")
    # the demo's days, from the use case (make bench pins flight_delay)
    first_day, first_end = config.use_case.start_date, config.use_case.demo.training_end
    stream_day = config.use_case.demo.stream_day
    model_cfg, features, monitoring = config.use_case.model, config.use_case.features, config.monitoring
    last = date.fromisoformat(f"{last_month}-01")
    end = add_month(last)
    t = lap("imports", started)
    seed(config, Window(first_day, end))
    t = lap("seed", t)
    ctx = JobContext.open(config, "plain-baseline")
    refresh(ctx, Window(first_day, first_end))
    refresh(ctx, Window(first_end, end))
    t = lap("feature refresh", t)

    gold_path = Path(config.storage.lakehouse_root) / config.catalog / "gold" / features.table
    gold = DeltaTable(str(gold_path)).to_pandas()
    gold["day"] = pd.to_datetime(gold[features.date_column]).dt.date
    labelled = gold[gold[model_cfg.label].notna()].sort_values([features.date_column, *features.keys])
    models = {}
    for training_end in map(date.fromisoformat, training_ends):
        start = training_end - timedelta(days=model_cfg.training.window_days)
        window = labelled[(labelled.day >= start) & (labelled.day < training_end)]
        parts = time_split(
            window, "day", training_end, model_cfg.training.validation_days, model_cfg.training.test_days
        )
        train = parts["train"]
        models[training_end] = (
            build_pipeline(model_cfg).fit(model_inputs(model_cfg, train), train[model_cfg.label].astype(int)),
            window,
        )
    t = lap("training", t)

    def current(day: date):
        return models[max(e for e in models if e <= day)]

    predictions = Path(data_dir) / "plain" / "predictions"
    scored = {}
    for month in [*month_starts(first_end, last), stream_day]:
        until = add_month(month) if month.day == 1 else month + timedelta(days=1)
        rows = gold[(gold.day >= month) & (gold.day < until)]
        model, _ = current(month)
        frame = rows[[*features.keys, "day"]].assign(
            prediction=model.predict_proba(model_inputs(model_cfg, rows))[:, 1]
        )
        write_deltalake(
            str(predictions),
            frame,
            mode="overwrite",
            predicate=f"day >= '{month}' AND day < '{until}'" if predictions.exists() else None,
        )
        scored[month] = (rows, frame)
    t = lap("scoring", t)

    columns = feature_columns(model_cfg)
    definition = DataDefinition(
        numerical_columns=model_cfg.features.numeric, categorical_columns=model_cfg.features.categorical
    )
    for month in month_starts(first_end, last):
        rows, frame = scored[month]
        model, reference = current(month)
        reference = reference.sample(n=min(len(reference), monitoring.reference_max_rows), random_state=0)
        current_rows = rows.sample(n=min(len(rows), monitoring.current_max_rows), random_state=0)
        Report(
            [
                DataDriftPreset(
                    columns=columns,
                    drift_share=monitoring.drift_share,
                    num_method=monitoring.numeric_method,
                    num_threshold=monitoring.numeric_threshold,
                    cat_method=monitoring.categorical_method,
                    cat_threshold=monitoring.categorical_threshold,
                )
            ]
        ).run(
            reference_data=Dataset.from_pandas(
                model_inputs(model_cfg, reference), data_definition=definition
            ),
            current_data=Dataset.from_pandas(
                model_inputs(model_cfg, current_rows), data_definition=definition
            ),
        )
        known = rows[model_cfg.label].notna().to_numpy()
        classification_metrics(
            rows[model_cfg.label][known].astype(int).to_numpy(), frame.prediction.to_numpy()[known], 0.5
        )
    lap("monitoring", t)
    ctx.spark.stop()
    return {"seconds": round(time.perf_counter() - started, 1), "stages": timings, "trainings": len(models)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
