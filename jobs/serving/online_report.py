"""The online report: each route's answers and quality from the inference table."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from sklearn.metrics import roc_auc_score

from jobs.config.env import EnvConfig
from jobs.config.traffic import NO_ROUTE, SHADOW
from jobs.core.errors import BadInputError
from jobs.features.gold import with_gold_labels
from jobs.release.gates import shadow_pairs
from jobs.runtime.mlflow_setup import configure_mlflow

if TYPE_CHECKING:
    import pandas as pd

    from jobs.tablestore import TableStore


log = logging.getLogger("runway.online_report")

REPORT_TABLE = "online_comparison"  # in the ml schema

SCHEMA = (
    "report_id string, window_start timestamp, window_end timestamp, route string, model_versions string, "
    "metric string, value double, run_id string, computed_at timestamp"
)


def arm_metrics(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per route (the shadow and unrouted requests aside): traffic, errors, latency, predictions."""
    out = {}
    for route, arm in rows[~rows.route.isin([SHADOW, NO_ROUTE])].groupby("route"):
        requests = arm.drop_duplicates("request_id")
        predictions = arm.loc[arm.status == 200, "prediction"].dropna()
        latency = requests.latency_ms
        out[str(route)] = {
            "requests": float(len(requests)),
            "server_errors": float((requests.status >= 500).sum()),
            "client_errors": float(((requests.status >= 400) & (requests.status < 500)).sum()),
            "latency_p50_ms": float(latency.quantile(0.5)),
            "latency_p95_ms": float(latency.quantile(0.95)),
            "latency_p99_ms": float(latency.quantile(0.99)),
            "prediction_mean": float(predictions.mean()),
            "prediction_p10": float(predictions.quantile(0.1)),
            "prediction_p90": float(predictions.quantile(0.9)),
            "positive_rate": float(arm.loc[arm.status == 200, "predicted_label"].mean()),
        }
    return out


def shadow_agreement(rows: pd.DataFrame) -> dict[str, float] | None:
    """The shadow's answers against the answers they shadowed, row by row (None without a shadow)."""

    if not ((rows.route == SHADOW) & (rows.status == 200)).any():
        return None
    pairs = shadow_pairs(rows)
    if pairs.empty:
        return {"pairs": 0.0}
    return {
        "pairs": float(len(pairs)),
        "label_agreement": float((pairs.predicted_label == pairs.predicted_label_shadow).mean()),
        "mean_abs_difference": float((pairs.prediction - pairs.prediction_shadow).abs().mean()),
    }


def arm_quality(labelled: pd.DataFrame, label: str) -> dict[str, dict[str, float]]:
    """Per route, on answered rows whose label is known: ROC AUC (both classes present) and accuracy."""

    out = {}
    for route, arm in labelled[labelled.route != NO_ROUTE].groupby("route"):
        y = arm[label].astype(int)
        scores = {"labelled_rows": float(len(arm)), "accuracy": float((arm.predicted_label == y).mean())}
        if y.nunique() == 2:
            scores["roc_auc"] = float(roc_auc_score(y, arm.prediction))
        out[str(route)] = scores
    return out


