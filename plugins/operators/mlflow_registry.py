"""Thin, templated operators for MLflow registry actions. Each is idempotent: a retry or a rerun
writes nothing when the registry is already as asked, and never moves an alias twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class _RegistryOperator(BaseOperator):
    """Common arguments: the registered model, and where the registry is (see MlflowRegistryHook)."""

    ui_color = "#d5f0e3"

    def __init__(
        self, *, model_name: str, mlflow_conn_id: str | None = None, runway_env: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.mlflow_conn_id = mlflow_conn_id
        self.runway_env = runway_env

    @property
    def hook(self):
        from hooks.mlflow_registry import MlflowRegistryHook

        return MlflowRegistryHook(mlflow_conn_id=self.mlflow_conn_id, runway_env=self.runway_env)


class DeleteModelAliasOperator(_RegistryOperator):
    """Remove ``alias`` from the model — only while it points at ``only_version``, when given (so a
    retry never removes the alias another version took meanwhile); a no-op when it is not set."""

    template_fields: Sequence[str] = ("model_name", "alias", "only_version")

    def __init__(self, *, alias: str, only_version: str | int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.alias = alias
        self.only_version = only_version

    def execute(self, context) -> dict[str, Any]:
        only = self.only_version if self.only_version not in (None, "") else None
        previous = self.hook.registry(self.model_name).delete_alias(self.alias, only_from=only)
        return {
            "model": self.model_name,
            "alias": self.alias,
            "previous": previous,
            "changed": previous is not None,
        }


class SetModelVersionTagsOperator(_RegistryOperator):
    """Set tags (and optionally the description) of a version, given by number or alias."""

    template_fields: Sequence[str] = ("model_name", "version", "alias", "tags", "description")
    template_fields_renderers = {"tags": "json", "description": "md"}

    def __init__(
        self,
        *,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        version: str | int | None = None,
        alias: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tags = tags or {}
        self.description = description
        self.version = version
        self.alias = alias

    def execute(self, context) -> dict[str, Any]:
        registry = self.hook.registry(self.model_name)
        version = registry.resolve(self.version, self.alias)
        changed = registry.set_tags(version, self.tags)
        described = self.description is not None and registry.set_description(version, self.description)
        return {
            "model": self.model_name,
            "version": version,
            "changed_tags": changed,
            "description_changed": described,
        }


class RecordApprovalOperator(_RegistryOperator):
    """A person's decision in Airflow (a HITL response) as the version's approval record: the
    person Airflow's auth manager authenticated, ``approval.via: airflow``, and the MLflow identity
    of the task that wrote it. ``person`` comes from the HITL task's result, never from a Param."""

    template_fields: Sequence[str] = ("model_name", "version", "person", "answered_at")

    def __init__(self, *, version: str, decision: str, person: str, answered_at: str, **kwargs):
        super().__init__(**kwargs)
        self.version = version
        self.decision = decision
        self.person = person
        self.answered_at = answered_at

    def execute(self, context) -> dict[str, Any]:
        from jobs.release.promotion import VIA_AIRFLOW, approval_tags

        hook = self.hook
        registry = hook.registry(self.model_name)
        tags = approval_tags(self.decision, self.person, VIA_AIRFLOW, hook.identity().name, self.answered_at)
        changed = registry.set_tags(registry.resolve(self.version, None), tags)
        return {"model": self.model_name, "version": str(self.version), "changed_tags": changed}
