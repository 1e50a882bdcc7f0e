"""The load test before deploy: the candidate and the Champion behind the same load, judged."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow

from jobs.config.env import EnvConfig
from jobs.core.errors import GateFailedError, MissingInputError
from jobs.modeling.estimator import model_inputs
from jobs.release.gates import LoadFigures, LoadLimits, load_test_verdict
from jobs.release.registry import ModelRegistry
from jobs.runtime.mlflow_setup import configure_mlflow
from jobs.serving.load import LocalEndpoint, run_locust

if TYPE_CHECKING:
    from jobs.release.registry import ModelRegistry
    from jobs.tablestore import TableStore


log = logging.getLogger("runway.load_test")

LOAD_TEST_LOG = "inference_log_load_test"  # the load test's requests, apart from real traffic

LOAD_TEST_STATUS_TAG = "load_test_status"

WARM_UP_REQUESTS = 20


def request_body(config: EnvConfig, store: TableStore, registry: ModelRegistry, versions: list[str]) -> bytes:
    """One scoring request of ``rows_per_request`` rows of gold: the test window of the first of
    ``versions`` (the candidate, then the Champion) whose lineage names one."""

    features = config.use_case.features
    for version in versions:
        tags = registry.version(version).tags
        window = (features.date_column, tags.get("data.test_start"), tags.get("data.test_end"))
        if window[1] and window[2]:
            break
    else:
        raise MissingInputError(
            f"none of {registry.model_name} {versions} has a test window in its lineage tags"
        )
    gold = store.read_pandas(store.name("gold", features.table), window=window)
    rows = model_inputs(config.use_case.model, gold.head(config.rollout.load_test.rows_per_request))
    if rows.empty:
        raise MissingInputError(f"no gold rows in v{version}'s test window [{window[1]}, {window[2]})")
    return json.dumps({"dataframe_records": json.loads(rows.to_json(orient="records"))}).encode()


def drive(config: EnvConfig, version: str, body: bytes, workdir: Path) -> LoadFigures:
    """Serve ``version`` alone on loopback and drive it with the configured load."""

    settings = config.rollout.load_test
    traffic = {"routes": [{"name": "load_test", "version": version, "percent": 100}]}
    with LocalEndpoint(config.env, traffic, workdir, LOAD_TEST_LOG) as endpoint:
        endpoint.warm_up(body, WARM_UP_REQUESTS)  # first connections and predicts are not the figure
        figures = run_locust(endpoint.url, body, settings.users, settings.seconds, workdir)
    log.info("v%s: %s", version, figures.as_dict())
    return figures


def best(rounds: list[LoadFigures]) -> LoadFigures:
    """A version's best round (lowest p99) unless a round had errors (then the one with most):
    what it can do when the machine is quiet, and every error it made."""
    worst = max(rounds, key=lambda f: f.error_rate)
    return worst if worst.failures else min(rounds, key=lambda f: f.p99_ms)


def load_test(
    config: EnvConfig, store: TableStore, version: str, *, run_id: str = "manual"
) -> dict[str, Any]:
    """Measure the candidate and the Champion, record the figures, and judge."""

    registry = ModelRegistry.for_config(config)
    candidate = registry.resolve(version=version)
    champion = registry.alias_version(config.champion_alias)
    body = request_body(config, store, registry, [v for v in (candidate, champion) if v])
    others = [champion] if champion and champion != candidate else []
    runs: dict[str, list[LoadFigures]] = {v: [] for v in (candidate, *others)}
    with tempfile.TemporaryDirectory(prefix="runway-load-test-") as work:
        for round_ in range(config.rollout.load_test.rounds):  # alternated: a noisy moment hits both
            for version in runs:
                runs[version].append(drive(config, version, body, Path(work) / f"v{version}-{round_}"))
    measured, baseline = best(runs[candidate]), (best(runs[champion]) if others else None)
    settings = config.rollout.load_test
    limits = LoadLimits(
        settings.max_p99_ratio, settings.max_error_rate, settings.max_p99_ms, settings.min_rps
    )
    verdict = load_test_verdict(measured, baseline, limits)
    mlflow_run_id = _record(config, registry, candidate, champion, verdict, run_id)
    log.info("%s v%s: %s", registry.model_name, candidate, verdict.reason)
    if not verdict.passed:
        raise GateFailedError(f"{registry.model_name} v{candidate}: {verdict.reason}")
    return {
        **verdict.as_dict(),
        "version": candidate,
        "champion_version": champion,
        "mlflow_run_id": mlflow_run_id,
    }


def _record(
    config: EnvConfig, registry: ModelRegistry, candidate: str, champion: str | None, verdict, run_id: str
) -> str:

    figures = verdict.figures
    metrics = {
        f"{who}.{k}": float(v) for who in ("candidate", "champion") for k, v in (figures[who] or {}).items()
    }
    with mlflow.start_run(experiment_id=configure_mlflow(config), run_name=f"load test v{candidate}") as run:
        mlflow.set_tags(
            {
                "runway.kind": "load_test",
                "runway.env": config.env,
                "model.version": candidate,
                "champion.version": champion or "",
                "airflow.run_id": run_id,
                LOAD_TEST_STATUS_TAG: "passed" if verdict.passed else "failed",
            }
        )
        mlflow.log_metrics(metrics)
    registry.set_tags(
        candidate,
        {
            **{f"load_test.{k}": v for k, v in figures["candidate"].items()},
            "load_test.champion_p99_ms": (figures["champion"] or {}).get("p99_ms", ""),
            "load_test.reason": verdict.reason[:500],
            "load_test.mlflow_run_id": run.info.run_id,
            LOAD_TEST_STATUS_TAG: "passed"
            if verdict.passed
            else "failed",  # last: the status stands on the figures
        },
    )
    return run.info.run_id
