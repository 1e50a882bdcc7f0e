"""A local stand-in for the Databricks Jobs API 2.2 — a TEST DOUBLE, not Databricks.

It serves the four endpoints the Databricks provider's submit-run path calls (runs/submit,
runs/get, runs/get-output, runs/cancel), checks each submitted payload against the fields the
Jobs API documents, records every request, and replays scripted run states: each runs/get
advances a run one step (PENDING → RUNNING → TERMINATED), ending as the test's ``script`` says
(SUCCESS with the job's stdout, FAILED with a state message and error, or RUNNING until a
runs/cancel arrives).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "dapi-standin-token"

# Request fields of runs/submit as documented for Jobs API 2.2 (top level, a task, a python wheel
# task, a library, a new cluster). Anything else is a payload Databricks would reject or ignore.
SUBMIT_FIELDS = {
    "run_name",
    "tasks",
    "timeout_seconds",
    "idempotency_token",
    "access_control_list",
    "git_source",
    "health",
    "email_notifications",
    "webhook_notifications",
    "notification_settings",
    "environments",
    "budget_policy_id",
    "queue",
    "run_as",
    "usage_policy_id",
}
TASK_FIELDS = {
    "task_key",
    "python_wheel_task",
    "spark_python_task",
    "notebook_task",
    "spark_jar_task",
    "spark_submit_task",
    "libraries",
    "new_cluster",
    "existing_cluster_id",
    "job_cluster_key",
    "environment_key",
    "timeout_seconds",
    "depends_on",
    "run_if",
    "email_notifications",
    "webhook_notifications",
    "notification_settings",
    "health",
}
WHEEL_TASK_FIELDS = {"package_name", "entry_point", "parameters", "named_parameters"}
LIBRARY_FIELDS = {"whl", "jar", "pypi", "maven", "cran", "egg", "requirements"}
CLUSTER_FIELDS = {
    "spark_version",
    "node_type_id",
    "driver_node_type_id",
    "num_workers",
    "autoscale",
    "policy_id",
    "apply_policy_default_values",
    "spark_conf",
    "spark_env_vars",
    "custom_tags",
    "data_security_mode",
    "single_user_name",
    "runtime_engine",
    "aws_attributes",
    "azure_attributes",
    "gcp_attributes",
    "instance_pool_id",
    "driver_instance_pool_id",
    "init_scripts",
    "cluster_log_conf",
    "enable_elastic_disk",
    "ssh_public_keys",
    "kind",
    "is_single_node",
    "use_ml_runtime",
}


# PUT /api/2.0/serving-endpoints/{name}/config as documented (Serving Endpoints API).
ENDPOINT_CONFIG_FIELDS = {"served_entities", "served_models", "traffic_config", "auto_capture_config"}
SERVED_ENTITY_FIELDS = {
    "name",
    "entity_name",
    "entity_version",
    "workload_size",
    "workload_type",
    "scale_to_zero_enabled",
    "environment_vars",
    "instance_profile_arn",
    "min_provisioned_throughput",
    "max_provisioned_throughput",
    "external_model",
    "provisioned_model_units",
    "burst_scaling_enabled",
    "max_provisioned_concurrency",
    "min_provisioned_concurrency",
}
ROUTE_FIELDS = {"served_entity_name", "served_model_name", "traffic_percentage"}
AUTO_CAPTURE_FIELDS = {"catalog_name", "schema_name", "table_name_prefix", "enabled"}


def endpoint_config_problems(body: dict[str, Any]) -> list[str]:
    """What in a serving endpoint config body the API does not document or would refuse."""
    problems = [f"unknown field {k}" for k in body if k not in ENDPOINT_CONFIG_FIELDS]
    entities = body.get("served_entities") or []
    for entity in entities:
        problems += [f"unknown served entity field {k}" for k in entity if k not in SERVED_ENTITY_FIELDS]
    names = {e.get("name") for e in entities}
    routes = (body.get("traffic_config") or {}).get("routes") or []
    for route in routes:
        problems += [f"unknown route field {k}" for k in route if k not in ROUTE_FIELDS]
        if route.get("served_entity_name") not in names:
            problems.append(f"route to unknown served entity {route.get('served_entity_name')}")
    if routes and sum(int(r.get("traffic_percentage", 0)) for r in routes) != 100:
        problems.append("traffic percentages must add up to 100")
    problems += [
        f"unknown auto capture field {k}"
        for k in body.get("auto_capture_config") or {}
        if k not in AUTO_CAPTURE_FIELDS
    ]
    return problems


def payload_problems(payload: dict[str, Any]) -> list[str]:
    """What in a runs/submit body the Jobs API does not document (empty when it is well formed)."""
    problems = [f"unknown field {k}" for k in payload if k not in SUBMIT_FIELDS]
    tasks = payload.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return [*problems, "tasks must be a non-empty list"]
    for task in tasks:
        key = task.get("task_key", "?")
        problems += [f"{key}: unknown task field {k}" for k in task if k not in TASK_FIELDS]
        if not task.get("task_key"):
            problems.append("a task has no task_key")
        if ("new_cluster" in task) == ("existing_cluster_id" in task):
            problems.append(f"{key}: give exactly one of new_cluster and existing_cluster_id")
        wheel = task.get("python_wheel_task")
        if wheel is not None:
            problems += [
                f"{key}: unknown python_wheel_task field {k}" for k in wheel if k not in WHEEL_TASK_FIELDS
            ]
            if "parameters" in wheel and "named_parameters" in wheel:
                problems.append(f"{key}: parameters and named_parameters are exclusive")
            if not all(isinstance(p, str) for p in wheel.get("parameters", [])):
                problems.append(f"{key}: parameters must be strings")
        for library in task.get("libraries", []):
            problems += [f"{key}: unknown library type {k}" for k in library if k not in LIBRARY_FIELDS]
        cluster = task.get("new_cluster", {})
        problems += [f"{key}: unknown new_cluster field {k}" for k in cluster if k not in CLUSTER_FIELDS]
        if cluster and "spark_version" not in cluster and "policy_id" not in cluster:
            problems.append(f"{key}: new_cluster needs spark_version")
    if len(payload.get("idempotency_token", "")) > 64:
        problems.append("idempotency_token is longer than 64 characters")
    return problems


@dataclass
class Outcome:
    """How a scripted run ends."""

    result: str = "SUCCESS"  # SUCCESS | FAILED | HANG (RUNNING until cancelled)
    logs: str = ""
    state_message: str = ""
    error: str = ""


@dataclass
class Run:
    run_id: int
    payload: dict[str, Any]
    outcome: Outcome
    polls: int = 0
    cancelled: bool = False
    steps: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "TERMINATED"])

    @property
    def task_run_id(self) -> int:
        return self.run_id * 100 + 1

    def state(self) -> dict[str, Any]:
        if self.cancelled:
            return {
                "life_cycle_state": "TERMINATED",
                "result_state": "CANCELED",
                "state_message": "Run cancelled.",
            }
        if self.outcome.result == "HANG":
            return {"life_cycle_state": "RUNNING", "state_message": "In run"}
        life = self.steps[min(self.polls, len(self.steps) - 1)]
        if life != "TERMINATED":
            return {
                "life_cycle_state": life,
                "state_message": "Waiting for cluster" if life == "PENDING" else "In run",
            }
        return {
            "life_cycle_state": "TERMINATED",
            "result_state": self.outcome.result,
            "state_message": self.outcome.state_message,
        }


class JobsApiStandIn:
    """Start with ``with JobsApiStandIn(script) as api:``; ``api.connection_uri`` is an Airflow
    connection for it; ``api.requests`` and ``api.runs`` hold what happened."""

    def __init__(self, script: Callable[[dict[str, Any]], Outcome]) -> None:
        self.script = script
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.runs: dict[int, Run] = {}
        self.rejected: list[list[str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> JobsApiStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def connection_uri(self) -> str:
        conn = {
            "conn_type": "databricks",
            "host": "127.0.0.1",
            "port": self.port,
            "schema": "http",
            "password": TOKEN,
        }
        return json.dumps(conn)

    def page_url(self, run_id: int) -> str:
        return f"http://127.0.0.1:{self.port}/#job/1/run/{run_id}"

    def submitted(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if path.endswith("/runs/submit")]

    def _handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((method, path, body))
            if path == "/api/2.2/jobs/runs/submit" and method == "POST":
                problems = payload_problems(body)
                if problems:
                    self.rejected.append(problems)
                    return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "; ".join(problems)}
                token = body.get("idempotency_token")
                for run in self.runs.values():
                    if token and run.payload.get("idempotency_token") == token:
                        return 200, {"run_id": run.run_id}
                run = Run(len(self.runs) + 1, body, self.script(body))
                self.runs[run.run_id] = run
                return 200, {"run_id": run.run_id}
            if path == "/api/2.2/jobs/runs/get" and method == "GET":
                run = self.runs.get(int(body.get("run_id", 0)))
                if run is None:
                    return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"}
                state = run.state()
                run.polls += 1
                task = run.payload["tasks"][0]
                # A one-time submit run also has a job id (the Jobs API documents job_id on runs/get).
                return 200, {
                    "run_id": run.run_id,
                    "job_id": 1_000_000 + run.run_id,
                    "run_name": run.payload.get("run_name"),
                    "state": state,
                    "run_page_url": self.page_url(run.run_id),
                    "tasks": [{"run_id": run.task_run_id, "task_key": task["task_key"], "state": state}],
                }
            if path == "/api/2.2/jobs/runs/get-output" and method == "GET":
                task_run = int(body.get("run_id", 0))
                run = next((r for r in self.runs.values() if r.task_run_id == task_run), None)
                if run is None:
                    return 400, {
                        "error_code": "INVALID_PARAMETER_VALUE",
                        "message": "Retrieving the output of runs with multiple tasks is not supported",
                    }
                output: dict[str, Any] = {
                    "metadata": {"run_id": task_run, "state": run.state()},
                    "logs": run.outcome.logs,
                }
                if run.outcome.error:
                    output["error"] = run.outcome.error
                return 200, output
            if path == "/api/2.2/jobs/runs/cancel" and method == "POST":
                run = self.runs.get(int(body.get("run_id", 0)))
                if run is None:
                    return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"}
                run.cancelled = True
                return 200, {}
            if (
                path.startswith("/api/2.0/serving-endpoints/")
                and path.endswith("/config")
                and method == "PUT"
            ):
                problems = endpoint_config_problems(body)
                if problems:
                    self.rejected.append(problems)
                    return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "; ".join(problems)}
                name = path.split("/")[4]
                return 200, {"name": name, "state": {"config_update": "IN_PROGRESS"}, "pending_config": body}
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"{method} {path}"}

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"error_code": "UNAUTHENTICATED", "message": "bad token"})
                    return
                url = urlsplit(self.path)
                if method == "GET":
                    body = {k: v[-1] for k, v in parse_qs(url.query).items()}
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                self._send(*standin._handle(method, url.path, body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._reply("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._reply("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._reply("PUT")

            def log_message(self, *args) -> None:
                pass

        return Handler
