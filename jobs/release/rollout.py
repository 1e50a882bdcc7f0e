"""Traffic in force, canary and shadow steps, their judgement, Databricks serving config."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobs.config.env import EnvConfig
from jobs.config.traffic import SHADOW, TRAFFIC_TAG, Route, Traffic, to_databricks
from jobs.core.errors import BadInputError
from jobs.features.gold import with_gold_labels
from jobs.release.audit import record_change, settle_intents
from jobs.release.gates import ArmFigures, CanaryLimits, canary_verdict, shadow_pairs
from jobs.release.promotion import MOVE_ABANDONED, MOVE_DONE, MOVE_PENDING
from jobs.release.registry import ModelRegistry
from jobs.release.route_rules import traffic_refusals
from jobs.runtime.identity import mlflow_identity

if TYPE_CHECKING:
    from jobs.config.targets import ModelTarget
    from jobs.release.registry import ModelRegistry
    from jobs.tablestore import TableStore


log = logging.getLogger("runway.rollout")

TRAFFIC = "traffic"  # the audit trail's action

CANDIDATE = "candidate"  # the canary's route


def traffic_in_force(
    config: EnvConfig, registry: ModelRegistry, target: ModelTarget | None = None
) -> Traffic:
    """The registered model's traffic tag, else the target's configured traffic."""
    tag = registry.model_state()[1].get(TRAFFIC_TAG)
    return Traffic.from_json(tag) if tag else (target or config.model_target).configured_traffic()


def check_targets(registry: ModelRegistry, traffic: Traffic) -> None:
    """Every alias and version the traffic names exists (one sentence naming those that do not)."""
    aliases = registry.model_state()[0]
    missing = []
    for route in (*traffic.routes, *([traffic.shadow] if traffic.shadow else [])):
        if route.alias and route.alias not in aliases:
            missing.append(f"alias {route.alias} (route {route.name})")
        elif route.version:
            try:
                registry.version(route.version)
            except BadInputError:
                missing.append(f"version {route.version} (route {route.name})")
    if missing:
        raise BadInputError(f"{registry.model_name} has no {', '.join(missing)}: the traffic was not changed")


def set_traffic(
    config: EnvConfig,
    store: TableStore,
    traffic: Traffic,
    *,
    requested_by: str | None,
    reason: str,
    run_id: str,
    target: ModelTarget | None = None,
) -> dict[str, Any]:
    """Put ``traffic`` in force for ``target`` (default: the use case's model): intent, tag,
    settled event. A crash in between is settled by the next change (done when the tag arrived,
    else abandoned). The event names ``requested_by`` (the
    person it is done for, e.g. the Airflow user who triggered the deployment; default: the caller)
    and the identity the MLflow server authenticated (``actor``)."""

    target = target or config.model_target
    registry = ModelRegistry.for_config(config, target)
    actor = mlflow_identity(registry.tracking_uri).name
    settle_pending(store, registry)
    check_targets(registry, traffic)
    if refusals := traffic_refusals(target, registry, store, traffic, registry.model_state()[0]):
        raise BadInputError(
            f"{registry.model_name}: {'; '.join(refusals.values())}: the traffic was not changed"
        )
    before = traffic_in_force(config, registry, target)
    if before.to_json() == traffic.to_json():
        log.info("traffic already in force: %s", traffic.describe())
        return {"changed": False, "traffic": traffic.as_dict()}
    event = {
        "event_id": f"{run_id}:traffic:{_digest(before)}->{_digest(traffic)}",
        "event_time": datetime.now(UTC),
        "model_name": registry.model_name,
        "alias": "",
        "action": TRAFFIC,
        "from_version": before.describe(),
        "to_version": traffic.describe(),
        "metrics": json.dumps({"from": before.as_dict(), "to": traffic.as_dict()}),
        "approved_by": requested_by or actor,
        "run_id": run_id,
        "reason": reason,
        "status": MOVE_PENDING,
        "request_id": run_id,
        "actor": actor,
    }
    record_change(store, event, lambda: registry.set_model_tag(TRAFFIC_TAG, traffic.to_json()), MOVE_DONE)
    log.info(
        "%s traffic: %s -> %s (%s as %s: %s)",
        registry.model_name,
        before.describe(),
        traffic.describe(),
        event["approved_by"],
        actor,
        reason,
    )
    return {
        "changed": True,
        "requested_by": event["approved_by"],
        "actor": actor,
        "from": before.as_dict(),
        "traffic": traffic.as_dict(),
        "event_id": event["event_id"],
    }


def settle_pending(store: TableStore, registry: ModelRegistry) -> None:
    """Settle traffic changes a crash left as intents, from the tag in force now."""
    tag = registry.model_state()[1].get(TRAFFIC_TAG)

    def status_of(event: dict[str, Any]) -> str:
        wanted = Traffic.from_dict(json.loads(event["metrics"])["to"]).to_json()
        return MOVE_DONE if tag == wanted else MOVE_ABANDONED

    for event in settle_intents(store, registry.model_name, (TRAFFIC,), MOVE_PENDING, status_of)[1]:
        log.warning("settled an interrupted traffic change to %s: %s", event["to_version"], event["status"])


def canary_traffic(
    config: EnvConfig, candidate: str, percent: float, target: ModelTarget | None = None
) -> Traffic:
    """The configured traffic's primary route (the Champion) keeps ``100 - percent``; the candidate
    version takes ``percent`` as route ``candidate``, sticky by the configured key."""

    base = (target or config.model_target).configured_traffic()
    champion = base.primary
    routes = [
        Route(champion.name, champion.alias, champion.version, 100 - percent),
        Route(CANDIDATE, version=candidate, percent=percent),
    ]
    return Traffic(tuple(r for r in routes if r.percent > 0), None, base.sticky_key)


def arm_figures(rows, route: str, label: str | None = None):
    """One route's figures from inference-table rows (one row per scored row; a request counts
    once); with ``label`` (a column joined from gold), its labelled and correct rows."""

    arm = rows[rows.route == route]
    requests = arm.drop_duplicates("request_id")
    answered = arm[arm.status == 200]
    labelled = answered[answered[label].notna()] if label else answered.iloc[0:0]
    correct = int((labelled.predicted_label == labelled[label].astype(int)).sum()) if len(labelled) else 0
    p99 = float(requests.latency_ms.quantile(0.99)) if len(requests) else 0.0
    return ArmFigures(
        len(requests),
        int((requests.status >= 500).sum()),
        round(p99, 3),
        tuple(answered.prediction.dropna().astype(float).tolist()),
        len(labelled),
        correct,
    )


def judge(
    config: EnvConfig, store: TableStore, since: datetime, candidate: str | None = None, phase: str = "canary"
) -> dict[str, Any]:
    """The step begun at ``since``, from the inference table (jobs.release.gates): in the
    canary phase the candidate's route against the Champion's; in the shadow phase the shadow's
    answers against the ones they shadowed (agreement included). A breach at once when an endpoint
    refused the candidate (it could not load, warm up or accept the Champion's inputs)."""

    if candidate:
        from jobs.config.traffic import REFUSED_AT_TAG, REFUSED_TAG
        from jobs.release.registry import ModelRegistry

        tags = ModelRegistry.for_config(config).version(candidate).tags
        refused, refused_at = tags.get(REFUSED_TAG), tags.get(REFUSED_AT_TAG)
        if refused and (
            not refused_at or _utc(datetime.fromisoformat(refused_at)) >= _utc(since)
        ):  # this step's
            return {
                "state": "breach",
                "reason": f"the endpoint refused v{candidate}: {refused}",
                "figures": {},
                "since": since.isoformat(),
                "phase": phase,
            }
    settings = config.rollout.canary
    off_the_request_path = phase == "shadow"  # a shadow's latency delays no answer
    limits = CanaryLimits(
        settings.min_requests,
        settings.max_error_rate_diff,
        float("inf") if off_the_request_path else settings.max_p99_ratio,
        settings.max_prediction_drift,
        settings.max_accuracy_drop,
        settings.min_labelled,
        settings.min_shadow_agreement,
        float("inf") if off_the_request_path else settings.max_p99_ms,
    )
    arm, primary = (
        SHADOW if phase == "shadow" else CANDIDATE,
        config.model_target.configured_traffic().primary.name,
    )
    lookback = since - timedelta(seconds=settings.timeout_seconds)  # the step before ended within this
    recent = _step_rows(config, store, lookback)
    rows = recent[recent.requested_at >= since]
    if (rows.route == arm).any():  # from the arm's first request: both arms then meet the same endpoint state
        rows = rows[rows.requested_at >= rows.loc[rows.route == arm, "requested_at"].min()]
    rows, concurrent = with_champion_baseline(
        rows, recent[recent.requested_at < rows.requested_at.min()], primary, settings.min_requests
    )
    label = config.use_case.model.label if config.use_case.model.label in rows.columns else None
    agreement = None
    if phase == "shadow" and len(rows):
        pairs = shadow_pairs(rows)
        agreement = (
            float((pairs.predicted_label == pairs.predicted_label_shadow).mean()) if len(pairs) else None
        )
    champion = arm_figures(rows, primary, label)
    verdict = canary_verdict(champion, arm_figures(rows, arm, label), limits, agreement, concurrent)
    log.info("%s since %s: %s — %s", phase, since.isoformat(), verdict.state, verdict.reason)
    return {**verdict.as_dict(), "since": since.isoformat(), "phase": phase}


def with_champion_baseline(rows, before, primary: str, min_requests: int) -> tuple[pd.DataFrame, bool]:
    """The step's rows, plus the Champion's latest requests before it when the step gave the Champion
    fewer than ``min_requests`` (the last step sends it only the requests in flight at the switch):
    the candidate is then compared with the Champion's recent traffic, not with a handful of rows.
    The flag says whether the Champion's arm answered during the step (False: it was filled from
    before it, under another moment's load)."""

    served = rows.loc[rows.route == primary, "request_id"].nunique()
    if served >= min_requests:
        return rows, True
    earlier = before[before.route == primary].sort_values("requested_at")
    latest = earlier.request_id.drop_duplicates().iloc[served - min_requests :]
    if latest.empty:
        return rows, True
    return pd.concat([earlier[earlier.request_id.isin(latest)], rows]), False


def _step_rows(config: EnvConfig, store: TableStore, since: datetime):
    """The inference table's rows since ``since``, with gold's label where the requests logged the
    entity's keys."""

    table = store.name("ml", config.serving.inference_log.table)
    columns = [
        "request_id",
        "row_index",
        "requested_at",
        "route",
        "status",
        "latency_ms",
        "prediction",
        "predicted_label",
    ]
    if not store.exists(table):
        return pd.DataFrame(columns=columns)
    keys = [k for k in config.use_case.features.keys if k in store.schema(table)]
    rows = store.read_pandas(
        table, window=("requested_at", since, date(9999, 1, 1)), columns=[*columns, *keys]
    )

    return with_gold_labels(config, store, rows)


def databricks_config(
    config: EnvConfig, registry: ModelRegistry, store: TableStore, traffic: Traffic
) -> dict[str, Any]:
    """The traffic in force as the body of Databricks' ``PUT /api/2.0/serving-endpoints/{name}/config``
    (aliases resolved to versions), and what it cannot carry. A traffic the route rules refuse (a
    tag written behind Runway's back) is not rendered: Databricks would answer clients with it."""

    aliases = registry.model_state()[0]
    if refusals := traffic_refusals(config.model_target, registry, store, traffic, aliases):
        raise BadInputError(f"{registry.model_name}: {'; '.join(refusals.values())}: nothing to render")
    versions = {r.name: (aliases.get(r.alias) if r.alias else r.version) for r in traffic.routes}
    missing = [r.target for r in traffic.routes if versions[r.name] is None]
    if missing:
        raise BadInputError(f"{registry.model_name} has no {missing}: nothing to render")
    name = registry.model_name.replace(".", "-").replace("_", "-")
    endpoint, notes = to_databricks(
        traffic, registry.model_name, versions, endpoint=name, catalog=config.catalog, schema="ml"
    )
    return {"endpoint_config": endpoint.as_dict(), "not_rendered": notes}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _digest(traffic: Traffic) -> str:
    return hashlib.sha256(traffic.to_json().encode()).hexdigest()[:10]
