"""Baseline for `make bench`: the same estimator fitted directly on the same pandas frame, in one
process, with no Airflow, Spark or MLflow. Prints the seconds as JSON."""

from __future__ import annotations

import json
import sys
import time
from datetime import date

from deltalake import DeltaTable

from jobs.config.loader import load_config
from jobs.modeling.estimator import build_pipeline, model_inputs, time_split


def main(gold_path: str, end: str) -> None:
    started = time.perf_counter()
    config = load_config("dev")
    model, training = config.use_case.model, config.use_case.model.training
    frame = DeltaTable(gold_path).to_pandas()
    frame = frame[frame[model.label].notna()]
    loaded = time.perf_counter()
    parts = time_split(
        frame,
        config.use_case.features.date_column,
        date.fromisoformat(end),
        training.validation_days,
        training.test_days,
    )
    train = parts["train"]
    pipeline = build_pipeline(model).fit(model_inputs(model, train), train[model.label].astype(int))
    fitted = time.perf_counter()
    print(
        json.dumps(
            {
                "load_seconds": round(loaded - started, 2),
                "fit_seconds": round(fitted - loaded, 2),
                "seconds": round(fitted - started, 2),
                "rows": len(train),
                "iterations": int(pipeline.named_steps["model"].n_iter_),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
