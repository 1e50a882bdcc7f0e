"""MLflow model registry access for Airflow tasks: every MLflow call of Runway's operators and
sensors goes through this hook.

Where the tracking and registry URIs come from, first match wins:
1. explicit ``tracking_uri`` / ``registry_uri`` arguments;
2. an Airflow connection (``mlflow_conn_id``): ``host`` (or extra ``tracking_uri``) is the tracking
   URI, extra ``registry_uri`` the registry (e.g. ``databricks-uc``);
3. the Runway environment's config (``mlflow.tracking_uri`` / ``mlflow.registry_uri``).

The MLflow client is built on first use, never when the hook is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


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
                raise ValueError(
                    f"connection {self.mlflow_conn_id} gives no tracking URI (host or extra.tracking_uri)"
                )
            return tracking, extra.get("registry_uri") or tracking
        from jobs.common.config import load_config

        mlflow = load_config(self.runway_env).mlflow
        return mlflow.tracking_uri, mlflow.registry_uri or mlflow.tracking_uri

    def get_conn(self) -> MlflowClient:
        if self._client is None:
            import os

            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            from mlflow import MlflowClient

            tracking, registry = self.get_uris()
            self._client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
        return self._client

    @property
    def client(self) -> MlflowClient:
        return self.get_conn()

    # ------------------------------------------------------------------ reads

    def get_version(self, name: str, version: str | int) -> ModelVersion:
        return self.client.get_model_version(name, str(version))

    def version_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None when the alias is not set."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in (
                "INVALID_PARAMETER_VALUE",
                "RESOURCE_DOES_NOT_EXIST",
            ) and "not found" in str(exc):
                return None
            raise

    def resolve_version(self, name: str, version: str | int | None = None, alias: str | None = None) -> str:
        """A concrete version number from a version or an alias (exactly one of them)."""
        if (version in (None, "")) == (alias in (None, "")):
            raise ValueError("give a model version or an alias, not both or neither")
        if alias:
            found = self.version_by_alias(name, alias)
            if found is None:
                raise LookupError(f"model {name} has no alias '{alias}'")
            return str(found.version)
        return str(self.get_version(name, version).version)

    def version_tag(self, name: str, version: str | int, key: str) -> str | None:
        return self.get_version(name, version).tags.get(key)

    # ------------------------------------------------------------------ writes (idempotent)

    def set_alias(self, name: str, alias: str, version: str | int) -> str | None:
        """Point ``alias`` at ``version``. Returns the version it pointed at before (None if unset);
        when it already points there, nothing is written."""
        current = self.version_by_alias(name, alias)
        previous = str(current.version) if current is not None else None
        if previous != str(version):
            self.get_version(name, version)  # a clear error for a version that does not exist
            self.client.set_registered_model_alias(name, alias, str(version))
            self.log.info("%s: alias %s moved %s -> %s", name, alias, previous, version)
        return previous

    def delete_alias(self, name: str, alias: str) -> str | None:
        """Remove ``alias``; returns the version it pointed at (None if it was not set)."""
        current = self.version_by_alias(name, alias)
        if current is None:
            return None
        self.client.delete_registered_model_alias(name, alias)
        self.log.info("%s: alias %s removed from version %s", name, alias, current.version)
        return str(current.version)

    def set_version_tags(self, name: str, version: str | int, tags: dict[str, Any]) -> dict[str, str]:
        """Set the tags whose value differs; returns those it changed."""
        existing = self.get_version(name, version).tags
        changed = {k: str(v) for k, v in tags.items() if existing.get(k) != str(v)}
        for key, value in changed.items():
            self.client.set_model_version_tag(name, str(version), key, value)
        return changed

    def set_description(self, name: str, version: str | int, description: str) -> bool:
        """Replace the version's description; False when it already reads so."""
        if (self.get_version(name, version).description or "") == description:
            return False
        self.client.update_model_version(name, str(version), description=description)
        return True
