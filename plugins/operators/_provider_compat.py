"""The providers' private APIs Runway relies on, in one place, each checked against the provider
release it was written for.

Runway's operators subclass the providers' operators through their public extension points. Three
needs have none, so this module reaches into them, and nowhere else does:

- ``DatabricksSubmitRunOperator._prepare_submit_json`` (databricks provider): DAG Params must stay
  out of ``python_wheel_task.named_parameters``, which Databricks rejects beside the job's own
  command line. Pinned by the golden-payload tests.
- ``SparkSubmitOperator._get_hook`` / ``_hook`` and ``SparkSubmitHook._process_spark_submit_log``
  (apache-spark provider): the job's result travels in the driver's output lines, which the hook
  reads and keeps to itself. Pinned by the spark-submit mode's end-to-end tests.

Each use first checks the installed provider's ``major.minor`` against the one written for and, on
another, fails with one sentence naming both, rather than misbehaving in a way a test may not see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any


class ProviderVersionError(RuntimeError):
    """An installed provider is not the release Runway's compatibility code was written for."""


@dataclass(frozen=True)
class PrivateApi:
    """A provider's private name Runway uses, and the provider release (``major.minor``) it fits."""

    package: str
    written_for: str
    name: str

    def check(self) -> None:
        try:
            installed = version(self.package)
        except PackageNotFoundError:
            raise ProviderVersionError(f"{self.package} is not installed; {self.name} needs it") from None
        if ".".join(installed.split(".")[:2]) != self.written_for:
            raise ProviderVersionError(
                f"{self.package} {installed} is installed, but Runway's use of its private {self.name} "
                f"was written for {self.written_for}.x: check plugins/operators/_provider_compat.py "
                "against the new release and update it with the pin"
            )


DATABRICKS_SUBMIT_JSON = PrivateApi(
    "apache-airflow-providers-databricks", "7.23", "DatabricksSubmitRunOperator._prepare_submit_json"
)
SPARK_SUBMIT_LOG = PrivateApi(
    "apache-airflow-providers-apache-spark", "6.3", "SparkSubmitHook._process_spark_submit_log"
)


class WheelTaskSubmitJson:
    """Mixin for a ``DatabricksSubmitRunOperator`` whose ``runs/submit`` body comes from
    ``submit_json(context)``: the provider then merges and normalises it as usual, and the Params it
    adds as ``named_parameters`` are taken out again."""

    def submit_json(self, context: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _prepare_submit_json(self, context: Any) -> dict[str, Any]:
        DATABRICKS_SUBMIT_JSON.check()
        self.json = self.submit_json(context)
        payload = super()._prepare_submit_json(context)
        for task in payload.get("tasks", []):
            task.get("python_wheel_task", {}).pop("named_parameters", None)
        return payload


def spark_submit_hook_seeing_lines(operator: Any, on_line: Callable[[str], None]) -> Any:
    """The ``SparkSubmitOperator``'s hook, made as the operator makes it, with every line of the
    submission's output also given to ``on_line`` (while the provider reads it as usual)."""
    SPARK_SUBMIT_LOG.check()
    operator._hook = hook = operator._get_hook()
    process_log = hook._process_spark_submit_log

    def tee(itr: Iterator[Any]) -> None:
        def lines_seen() -> Iterator[Any]:
            for line in itr:
                on_line(str(line))
                yield line

        process_log(lines_seen())

    hook._process_spark_submit_log = tee
    return hook
