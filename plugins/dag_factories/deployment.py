"""The deployment DAG of one environment: load test → canary ladder (each step judged from the
inference table) → promote, or roll the traffic back on a breach."""

from __future__ import annotations

from airflow.sdk import DAG, Param
from airflow.utils.trigger_rule import TriggerRule

from dag_factories.common import TRIGGERED_BY, dag_kwargs, table_asset
from dag_factories.compute import job_task
from jobs.config.loader import load_config
from sensors.rollout import CanaryStepSensor

DOC = """
### Deployment — `{env}`

Trigger with **candidate** (a model version of `{model}`):

0. **check_promotable**: the promotion rules hold before the candidate meets any traffic — it was
   validated, won its comparison with the Champion of the moment and, where the environment
   requires it (prod), a person approved it (the training DAG's approval step or
   `python -m jobs.promote approve`). Otherwise the run stops here.
1. **load_test**: the candidate and the Champion, each alone behind the endpoint on loopback,
   driven by the same bounded Locust load; figures on the candidate's MLflow version
   (`load_test.*`, `load_test_status`). Fails (no retry) when p99 exceeds {ratio}× the Champion's,
   errors exceed {errors:.1%}, or the absolute limits ({p99} ms, {rps} req/s) are broken.
2. **shadow** then **judge_shadow** when `rollout.canary.shadow_seconds` > 0: the candidate scores a
   copy of each answered request for that long; its agreement with the answers (at least
   {agreement:.0%} of rows), errors and prediction drift are judged before any client sees it.
   Then **canary_<p>** and **judge_<p>** for each step of {steps} %: the traffic in force (the
   registered model's `runway.traffic` tag, audited in `{audit}`) gives the candidate p %; the
   judge holds at least {hold} s and {min_requests} candidate requests, then compares the arms in
   `{inference}`: error rate (+{error_diff:.1%} at most), p99 ({p99_ratio}× at most), prediction
   drift between the arms (a Champion arm thinner than {min_requests} requests, as at 100 %, is
   filled with its latest requests before the step). A breach fails the judge at once.
3. **promote** moves `Champion` to the candidate (the promotion rules hold: validated, compared,
   approved where required) and **traffic_to_champion** puts all traffic on it.
4. **roll_back** (on any failure after the load test): all traffic back to the Champion, audited;
   `Champion` stays where it was.
5. **report** (always): the arms side by side over the run, from the inference table — traffic,
   errors, latency, predictions, shadow agreement, quality where labels arrived — in
   `ml.online_comparison` and an HTML report in an MLflow run.
"""


