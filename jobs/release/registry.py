"""The MLflow model registry as every Runway component reaches it: jobs, streaming, serving and the
Airflow hook (which only adds Airflow's connection lookup).

One rule for failures: "no such alias" is the only thing read as "not set"; a registry that does
not answer (or answers with a server error) is a ``RegistryUnavailableError``, retried by the
orchestrator; a request the registry refuses (an unknown version, a bad name) is bad input.
Every write is idempotent: nothing is written when the registry already reads as asked.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jobs.core.errors import BadInputError, TransientError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from jobs.config.env import EnvConfig
    from jobs.config.targets import ModelTarget

log = logging.getLogger("runway.registry")
T = TypeVar("T")

STATUS_TAG = "model_validation_status"
PENDING, PASSED, FAILED = "PENDING", "PASSED", "FAILED"
CHALLENGER = "Challenger"
# Error codes with which the registry refuses a request (a retry cannot help); anything else it
# raises — server errors, connection failures, time-outs — is transient.
REFUSALS = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "INVALID_STATE",
    "NOT_FOUND",
    "FEATURE_DISABLED",
}


class RegistryUnavailableError(TransientError):
    """The registry did not answer, or answered with a server error: retry later."""


def is_not_found(exc: Exception) -> bool:
    """Whether the registry answered "no such alias / version / model" (not an outage)."""
    code = getattr(exc, "error_code", None)
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND") and (
        "not found" in str(exc).lower() or "does not exist" in str(exc).lower()
    )


class ModelRegistry:
    """One registered model's versions, aliases and tags."""

    def __init__(self, client: MlflowClient, model_name: str, where: str = "") -> None:
        self.client = client
        self.model_name = model_name
        self.where = where or client.tracking_uri  # the registry URI, given by for_config and at

    @property
    def tracking_uri(self) -> str:
        """The tracking server the client talks to (where it is authenticated)."""
        return self.client.tracking_uri

    @classmethod
    def for_config(cls, config: EnvConfig, target: ModelTarget | None = None) -> ModelRegistry:
        """The target's registered model (default: the use case's), MLflow configured for the
        environment."""
        import mlflow

        from jobs.runtime.mlflow_setup import point_mlflow

        point_mlflow(config)
        uri = config.mlflow.registry_uri or config.mlflow.tracking_uri
        return cls(mlflow.MlflowClient(), (target or config.model_target).registered_model_name, uri)

    @classmethod
    def at(cls, tracking_uri: str, registry_uri: str | None, model_name: str) -> ModelRegistry:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
        return cls(client, model_name, registry_uri or tracking_uri)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:  # MLflow raises its own and the HTTP client's exceptions
            code = getattr(exc, "error_code", None)
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            if code in REFUSALS:
                raise BadInputError(f"{self.model_name}: {what}: {first_line}") from exc
            raise RegistryUnavailableError(
                f"the MLflow registry at {self.where} did not answer ({what}): {first_line}"
            ) from exc

    # ------------------------------------------------------------------ reads

    def version(self, version: str | int) -> ModelVersion:
        return self._call(
            f"read v{version}", lambda: self.client.get_model_version(self.model_name, str(version))
        )

    def by_alias(self, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at; None only when the alias (or the model) does not exist."""
        try:
            return self._call(
                f"read alias {alias}", lambda: self.client.get_model_version_by_alias(self.model_name, alias)
            )
        except BadInputError as exc:
            if is_not_found(exc.__cause__):
                return None
            raise

    def alias_version(self, alias: str) -> str | None:
        found = self.by_alias(alias)
        return str(found.version) if found is not None else None

    def resolve(self, version: str | int | None = None, alias: str | None = None) -> str:
        """A concrete version number from a version or an alias (exactly one of them)."""
        if (version in (None, "")) == (alias in (None, "")):
            raise BadInputError("give a model version or an alias, not both or neither")
        if alias:
            found = self.alias_version(alias)
            if found is None:
                raise BadInputError(f"model {self.model_name} has no alias '{alias}'")
            return found
        return str(self.version(version).version)

    def tag(self, version: str | int, key: str) -> str | None:
        return self.version(version).tags.get(key)

    def model_state(self) -> tuple[dict[str, str], dict[str, str]]:
        """(aliases -> version, the registered model's tags) in one read; empty when the model
        does not exist yet."""
        try:
            model = self._call("read the model", lambda: self.client.get_registered_model(self.model_name))
        except BadInputError as exc:
            if is_not_found(exc.__cause__):
                return {}, {}
            raise
        return {a: str(v) for a, v in (model.aliases or {}).items()}, dict(model.tags or {})

    # ------------------------------------------------------------------ writes (idempotent)

    def set_alias(self, alias: str, version: str | int) -> str | None:
        """Point ``alias`` at ``version``; returns where it pointed before (None if unset)."""
        previous = self.alias_version(alias)
        if previous != str(version):
            self.version(version)  # one sentence for a version that does not exist
            self._call(
                f"set alias {alias}",
                lambda: self.client.set_registered_model_alias(self.model_name, alias, str(version)),
            )
            log.info("%s: alias %s moved %s -> %s", self.model_name, alias, previous, version)
        return previous

    def delete_alias(self, alias: str, only_from: str | int | None = None) -> str | None:
        """Remove ``alias`` (only while it points at ``only_from``, when given); returns the version
        it pointed at when removed, else None. Never touches another version's alias."""
        current = self.alias_version(alias)
        if current is None or (only_from is not None and current != str(only_from)):
            return None
        self._call(
            f"delete alias {alias}", lambda: self.client.delete_registered_model_alias(self.model_name, alias)
        )
        log.info("%s: alias %s removed from v%s", self.model_name, alias, current)
        return current

    def set_model_tag(self, key: str, value: str) -> str | None:
        """Set a tag of the registered model; returns its value before (None if unset)."""
        before = self.model_state()[1].get(key)
        if before != value:
            self._call(
                f"set the model's tag {key}",
                lambda: self.client.set_registered_model_tag(self.model_name, key, value),
            )
        return before

    def set_tags(self, version: str | int, tags: dict[str, Any]) -> dict[str, str]:
        """Set the tags whose value differs; returns those it changed."""
        existing = self.version(version).tags
        changed = {k: str(v) for k, v in tags.items() if existing.get(k) != str(v)}
        for key, value in changed.items():
            self._call(
                f"tag v{version}",
                lambda k=key, v=value: self.client.set_model_version_tag(self.model_name, str(version), k, v),
            )
        return changed

    def delete_tags(self, version: str | int, keys: list[str]) -> list[str]:
        """Remove those of ``keys`` the version carries (one read); returns the keys removed."""
        present = [key for key in keys if key in self.version(version).tags]
        for key in present:
            self._call(
                f"untag v{version}",
                lambda k=key: self.client.delete_model_version_tag(self.model_name, str(version), k),
            )
        return present

    def set_description(self, version: str | int, description: str) -> bool:
        """Replace the version's description; False when it already reads so."""
        if (self.version(version).description or "") == description:
            return False
        self._call(
            f"describe v{version}",
            lambda: self.client.update_model_version(self.model_name, str(version), description=description),
        )
        return True
