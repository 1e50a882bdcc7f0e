"""docker-compose.yaml, the Dockerfile and .env.example, checked offline (no Docker engine runs on
these machines): the Compose Specification's JSON schema (as vendored by check-jsonschema), every
variable defined, no secret committed, health checks and start order, and the same commands and
install steps as `make install` / `make up`."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
AIRFLOW_COMPONENTS = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_schema():
    schema = json.loads(
        (resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json").read_text()
    )
    return jsonschema.validators.validator_for(schema)(schema)


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()]
    return {
        key.strip(): value.strip()
        for key, value, *_ in (p for p in pairs if len(p) == 2 and not p[0].startswith("#"))
    }


def test_compose_file_follows_the_compose_specification(compose, compose_schema):
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in compose_schema.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_a_broken_file(compose, compose_schema):
    broken = json.loads(json.dumps(compose))  # YAML anchors share nested objects: unshare them
    broken["services"]["airflow-scheduler"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["mlflow"]["healthcheck"]["retrys"] = 5  # a typo'd key
    paths = {"/".join(map(str, e.absolute_path)) for e in compose_schema.iter_errors(broken)}
    assert any(p.startswith("services/airflow-scheduler/depends_on") for p in paths), paths
    assert any(p.startswith("services/mlflow/healthcheck") for p in paths), paths
    assert {p.split("/")[1] for p in paths} == {"airflow-scheduler", "mlflow"}  # nothing else flagged


def test_every_variable_is_defined_in_env_example_or_has_a_default():
    text = COMPOSE.read_text().replace("$$", "")  # $$ escapes a literal $ for the container's shell
    defined = _env_example()
    used = re.findall(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}", text)
    missing = sorted(
        {name for name, modifier in used if name not in defined and not modifier.startswith((":-", "-"))}
    )
    assert missing == []


def test_no_secret_is_committed():
    values = _env_example()
    secrets = [k for k in values if re.search(r"PASSWORD|SECRET|FERNET|TOKEN|KEY", k)]
    assert secrets and all(values[k] in ("", "change-me", "change-me-too") for k in secrets), values
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    compose = COMPOSE.read_text()
    assert not re.search(r"(PASSWORD|SECRET|FERNET_KEY)[^\n]*:\s*[A-Za-z0-9+/=_-]{16,}\s*$", compose, re.M)


def test_services_have_health_checks_and_start_in_order(compose):
    services = compose["services"]
    one_shot = {name for name, service in services.items() if service.get("restart") == "no"}
    assert one_shot == {"airflow-init", "mlflow-auth-init", "mlflow-provision"}
    long_running = set(services) - one_shot
    assert all("healthcheck" in services[name] for name in long_running), long_running
    for name in AIRFLOW_COMPONENTS:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["mlflow-provision"]["condition"] == "service_completed_successfully"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-init"]["command"] == ["airflow", "db", "migrate"]
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["mlflow-provision"]["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_the_stack_authenticates_in_mlflow_and_airflow(compose):
    """MLflow runs its own authentication, provisioned by the script the identity tests run against
    a real server; Airflow has an approver and a viewer besides the admin."""
    services = compose["services"]
    mlflow = services["mlflow"]
    assert mlflow["command"][:4] == ["mlflow", "server", "--app-name", "basic-auth"]
    assert mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"] == "/mlflow/auth/basic_auth.ini"
    assert services["mlflow-auth-init"]["command"][:3] == ["python", "scripts/mlflow_auth.py", "config"]
    assert services["mlflow-provision"]["command"][:3] == ["python", "scripts/mlflow_auth.py", "provision"]
    users = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert [u.rsplit(":", 1)[1] for u in users.split(",")] == ["admin", "user", "viewer"]
    from mlflow_auth import users_from_environment  # scripts/mlflow_auth.py

    spec = users_from_environment(
        {
            "RUNWAY_PROD_MLFLOW_PASSWORD": "p",
            "RUNWAY_DEV_MLFLOW_USERNAME": "d",
            "RUNWAY_DEV_MLFLOW_PASSWORD": "q",
            "RUNWAY_MLFLOW_APPROVERS": "alice:a, bob:b",
        }
    )
    assert spec == {
        "users": {"d": "q", "prod-deployer": "p", "alice": "a", "bob": "b"},
        "deployers": {"dev": "d", "prod": "prod-deployer"},
    }


def test_airflow_components_are_the_ones_make_up_runs(compose):
    """`make up` runs `airflow standalone`: the compose stack runs its components one per service."""
    import inspect

    from airflow.cli.commands import standalone_command

    components = set(re.findall(r'self\.subcommands\["([a-z-]+)"\]', inspect.getsource(standalone_command)))
    assert components == {"scheduler", "dag-processor", "api-server", "triggerer"}
    commands = {compose["services"][name]["command"][1] for name in AIRFLOW_COMPONENTS}
    assert commands == components
    assert all(compose["services"][name]["command"][0] == "airflow" for name in AIRFLOW_COMPONENTS)
    env = compose["x-airflow-common"]["environment"]
    assert (
        env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    )
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    stack = (ROOT / "scripts" / "stack.py").read_text()
    mlflow = compose["services"]["mlflow"]["command"]
    assert mlflow[:2] == ["mlflow", "server"] and re.search(r'"mlflow",\s*"server"', stack)
    for flag in ("--backend-store-uri", "--default-artifact-root", "--host", "--port"):
        assert flag in mlflow and f'"{flag}"' in stack, flag


def test_image_installs_what_make_install_installs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert (
        "pip install --quiet -r requirements.txt" in makefile
        and "pip install --quiet --no-deps -e ." in makefile
    )
    assert re.search(r"pip install --no-cache-dir -r requirements.txt", dockerfile)
    assert "pip install --no-cache-dir --no-deps -e ." in dockerfile
    assert "openjdk-17-jre-headless" in dockerfile  # PySpark's JVM
    copied = set(re.findall(r"^COPY (\S+)/ ", dockerfile, re.M))
    assert copied == {"jobs", "dags", "plugins", "include", "scripts"}
    # The variables the embedded stack sets are set in the image too.
    import runway_env

    for name in (
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "AIRFLOW__CORE__LOAD_EXAMPLES",
        "RUNWAY_DATA_DIR",
        "PYSPARK_PYTHON",
        "MLFLOW_DISABLE_TELEMETRY",
    ):
        assert name in runway_env.variables(Path("/data")) and f"{name}=" in dockerfile, name