def online_report(
    config: EnvConfig, store: TableStore, since: datetime, until: datetime, *, run_id: str = "manual"
) -> dict[str, Any]:
    """Read the window's requests, compute the figures, write the table, the HTML and the MLflow run."""
    if until <= since:
        raise BadInputError(f"--until {until.isoformat()} must be after --since {since.isoformat()}")
    table = store.name("ml", config.serving.inference_log.table)
    rows = store.read_pandas(table, window=("requested_at", since, until)) if store.exists(table) else None
    if rows is None or rows.empty:
        log.info("no requests in [%s, %s): nothing to compare", since.isoformat(), until.isoformat())
        return {"requests": 0, "arms": {}}
    arms, agreement = arm_metrics(rows), shadow_agreement(rows)
    quality = _quality(config, store, rows)
    versions = {
        str(r): ",".join(sorted(set(g.model_version.dropna().astype(str)))) for r, g in rows.groupby("route")
    }
    report_id = f"{since.isoformat()}_{until.isoformat()}"
    records = [
        {"route": route, "metric": metric, "value": value}
        for route, figures in arms.items()
        for metric, value in figures.items()
    ]
    records += [
        {"route": SHADOW, "metric": f"agreement.{k}", "value": v} for k, v in (agreement or {}).items()
    ]
    records += [
        {"route": route, "metric": f"quality.{k}", "value": v}
        for route, scores in quality.items()
        for k, v in scores.items()
    ]
    now = datetime.now(UTC)
    frame = [
        {
            **r,
            "report_id": report_id,
            "window_start": since,
            "window_end": until,
            "run_id": run_id,
            "model_versions": versions.get(r["route"], ""),
            "computed_at": now,
        }
        for r in records
    ]
    store.overwrite(
        store.name("ml", REPORT_TABLE),
        store.small_frame(frame, SCHEMA),
        predicate=f"report_id = '{report_id}'",
        metadata={"job": "online_report", "run_id": run_id},
    )
    html = _html(config, rows, arms, agreement, quality, since, until)
    mlflow_run_id = _log_run(config, records, html, report_id, run_id)
    log.info(
        "online report [%s, %s): %s",
        since.isoformat(),
        until.isoformat(),
        {r: a["requests"] for r, a in arms.items()},
    )
    return {
        "requests": int(rows.request_id.nunique()),
        "arms": arms,
        "shadow": agreement,
        "quality": quality,
        "report": str(html),
        "mlflow_run_id": mlflow_run_id,
    }


def _quality(config: EnvConfig, store: TableStore, rows: pd.DataFrame) -> dict[str, dict[str, float]]:

    label = config.use_case.model.label
    joined = with_gold_labels(config, store, rows[rows.status == 200])
    if label not in joined.columns:
        return {}
    labelled = joined[joined[label].notna()]
    return arm_quality(labelled, label) if len(labelled) else {}


def _html(config, rows, arms, agreement, quality, since, until) -> Path:
    """The arms' table, and Evidently's drift of the other arms' predictions from the largest's."""

    path = (
        Path(config.storage.reports_root)
        / config.env
        / "online"
        / f"{since:%Y%m%dT%H%M%S}_{until:%Y%m%dT%H%M%S}.html"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>Online comparison [{since.isoformat()}, {until.isoformat()})</h1>",
        pd.DataFrame(arms).to_html(float_format=lambda v: f"{v:,.4g}"),
    ]
    if agreement:
        parts += ["<h2>Shadow</h2>", pd.DataFrame([agreement]).to_html(index=False)]
    if quality:
        parts += ["<h2>Quality (labels joined on the entity's keys)</h2>", pd.DataFrame(quality).to_html()]
    drift = _prediction_drift_html(rows, arms)
    path.write_text(
        "\n".join(parts) + (f"<h2>Prediction drift between the arms</h2>{drift}" if drift else "")
    )
    return path


def _prediction_drift_html(rows, arms) -> str | None:
    if len(arms) < 2:
        return None
    from evidently import DataDefinition, Dataset, Report  # heavy; only for two arms or more
    from evidently.metrics import ValueDrift

    largest = max(arms, key=lambda r: arms[r]["requests"])
    answered = rows[rows.status == 200][["route", "prediction"]].dropna()
    definition = DataDefinition(numerical_columns=["prediction"])
    pages = []
    for route in sorted(set(arms) - {largest}):
        snapshot = Report([ValueDrift(column="prediction")]).run(
            reference_data=Dataset.from_pandas(
                answered[answered.route == largest][["prediction"]], data_definition=definition
            ),
            current_data=Dataset.from_pandas(
                answered[answered.route == route][["prediction"]], data_definition=definition
            ),
        )
        pages.append(f"<h3>{route} against {largest}</h3>{snapshot.get_html_str(as_iframe=True)}")
    return "\n".join(pages)


def _log_run(
    config: EnvConfig, records: list[dict[str, Any]], html: Path, report_id: str, run_id: str
) -> str:

    with mlflow.start_run(
        experiment_id=configure_mlflow(config), run_name=f"online report {report_id}"
    ) as run:
        mlflow.set_tags({"runway.kind": "online_report", "runway.env": config.env, "airflow.run_id": run_id})
        mlflow.log_metrics(
            {
                re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", f"{r['route']}.{r['metric']}"): r["value"]
                for r in records
                if r["value"] == r["value"]
            }
        )
        mlflow.log_artifact(str(html), "online_report")
    return run.info.run_id


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
