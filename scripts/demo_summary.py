"""The demo's closing summary, read from durable state only: the MLflow registry and the Delta tables
(through delta-rs: no Spark needed to look)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def table(config, schema: str, name: str) -> pd.DataFrame:
    from deltalake import DeltaTable

    path = (
        Path(config.storage.lakehouse_root) / config.catalog / getattr(config.schemas, schema, schema) / name
    )
    return DeltaTable(str(path)).to_pandas() if (path / "_delta_log").is_dir() else pd.DataFrame()


def model_versions(config) -> list[dict[str, Any]]:
    from jobs.runtime.mlflow_setup import mlflow_client

    client = mlflow_client(config)
    name = config.registered_model_name
    aliases: dict[str, list[str]] = {}
    for alias, number in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for version in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
        run = client.get_run(version.run_id)
        tags = version.tags or {}
        rows.append(
            {
                "version": version.version,
                "reason": run.data.tags.get("trigger.reason", "?"),
                "trained_on": f"[{tags.get('data.window_start', '?')}, {tags.get('data.window_end', '?')})",
                "test_roc_auc": run.data.metrics.get("test_roc_auc"),
                "validation": tags.get("model_validation_status", "?"),
                "aliases": ", ".join(sorted(aliases.get(str(version.version), []))) or "-",
            }
        )
    return rows


def drift_by_month(config) -> pd.DataFrame:
    metrics = table(config, "monitoring", "metrics")
    if metrics.empty:
        return metrics
    rows = []
    for (start, end), window in metrics.groupby(["window_start", "window_end"]):
        value = dict(zip(window.metric, window.value, strict=True))  # feature_drift rows: see drifted
        drifted = window[(window.metric == "feature_drift") & window.violated].sort_values(
            "value", ascending=False
        )
        violations = sorted(
            {m for m, v in zip(window.metric, window.violated, strict=True) if v and m != "feature_drift"}
        )
        rows.append(
            {
                "window": f"[{start}, {end})",
                "model": f"v{window.model_version.iloc[0]}",
                "drift_share": value.get("dataset_drift_share"),
                "prediction_drift": value.get("prediction_drift"),
                "roc_auc": value.get("quality.roc_auc"),
                "top_drifted": ", ".join(drifted.column.head(3)) or "-",
                "violations": ", ".join(violations) or "-",
            }
        )
    return pd.DataFrame(rows)


def print_summary(config, timings: dict[str, float], runs: list, total: float, data_dir: Path) -> None:
    name = config.registered_model_name
    print(f"\n{'=' * 100}\nSummary — {len(runs)} DAG runs in {total / 60:.1f} min\n")
    print(f"Model versions of {name}:")
    print(f"  {'v':>3}  {'reason':<8} {'trained on':<26} {'test ROC AUC':>12}  {'validation':<10} aliases")
    for v in model_versions(config):
        auc = f"{v['test_roc_auc']:.3f}" if v["test_roc_auc"] is not None else "-"
        print(
            f"  {v['version']:>3}  {v['reason']:<8} {v['trained_on']:<26} {auc:>12}  {v['validation']:<10} "
            f"{v['aliases']}"
        )

    audit = table(config, "ml", "model_audit")
    if not audit.empty and "status" in audit:
        audit = audit[audit["status"].fillna("done") == "done"]  # settled moves (not intents)
    if not audit.empty:
        print("\nChampion moves (ml.model_audit):")
        for e in audit.sort_values("event_time").itertuples():
            print(
                f"  {e.action:<9} {('v' + e.from_version) if e.from_version else '(none)'} → v{e.to_version} "
                f" approved by {e.approved_by}"
            )

    drift = drift_by_month(config)
    if not drift.empty:
        print("\nMonitoring by window (monitoring.metrics):")
        print(
            f"  {'window':<26} {'model':<6} {'drift share':>11} {'pred. drift':>11} {'ROC AUC':>8}  "
            f"{'most drifted features':<30} violations"
        )
        for r in drift.itertuples():
            auc = "-" if pd.isna(r.roc_auc) else f"{r.roc_auc:.3f}"
            pred = "-" if pd.isna(r.prediction_drift) else f"{r.prediction_drift:.2f}"
            print(
                f"  {r.window:<26} {r.model:<6} {r.drift_share:>11.2f} {pred:>11} {auc:>8}  "
                f"{r.top_drifted:<30} {r.violations}"
            )

    alerts = table(config, "monitoring", "alerts")
    print("\nAlerts (monitoring.alerts):" + ("" if not alerts.empty else " none"))
    for a in alerts.sort_values("window_end").itertuples() if not alerts.empty else ():  # a calm model: none
        windows = ", ".join(json.loads(a.windows))
        print(f"  {a.window_start}..{a.window_end}: {a.reason} (windows {windows}) → {a.training_run_id}")

    predictions = table(config, "ml", config.inference.predictions_table)
    if not predictions.empty:
        counts = predictions.groupby(["scoring_mode", "model_version"]).size()
        print(
            "\nPredictions (ml.predictions): "
            + ", ".join(f"{n:,} {mode} by v{v}" for (mode, v), n in counts.items())
        )

    print("\nTime per stage:")
    for stage, seconds in timings.items():
        print(f"  {seconds:6.1f} s  {stage}")
    print(f"  {total:6.1f} s  total")

    lakehouse = Path(config.storage.lakehouse_root) / config.catalog
    print(f"""
Where to look:
  Airflow and MLflow UIs   make up   → http://localhost:8080 (the dev_* DAG runs above), http://localhost:5000
  Monitoring reports       {Path(config.storage.reports_root) / config.env / "monitoring"}/*.html
  Data-quality results     {Path(config.storage.reports_root) / config.env / "data_quality"}
  Delta tables             {lakehouse}/<schema>/<table>   (read with deltalake.DeltaTable(path).to_pandas())
  Task logs                {data_dir / "logs" / "demo.log"}""")
