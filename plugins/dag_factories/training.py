"""The training DAG of one environment: train → validate → compare → (approve) → promote; and the
rollback DAG that moves Champion back."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, task

from dag_factories.common import TRIGGERED_BY, dag_kwargs, table_asset
from dag_factories.compute import job_task
from jobs.config.env import EnvConfig
from jobs.config.loader import load_config
from jobs.config.use_case import TRAINING_REASONS
from jobs.release.registry import CHALLENGER, FAILED, PASSED

DOC = """
### Training — `{env}`

Trains `{model}` on the `{window_days}` days of `{gold}` before the run's date, then:

1. **train**: MLflow run with metrics, plots, lineage; a new version tagged `model_validation_status=PENDING`.
2. **validate**: format, held-out performance vs floors and the Champion (or the business
   baseline), slices. Mode: `{mode}`. A failure stops here (**validation_failed** lists the checks)
   and the version loses `Challenger`.
3. **compare**: Challenger vs Champion on the same held-out window (`{metric}`, min improvement
   `{min_improvement}`), into `{catalog}.ml.model_comparisons`.
4. {approval}**promote**: `Champion` moves to the compared version — only if it passed validation,
   won against the Champion of the moment{approved} — audited in `{catalog}.ml.model_audit`.

Schedule: `{schedule}`{asset}. Manual runs take *training_end*, *window_days*, *reason* and
*hyperparameters* (JSON overriding the estimator's config). Roll back with `{env}_rollback`.
"""


def _training_params(config: EnvConfig) -> dict[str, Param]:
    return {
        "training_end": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Training end (exclusive)",
            description="Day after the last training day. Empty: the run's date.",
        ),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Window days",
            description="Days of features before the end. Empty: "
            f"{config.use_case.model.training.window_days}.",
        ),
        "reason": Param(
            "manual",
            enum=list(TRAINING_REASONS),
            title="Reason",
            description="Why this model is trained (kept in MLflow).",
        ),
        "hyperparameters": Param(
            {},
            type="object",
            title="Hyperparameters",
            description='Estimator parameters overriding the config, e.g. {"max_iter": 50}.',
        ),
    }


@task(multiple_outputs=True)
def resolve_training(
    params: dict | None = None,
    dag_run=None,
    logical_date=None,
    triggering_asset_events=None,
    window_days: int = 0,
) -> dict[str, str]:
    """The training window and reason: Params first, then the triggering Asset event or drift conf,
    then the run's date."""
    import json
    from datetime import date, timedelta

    params = params or {}
    conf = (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
    reason = conf.get("reason") or params.get("reason") or "manual"
    end = params.get("training_end") or conf.get("training_end")
    if not end and triggering_asset_events:
        ends = [
            e.extra.get("end")
            for events in triggering_asset_events.values()
            for e in events
            if e.extra.get("end")
        ]
        end, reason = (max(ends), "asset") if ends else (None, reason)
    if not end:
        run_type = str(getattr(dag_run, "run_type", "")).lower()
        reason = "schedule" if "scheduled" in run_type and reason == "manual" else reason
        moment = logical_date or getattr(dag_run, "run_after", None)
        if moment is None:
            raise ValueError("no training_end: give it as a Param")
        end = moment.date().isoformat()
    days = int(params.get("window_days") or window_days)
    end_day = date.fromisoformat(str(end)[:10])
    return {
        "start": (end_day - timedelta(days=days)).isoformat(),
        "end": end_day.isoformat(),
        "reason": reason,
        "hyperparameters": json.dumps(params.get("hyperparameters") or {}),
    }


@task.branch
def route_validation(status: dict) -> str:
    """Branch on the status the registry holds for the version (from the validation_status sensor)."""
    from jobs.release.registry import PASSED

    return "compare" if status.get("value") == PASSED else "validation_failed"


@task
def validation_failed(result: dict) -> None:
    """Fail with the failing checks (the notification callback fires on this failure)."""
    from airflow.sdk.exceptions import AirflowFailException

    checks = "\n".join(
        f"  - {name}: {detail}" for name, detail in (result.get("failed_checks") or {}).items()
    )
    raise AirflowFailException(
        f"{result.get('model_name')} v{result.get('version')} failed validation:\n{checks}"
    )


@task.branch
def route_comparison(result: dict, approval: bool) -> str:
    if result.get("decision") != "promote":
        return "champion_kept"
    return "approve_promotion" if approval else "promote"


CANDIDATE = "{{ ti.xcom_pull(task_ids='compare')['challenger_version'] }}"
APPROVER = "{{ ti.xcom_pull(task_ids='approve_promotion', key='responded_by') }}"
APPROVED_AT = "{{ ti.xcom_pull(task_ids='approve_promotion', key='responded_at') }}"


def build_training_dag(env: str) -> DAG:
    config = load_config(env)
    gold_asset = table_asset(config, "gold", config.use_case.features.table)
    schedule = config.schedules.training
    if config.schedules.training_on_new_features:
        from airflow.timetables.assets import AssetOrTimeSchedule
        from airflow.timetables.trigger import CronTriggerTimetable

        schedule = (
            AssetOrTimeSchedule(timetable=CronTriggerTimetable(schedule, timezone="UTC"), assets=[gold_asset])
            if schedule
            else [gold_asset]
        )
    human = config.promotion.approval == "human"
    kwargs = dag_kwargs(config, "training", schedule, "", ["ml", "training"])
    kwargs["doc_md"] = DOC.format(
        env=env,
        model=config.registered_model_name,
        window_days=config.use_case.model.training.window_days,
        gold=gold_asset.name,
        mode=config.validation.mode,
        metric=config.promotion.metric,
        min_improvement=config.promotion.min_improvement,
        catalog=config.catalog,
        approval=(
            "**approve_promotion** (a person approves in the "
            f"UI{' — ' + ', '.join(config.promotion.approvers) if config.promotion.approvers else ''}; "
            f"unanswered after {config.promotion.approval_timeout_hours:g} h it is rejected), the approval "
            "record, then "
        )
        if human
        else "",
        approved=" and was approved by a person" if human else "",
        schedule=config.schedules.training or "manual only",
        asset=f", and when `{gold_asset.name}` updates" if config.schedules.training_on_new_features else "",
    )
    with DAG(**kwargs, max_active_runs=1, params=_training_params(config)) as dag:
        plan = resolve_training(window_days=config.use_case.model.training.window_days)
        run = ["--run-id", "{{ run_id }}"]
        train = job_task(
            config,
            task_id="train",
            job="train",
            arguments=[
                "--start",
                plan["start"],
                "--end",
                plan["end"],
                "--reason",
                plan["reason"],
                "--params",
                plan["hyperparameters"],
                "--dag-id",
                "{{ dag.dag_id }}",
                *run,
            ],
        )
        validate = job_task(
            config,
            task_id="validate",
            job="validate_model",
            arguments=["--version", "{{ ti.xcom_pull(task_ids='train')['version'] }}", "--record-only", *run],
        )
        compare = job_task(config, task_id="compare", job="promote", arguments=["compare", *run])
        promote = job_task(
            config,
            task_id="promote",
            job="promote",
            arguments=["promote", "--version", CANDIDATE, *run],
            trigger_rule="none_failed_min_one_success",
        )
        kept = EmptyOperator(task_id="champion_kept", doc_md="The Challenger did not beat the Champion.")
        from sensors.mlflow_registry import ModelVersionTagSensor

        status = ModelVersionTagSensor(
            task_id="validation_status",
            model_name=config.registered_model_name,
            runway_env=env,
            version="{{ ti.xcom_pull(task_ids='train')['version'] }}",
            target_values=[PASSED, FAILED],
            failure_values=[],
            poke_interval=10,
            timeout=6 * 3600,
            mode="reschedule",
            doc_md="Waits for the version's model_validation_status in the registry (set by validate, "
            "or by a person in the MLflow UI), then the gate branches on it.",
        )
        train >> validate >> status
        route_validation(status.output) >> [compare, validation_failed(validate.output)]
        routes = route_comparison(compare.output, human)
        compare >> routes
        if human:
            from operators.approval import PromotionApprovalOperator

            approve = PromotionApprovalOperator(
                task_id="approve_promotion",
                approve_task_id="record_approval",
                reject_task_id="record_rejection",
                approvers=config.promotion.approvers,
                timeout_hours=config.promotion.approval_timeout_hours,
                subject=f"Promote a new {config.registered_model_name} Champion?",
                body="{% set c = ti.xcom_pull(task_ids='compare') %}Challenger v{{ c['challenger_version'] "
                "}} "
                "({{ c['metric'] }} {{ '%.4f' % c['challenger_value'] }}) vs Champion v{{ "
                "c['champion_version'] }} "
                "on {{ c['window'] }}. Approve to move Champion.",
            )
            from jobs.release.promotion import APPROVED, REJECTED
            from operators.mlflow_registry import DeleteModelAliasOperator, RecordApprovalOperator

            record = {
                "model_name": config.registered_model_name,
                "runway_env": env,
                "version": CANDIDATE,
                "person": APPROVER,
                "answered_at": APPROVED_AT,
            }
            approved = RecordApprovalOperator(
                task_id="record_approval",
                **record,
                decision=APPROVED,
                doc_md="The approval record on the version (who answered, as Airflow authenticated them): "
                "promote checks it (and the approvers) before Champion moves.",
            )
            rejected = RecordApprovalOperator(
                task_id="record_rejection",
                **record,
                decision=REJECTED,
                doc_md="The approver said no (or did not answer in time).",
            )
            registry = {"model_name": config.registered_model_name, "runway_env": env}
            cleared = DeleteModelAliasOperator(
                task_id="clear_challenger",
                **registry,
                alias=CHALLENGER,
                only_version=CANDIDATE,
                doc_md="A rejected version is no Challenger.",
            )
            routes >> [approve, kept]
            approve >> [approved, rejected]
            approved >> promote
            rejected >> cleared
        else:
            routes >> [promote, kept]
        plan >> train
    return dag


def build_rollback_dag(env: str) -> DAG:
    config = load_config(env)
    kwargs = dag_kwargs(config, "rollback", None, "", ["ml", "rollback"])
    kwargs["doc_md"] = (
        f"### Rollback — `{env}`\n\nMoves `Champion` of `{config.registered_model_name}` one step back "
        f"through the Champion history in `{config.catalog}.ml.model_audit` (v7 → v6 → v1; the move is "
        "audited too, with the user who triggered the run as Airflow authenticated them). A retry of the "
        "same run moves once; a new run walks further back. With "
        "`model: assistant`, the assistant's chain instead, and its prompt's Champion alias follows."
    )
    params = {
        "reason": Param(type="string", minLength=1, title="Reason"),
        "model": Param(
            "use_case",
            enum=["use_case", "assistant"],
            title="Model",
            description="The use case's model, or the assistant's chain (its prompt's Champion follows).",
        ),
    }
    with DAG(**kwargs, max_active_runs=1, params=params) as dag:
        job_task(
            config,
            task_id="rollback",
            job="promote",
            arguments=[
                "rollback",
                "--model",
                "{{ params.model }}",
                "--requested-by",
                TRIGGERED_BY,
                "--reason",
                "{{ params.reason }}",
                "--run-id",
                "{{ run_id }}",
            ],
        )
    return dag