def build_deployment_dag(env: str) -> DAG:
    config = load_config(env)
    rollout = config.rollout
    canary, load = rollout.canary, rollout.load_test
    audit, inference = (
        table_asset(config, "ml", "model_audit"),
        table_asset(config, "ml", config.serving.inference_log.table),
    )
    kwargs = dag_kwargs(config, "deployment", None, "", ["deployment", "rollout"])
    kwargs["doc_md"] = DOC.format(
        env=env,
        model=config.registered_model_name,
        ratio=load.max_p99_ratio,
        errors=load.max_error_rate,
        p99=load.max_p99_ms,
        rps=load.min_rps,
        steps=" → ".join(f"{s:g}" for s in canary.steps),
        audit=audit.name,
        hold=canary.hold_seconds,
        min_requests=canary.min_requests,
        inference=inference.name,
        error_diff=canary.max_error_rate_diff,
        p99_ratio=canary.max_p99_ratio,
        agreement=canary.min_shadow_agreement,
    )
    params = {
        "candidate": Param(
            type="string",
            minLength=1,
            title="Candidate version",
            description="The model version to roll out (a number).",
        )
    }
    who = ["--requested-by", TRIGGERED_BY]
    candidate = "{{ params.candidate }}"
    with DAG(**kwargs, max_active_runs=1, params=params) as dag:
        load_test = job_task(
            config,
            task_id="load_test",
            job="load_test",
            arguments=["--version", candidate, "--run-id", "{{ run_id }}"],
            doc_md="The candidate against the Champion under the same bounded load.",
        )
        check = job_task(
            config,
            task_id="check_promotable",
            job="promote",
            arguments=["check", "--version", candidate],
            doc_md="The promotion rules before any traffic: validated, compared, approved where required.",
        )
        check >> load_test
        previous, steps = load_test, []
        if canary.shadow_seconds > 0:  # shadow first: the candidate scores copies, its answers never returned
            shadow = job_task(
                config,
                task_id="shadow",
                job="rollout",
                outlets=[audit],
                arguments=[
                    "shadow-step",
                    "--candidate",
                    candidate,
                    *who,
                    "--reason",
                    "shadow before the canary",
                    "--run-id",
                    "{{ run_id }}:{{ ti.task_id }}",
                ],
                doc_md="The candidate shadows the Champion (audited).",
            )
            judge_shadow = CanaryStepSensor(
                task_id="judge_shadow",
                runway_env=env,
                candidate=candidate,
                phase="shadow",
                hold_seconds=canary.shadow_seconds,
                deferrable=True,
                inlets=[inference],
                since="{{ ti.xcom_pull(task_ids='shadow')['started'] }}",
                poke_interval=min(30.0, max(1.0, canary.shadow_seconds / 4)),
                timeout=canary.timeout_seconds,
                doc_md="Holds the shadow, then judges its agreement, errors and drift against the answers.",
            )
            load_test >> shadow >> judge_shadow
            previous, steps = judge_shadow, [shadow, judge_shadow]
        for percent in canary.steps:
            label = f"{percent:g}".replace(".", "_")
            step = job_task(
                config,
                task_id=f"canary_{label}",
                job="rollout",
                outlets=[audit],
                arguments=[
                    "canary-step",
                    "--candidate",
                    candidate,
                    "--percent",
                    str(percent),
                    *who,
                    "--reason",
                    f"canary {percent:g} %",
                    "--run-id",
                    "{{ run_id }}:{{ ti.task_id }}",
                ],
                doc_md=f"The candidate takes {percent:g} % of the traffic (audited).",
            )
            judge = CanaryStepSensor(
                task_id=f"judge_{label}",
                runway_env=env,
                candidate=candidate,
                hold_seconds=canary.hold_seconds,
                deferrable=True,
                since=f"{{{{ ti.xcom_pull(task_ids='canary_{label}')['started'] }}}}",
                inlets=[inference],
                poke_interval=min(30.0, max(1.0, canary.hold_seconds / 4)),
                timeout=canary.timeout_seconds,
                doc_md="Holds the step, then judges the arms from the inference table.",
            )
            previous >> step >> judge
            previous = judge
            steps += [step, judge]
        promote = job_task(
            config,
            task_id="promote",
            job="promote",
            outlets=[audit],
            arguments=["promote", "--version", candidate, "--run-id", "{{ run_id }}"],
            doc_md="Champion moves to the candidate (audited, the promotion rules hold).",
        )
        to_champion = job_task(
            config,
            task_id="traffic_to_champion",
            job="rollout",
            outlets=[audit],
            arguments=[
                "reset",
                *who,
                "--reason",
                "the canary ladder passed",
                "--run-id",
                "{{ run_id }}:final",
            ],
            doc_md="All traffic to the (new) Champion.",
        )
        roll_back = job_task(
            config,
            task_id="roll_back",
            job="rollout",
            outlets=[audit],
            trigger_rule=TriggerRule.ONE_FAILED,
            arguments=[
                "reset",
                *who,
                "--reason",
                "canary failed: rolled back",
                "--run-id",
                "{{ run_id }}:rollback",
            ],
            doc_md="On a failed step: all traffic back to the Champion (audited); Champion unchanged.",
        )
        report = job_task(
            config,
            task_id="report",
            job="online_report",
            trigger_rule=TriggerRule.ALL_DONE,
            arguments=["--since", "{{ dag_run.start_date.isoformat() }}", "--run-id", "{{ run_id }}"],
            doc_md="The arms side by side over the run: traffic, errors, latency, predictions, quality.",
        )
        previous >> promote >> to_champion
        [*steps, promote] >> roll_back
        [promote, roll_back] >> report  # traffic_to_champion stays a leaf: a rolled-back run fails
    return dag
