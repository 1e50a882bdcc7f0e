"""The retraining policy: from monitored windows to "retrain now" (pure functions), and the thin
adapter that reads the monitoring tables for it (``retraining_decision``: the monitoring job and the
drift-policy sensor's hook both ask it).

A window violates when one of the checks the policy watches (``data_drift``, ``prediction_drift``,
``quality``) failed in it. Retrain when at least N of the last M windows violate, the latest
(the one being decided) among them, and no drift retrain ran within the cooldown (data time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs.config.monitoring import RetrainingPolicy

if TYPE_CHECKING:
    from jobs.config.env import EnvConfig
    from jobs.tablestore import TableStore

METRICS_TABLE, ALERTS_TABLE = "metrics", "alerts"  # in the monitoring schema
DEFAULT_SOURCE = "predictions"  # batch and streaming scoring (the other: the endpoint's inference_log)

# Which monitoring metrics feed which policy check.
CHECK_OF_METRIC = {"dataset_drift_share": "data_drift", "prediction_drift": "prediction_drift"}
QUALITY_PREFIX = "quality."


@dataclass(frozen=True)
class WindowStatus:
    start: date
    end: date
    violations: tuple[str, ...]  # the failed checks (metric names)
    values: Mapping[str, float] = field(default_factory=dict)

    @property
    def violated(self) -> bool:
        return bool(self.violations)

    @property
    def label(self) -> str:
        return f"[{self.start}, {self.end})"


@dataclass(frozen=True)
class Decision:
    """``retrain``: the policy holds. ``ready``: the decided window has been monitored at all."""

    retrain: bool
    ready: bool
    reason: str
    windows: list[str] = field(default_factory=list)
    values: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_statuses(
    rows: Iterable[Mapping[str, Any]], policy: RetrainingPolicy, sources: Iterable[str] = (DEFAULT_SOURCE,)
) -> list[WindowStatus]:
    """Group monitoring rows (window_start, window_end, source, metric, column, value, violated)
    of the watched ``sources`` into windows, keeping the violations of the checks the policy
    watches: a window violates when any watched source does. Oldest first. Rows without a source
    (written before sources existed) are the predictions'; other sources' metrics are named
    ``<source>.<metric>``."""
    watched = set(sources)
    windows: dict[tuple[date, date], tuple[list[str], dict[str, float]]] = {}
    for row in rows:
        source = row.get("source") or DEFAULT_SOURCE
        if source not in watched:
            continue
        key = (_as_date(row["window_start"]), _as_date(row["window_end"]))
        violations, values = windows.setdefault(key, ([], {}))
        metric = str(row["metric"])
        check = CHECK_OF_METRIC.get(metric) or ("quality" if metric.startswith(QUALITY_PREFIX) else None)
        if check is None:
            continue
        named = metric if source == DEFAULT_SOURCE else f"{source}.{metric}"
        values[named] = float(row["value"])
        if row["violated"] and check in policy.checks:
            violations.append(named)
    return [
        WindowStatus(start, end, tuple(sorted(v)), vals)
        for (start, end), (v, vals) in sorted(windows.items())
    ]


def decide(
    windows: list[WindowStatus], window_end: date, policy: RetrainingPolicy, last_retrain_end: date | None
) -> Decision:
    """Whether the window ending ``window_end`` triggers a retrain."""
    history = [w for w in windows if w.end <= window_end]
    if not history or history[-1].end != window_end:
        return Decision(False, False, f"the window ending {window_end} has not been monitored yet")
    recent = history[-policy.of_last :]
    latest = recent[-1]
    violating = [w for w in recent if w.violated]
    summary = {w.label: dict(w.values) for w in recent}
    labels = [w.label for w in violating]
    if not latest.violated:
        return Decision(
            False, True, f"the latest window {latest.label} violates no threshold", labels, summary
        )
    if len(violating) < policy.violations:
        return Decision(
            False,
            True,
            f"{len(violating)} of the last {len(recent)} windows violate; the policy needs "
            f"{policy.violations}",
            labels,
            summary,
        )
    if last_retrain_end is not None and window_end < last_retrain_end + timedelta(days=policy.cooldown_days):
        return Decision(
            False,
            True,
            f"cooldown: a drift retrain ran for data up to {last_retrain_end} "
            f"(next allowed from {last_retrain_end + timedelta(days=policy.cooldown_days)})",
            labels,
            summary,
        )
    checks = sorted({v for w in violating for v in w.violations})
    return Decision(
        True,
        True,
        f"{len(violating)} of the last {len(recent)} windows violate ({', '.join(checks)}), the latest "
        "included",
        labels,
        summary,
    )


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value if type(value) is date else value.date()
    return date.fromisoformat(str(value)[:10])


# ---------------------------------------------------------------- adapter (I/O)


def retraining_decision(config: EnvConfig, store: TableStore, window_end: date) -> dict[str, Any]:
    """The retraining policy's decision for the window ending ``window_end``: the monitored
    windows' violations up to it and the last drift retrain (jobs.modeling.retraining)."""
    policy = config.monitoring.policy
    rows = _monitoring_rows(
        store,
        METRICS_TABLE,
        ["window_start", "window_end", "source", "metric", "column", "value", "violated"],
        window_end + timedelta(days=1),
    )
    alerts = [
        a
        for a in _monitoring_rows(store, ALERTS_TABLE, ["window_end", "kind"], window_end)
        if a["kind"] == "drift_retrain"
    ]
    last = max((date.fromisoformat(str(a["window_end"])[:10]) for a in alerts), default=None)
    statuses = window_statuses(rows, policy, config.monitoring.sources)
    return decide(statuses, window_end, policy, last).as_dict()


def _monitoring_rows(store: TableStore, table: str, columns: list[str], before: date) -> list[dict[str, Any]]:
    name = store.name("monitoring", table)
    if not store.exists(name):
        return []
    present = [c for c in columns if c in store.schema(name)]  # a table older than a column reads without it
    return store.read_pandas(name, window=("window_end", date(1900, 1, 1), before), columns=present).to_dict(
        "records"
    )
