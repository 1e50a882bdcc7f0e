"""Thin, templated operators for MLflow registry actions. Each is idempotent: a retry or a rerun
writes nothing when the registry is already as asked, and never moves an alias twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.runway_job import RunwayJobOperator


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


class SetModelAliasOperator(_RegistryOperator):
    """Point ``alias`` at a model version (given as a number, or as another alias to copy)."""

    template_fields: Sequence[str] = ("model_name", "alias", "version", "from_alias")

    def __init__(
        self, *, alias: str, version: str | int | None = None, from_alias: str | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.alias = alias
        self.version = version
        self.from_alias = from_alias

    def execute(self, context) -> dict[str, Any]:
        hook = self.hook
        version = hook.resolve_version(self.model_name, self.version, self.from_alias)
        previous = hook.set_alias(self.model_name, self.alias, version)
        return {"model": self.model_name, "alias": self.alias, "version": version, "previous": previous,
                "changed": previous != version}  # fmt: skip


class DeleteModelAliasOperator(_RegistryOperator):
    """Remove ``alias`` from the model (a no-op when it is not set)."""

    template_fields: Sequence[str] = ("model_name", "alias")

    def __init__(self, *, alias: str, **kwargs):
        super().__init__(**kwargs)
        self.alias = alias

    def execute(self, context) -> dict[str, Any]:
        previous = self.hook.delete_alias(self.model_name, self.alias)
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
        hook = self.hook
        version = hook.resolve_version(self.model_name, self.version, self.alias)
        changed = hook.set_version_tags(self.model_name, version, self.tags)
        described = self.description is not None and hook.set_description(
            self.model_name, version, self.description
        )
        return {
            "model": self.model_name,
            "version": version,
            "changed_tags": changed,
            "description_changed": described,
        }


class PromoteChampionOperator(RunwayJobOperator):
    """Move ``Champion`` to the Challenger that won its comparison, with an audit record in Delta
    (``jobs.promote promote``). A retry of the same run never moves the alias twice."""

    template_fields: Sequence[str] = ("arguments", "approved_by")

    def __init__(self, *, env: str, approved_by: str = "auto", **kwargs):
        self.approved_by = approved_by
        super().__init__(job="promote", arguments=["promote", "--run-id", "{{ run_id }}"], env=env, **kwargs)

    def job_arguments(self) -> list[Any]:
        return [*self.arguments, "--approved-by", self.approved_by]


class RollbackChampionOperator(RunwayJobOperator):
    """Move ``Champion`` back to the version it replaced, from the audit trail (``jobs.promote rollback``)."""

    template_fields: Sequence[str] = ("arguments", "requested_by", "reason")

    def __init__(self, *, env: str, requested_by: str, reason: str, **kwargs):
        self.requested_by = requested_by
        self.reason = reason
        super().__init__(job="promote", arguments=["rollback", "--run-id", "{{ run_id }}"], env=env, **kwargs)

    def job_arguments(self) -> list[Any]:
        return [*self.arguments, "--requested-by", self.requested_by, "--reason", self.reason]
