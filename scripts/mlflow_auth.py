"""MLflow with its own authentication (``mlflow server --app-name basic-auth``) for Runway: one user
per environment's deployer, the approvers, and permissions so that each environment's registered
models and experiment are writable only by its deployer (everyone else reads).

    python scripts/mlflow_auth.py config  --data DIR            # writes DIR/basic_auth.ini
    python scripts/mlflow_auth.py provision --uri URL [--users FILE]   # (default: from the environment)

``config`` writes the auth app's settings (admin from ``MLFLOW_AUTH_ADMIN_PASSWORD``, READ as the
default permission, a credential cache so a request does not pay a password hash each); the server
then runs with ``MLFLOW_AUTH_CONFIG_PATH`` pointing at it. ``provision`` (as the admin, from
``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``) creates the users of a JSON file
(``{"users": {"name": "password"}, "deployers": {"dev": "dev-deployer", ...}}``), creates each
environment's registered model and experiment as the admin, and grants its deployer MANAGE on them.
Without ``--users`` the users come from the variables the jobs use: each environment's
``RUNWAY_<ENV>_MLFLOW_USERNAME`` (default ``<env>-deployer``) with ``RUNWAY_<ENV>_MLFLOW_PASSWORD``
(environments without a password are skipped), and ``RUNWAY_MLFLOW_APPROVERS`` (``name:password,...``,
who read everything and write nothing). Repeating it changes nothing. The compose stack and the
identity tests use it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INI = """[mlflow]
default_permission = READ
database_uri = sqlite:///{database}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
auth_cache_max_size = 10000
auth_cache_ttl_seconds = 60
"""


def write_config(folder: Path, admin: str = "admin") -> Path:
    """The auth app's ini in ``folder`` (its user store beside it); the admin's password comes from
    ``MLFLOW_AUTH_ADMIN_PASSWORD`` on the server's first start."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "basic_auth.ini"
    path.write_text(INI.format(database=(folder / "basic_auth.db").resolve(), admin=admin))
    return path


def provision(
    uri: str, users: dict[str, str], deployers: dict[str, str], envs: list[str] | None = None
) -> dict:
    """Users, and each environment's model and experiment owned by its deployer (idempotent)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    from jobs.config.loader import load_config

    auth = get_app_client("basic-auth", tracking_uri=uri)
    created = []
    for name, password in users.items():
        try:
            auth.create_user(name, password)
            created.append(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    owned = {}
    for env in envs or list(deployers):
        config, deployer = load_config(env), deployers[env]
        model = config.registered_model_name
        try:
            client.create_registered_model(model)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name(config.mlflow.experiment)
        experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment(config.mlflow.experiment)
        )
        auth.grant_user_permission(deployer, "registered_model", model, "MANAGE")
        auth.grant_user_permission(deployer, "experiment", experiment_id, "MANAGE")
        owned[env] = {"deployer": deployer, "model": model, "experiment": experiment_id}
    return {"created_users": created, "owned": owned}


def users_from_environment(environ: dict[str, str]) -> dict:
    """The deployers and approvers the variables name (see the module docstring)."""
    users, deployers = {}, {}
    for env in ("dev", "staging", "prod"):
        password = environ.get(f"RUNWAY_{env.upper()}_MLFLOW_PASSWORD", "")
        if password:
            name = environ.get(f"RUNWAY_{env.upper()}_MLFLOW_USERNAME") or f"{env}-deployer"
            users[name], deployers[env] = password, name
    for entry in filter(None, environ.get("RUNWAY_MLFLOW_APPROVERS", "").split(",")):
        name, _, password = entry.partition(":")
        users[name.strip()] = password.strip()
    return {"users": users, "deployers": deployers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["config", "provision"])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("RUNWAY_DATA_DIR", "data")) / "mlflow-auth"
    )
    parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""))
    parser.add_argument("--users", type=Path, help="JSON: {users: {name: password}, deployers: {env: name}}")
    args = parser.parse_args(argv)
    if args.action == "config":
        print(write_config(args.data))
        return 0
    spec = json.loads(args.users.read_text()) if args.users else users_from_environment(dict(os.environ))
    print(json.dumps(provision(args.uri, spec["users"], spec["deployers"]), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
