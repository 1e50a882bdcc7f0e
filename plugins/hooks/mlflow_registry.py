"""MLflow model registry access for Airflow tasks: Airflow's connection lookup in front of Runway's
registry layer (``jobs.release.registry``), which every operator, sensor and trigger uses.

Where the tracking and registry URIs come from, first match wins:
1. explicit ``tracking_uri`` / ``registry_uri`` arguments;
2. an Airflow connection (``mlflow_conn_id``): ``host`` (or extra ``tracking_uri``) is the tracking
   URI, extra ``registry_uri`` the registry (e.g. ``databricks-uc``);
3. the Runway environment's config (``mlflow.tracking_uri`` / ``mlflow.registry_uri``).

The MLflow client is built on first use, never when the hook is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from jobs.release.registry import ModelRegistry
    from jobs.runtime.identity import Identity


class MlflowRegistryHook(BaseHook):
    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(
        self,
        mlflow_conn_id: str | None = None,
        runway_env: str | None = None,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
    ) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self.runway_env = runway_env
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self._client: MlflowClient | None = None

    def get_uris(self) -> tuple[str, str | None]:
        """(tracking URI, registry URI), resolved as the module docstring says."""
        if self.tracking_uri:
            return self.tracking_uri, self.registry_uri or self.tracking_uri
        if self.mlflow_conn_id:
            conn = self.get_connection(self.mlflow_conn_id)
            extra = conn.extra_dejson
            tracking = extra.get("tracking_uri") or conn.host
            if not tracking:
                from jobs.core.errors import BadInputError

                raise BadInputError(
                    f"connection {self.mlflow_conn_id} gives no tracking URI (host or extra.tracking_uri)"
                )
            return tracking, extra.get("registry_uri") or tracking
        from jobs.config.loader import load_config
        from jobs.runtime.identity import use_credentials

        mlflow = load_config(self.runway_env).mlflow
        use_credentials(mlflow)  # the environment's deployer, where its server authenticates
        return mlflow.tracking_uri, mlflow.registry_uri or mlflow.tracking_uri

    def get_conn(self) -> MlflowClient:
        if self._client is None:
            import os

            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            from mlflow import MlflowClient

            tracking, registry = self.get_uris()
            self._client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
        return self._client

    def registry(self, model_name: str) -> ModelRegistry:
        """One registered model, through Runway's registry layer (jobs.release.registry): the same
        reads, idempotent writes and error rules as the jobs'."""
        from jobs.release.registry import ModelRegistry

        tracking, registry = self.get_uris()
        return ModelRegistry(self.get_conn(), model_name, registry or tracking)

    def identity(self) -> Identity:
        """Whom the tracking server authenticates for this hook's credentials (``unauthenticated``
        where it authenticates nobody): what an approval recorded through this hook names."""
        from jobs.runtime.identity import mlflow_identity

        return mlflow_identity(self.get_uris()[0])
