"""Data-quality checks with Great Expectations, on Spark DataFrames.

A suite (GX JSON in a use case's ``expectations/`` folder) mixes two kinds of expectation, told apart by
``meta.severity`` (default: ``quarantine`` for per-row expectations, ``fail`` for the rest):

- ``quarantine``: rows that fail go to the quarantine table with the names of what they failed;
- ``fail``: table-level checks (columns, volume, null rates) that stop the pipeline.

Every validation result is saved as JSON where a user can open it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import math
import re
import sys
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.core.errors import BadInputError, GateFailedError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger("runway.quality")

ROW_KEY = "_row_key"
QUARANTINE, FAIL = "quarantine", "fail"
INDEX_META = "runway_index"


class QualityGateError(GateFailedError):
    """Table-level expectations failed; the message summarises which and what was observed."""


@dataclass
class Expectation:
    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        declared = self.meta.get("severity")
        if declared in (QUARANTINE, FAIL):
            return declared
        if declared is not None:
            raise BadInputError(
                f"expectation {self.type}: severity must be '{QUARANTINE}' or '{FAIL}', not {declared!r}"
            )
        return QUARANTINE if _is_row_level(self.type) else FAIL

    def describe(self, parameters: dict[str, Any] | None = None) -> str:
        """``type(column, arg=value, ...)``, suite parameters shown with the values used."""
        parameters = parameters or {}

        def shown(value: Any) -> Any:
            if isinstance(value, dict) and "$PARAMETER" in value:
                return parameters.get(value["$PARAMETER"], f"${value['$PARAMETER']}")
            return value

        args = ", ".join(f"{k}={shown(v)}" for k, v in self.kwargs.items() if k != "column")
        column = self.kwargs.get("column")
        inner = ", ".join(x for x in (column, args) if x)
        return f"{self.type}({inner})"


_gx_import: threading.Thread | None = None
_gx_lock = threading.Lock()

# Packages GX imports at start-up for features the pipeline's validations do not use (altair: data
# docs charts; scipy.stats: distributional expectations): a third of GX's import time. Loaded on
# first use instead (importlib's LazyLoader), so a suite that needs them still gets them.
GX_LAZY_IMPORTS = ("altair", "scipy.stats")


class _LazyImports(importlib.abc.MetaPathFinder):
    """Import ``names`` lazily: the module object exists at once, its code runs on first access."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.names:
            return None
        for finder in sys.meta_path:  # the real finders locate it; sys.meta_path is left as it is
            if finder is not self and (spec := finder.find_spec(name, path, target)) is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


def preload_gx() -> None:
    """Start importing Great Expectations in the background (it takes seconds), to overlap it with
    other start-up work; every use of GX here waits for that import to finish first."""
    global _gx_import
    with _gx_lock:
        if _gx_import is None:
            if not any(name in sys.modules for name in GX_LAZY_IMPORTS):
                sys.meta_path.insert(0, _LazyImports(GX_LAZY_IMPORTS))
            _gx_import = threading.Thread(
                target=importlib.import_module, args=("great_expectations",), name="gx-import", daemon=True
            )
            _gx_import.start()


def _gx_ready() -> None:
    """Wait for a background import of GX: a suite loaded while it runs sees a partly initialised
    package (``ExpectationNotFoundError`` for expectations that exist)."""
    if _gx_import is not None:
        _gx_import.join()


@cache
def _is_row_level(expectation_type: str) -> bool:
    _gx_ready()
    from great_expectations.expectations.expectation import ColumnMapExpectation, MulticolumnMapExpectation
    from great_expectations.expectations.registry import get_expectation_impl

    impl = get_expectation_impl(expectation_type)
    return issubclass(impl, ColumnMapExpectation | MulticolumnMapExpectation)


def load_suite(path: Path) -> tuple[str, list[Expectation]]:
    """Read a GX suite JSON (a use case's ``expectations/<file>``); returns its name and expectations."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"expectation suite {path} not found") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"expectation suite {path} is not valid JSON: {exc}") from None
    expectations = [
        Expectation(e["type"], e.get("kwargs", {}), e.get("meta", {})) for e in raw["expectations"]
    ]
    for expectation in expectations:
        if not _exists(expectation.type):
            raise BadInputError(
                f"expectation suite {path}: unknown expectation type {expectation.type!r} (not in Great "
                "Expectations)"
            )
        try:
            expectation.severity  # noqa: B018 - validates severities at load time
        except BadInputError as exc:
            raise BadInputError(f"expectation suite {path}: {exc}") from None
    return raw.get("name", path.stem), expectations


@cache
def _exists(expectation_type: str) -> bool:
    _gx_ready()
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        get_expectation_impl(expectation_type)
    except Exception:  # GX's ExpectationNotFoundError
        return False
    return True


@dataclass
class ValidationOutcome:
    success: bool
    result: dict[str, Any]
    failed: list[str]  # readable lines, one per failed expectation
    row_failures: dict[str, list[str]]  # row key -> failed expectations (quarantine severity)
    report_path: Path | None = None

    def summary(self) -> str:
        stats = self.result.get("statistics", {})
        head = (
            f"{stats.get('successful_expectations', 0)}/{stats.get('evaluated_expectations', 0)} "
            "expectations passed"
        )
        return head + "".join(f"\n  - {line}" for line in self.failed)


def _context():
    _gx_ready()
    import great_expectations as gx  # after _gx_ready: a background import must finish first

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic
        pass
    return context


def _observed(result: dict[str, Any]) -> str:
    body = result.get("result", {})
    if "observed_value" in body:
        return f"observed {body['observed_value']}"
    if "unexpected_count" in body:
        return f"{body['unexpected_count']} of {body.get('element_count')} rows unexpected"
    if result.get("exception_info", {}).get("raised_exception"):
        return "error: " + str(result["exception_info"].get("exception_message"))
    return "failed"


def resolve_parameters(parameters: dict[str, Any], expectations: list[Expectation]) -> dict[str, Any]:
    """Check that every ``$PARAMETER`` a suite uses is given."""
    wanted = set(re.findall(r'"\$PARAMETER":\s*"([^"]+)"', json.dumps([e.kwargs for e in expectations])))
    missing = sorted(wanted - set(parameters))
    if missing:
        raise BadInputError(
            f"expectation suite needs parameters {missing}; set them in the source's `quality` config"
        )
    return {k: parameters[k] for k in wanted}


def validate(
    df: DataFrame,
    suite_name: str,
    expectations: list[Expectation],
    *,
    severity: str,
    parameters: dict[str, Any] | None = None,
    report_path: Path | None = None,
    backend: str = "spark",
) -> ValidationOutcome:
    """Run the ``severity`` part of a suite on ``df`` (a Spark DataFrame, or pandas with the ``pandas``
    backend; for the quarantine severity it carries a ``_row_key`` column).

    ``backend`` is GX's execution engine: ``spark`` validates the Spark DataFrame where it lives (a
    cluster); ``pandas`` first collects it to the driver, much faster for what fits in one process
    (the ``local`` engine already moves every row through the driver to write Delta).
    """
    if backend not in ("spark", "pandas"):
        raise BadInputError(f"unknown validation backend {backend!r}")
    _gx_ready()
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    chosen = [e for e in expectations if e.severity == severity]
    if not chosen:
        return ValidationOutcome(True, {"success": True, "results": [], "statistics": {}}, [], {}, None)
    context = _context()
    suite = context.suites.add(
        ExpectationSuite(
            name=f"{suite_name}.{severity}",
            expectations=[
                ExpectationConfiguration(type=e.type, kwargs=e.kwargs, meta={**e.meta, INDEX_META: i})
                for i, e in enumerate(chosen)
            ],
        )
    )
    source = (
        context.data_sources.add_spark("runway")
        if backend == "spark"
        else context.data_sources.add_pandas("runway")
    )
    frame = df if backend == "spark" or not hasattr(df, "toPandas") else df.toPandas()  # pandas as is
    batch = (
        source.add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    if severity == QUARANTINE:
        result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]}
    used = resolve_parameters(parameters or {}, chosen)
    outcome = batch.validate(suite, result_format=result_format, expectation_parameters=used)
    result = outcome.to_json_dict()
    failed, row_failures = [], {}
    for item in result["results"]:
        if item["success"]:
            continue
        # GX does not keep the suite's order: find the expectation by the index we tagged it with.
        expectation = chosen[item["expectation_config"]["meta"][INDEX_META]]
        failed.append(f"{expectation.describe(used)}: {_observed(item)}")
        for row in item.get("result", {}).get("unexpected_index_list") or []:
            row_failures.setdefault(row[ROW_KEY], []).append(expectation.describe(used))
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        # Per-row lists can be long; the quarantine table holds them, the report keeps counts.
        for item in result["results"]:
            body = item.get("result", {})
            for key in ("unexpected_index_list", "unexpected_list", "partial_unexpected_index_list"):
                if key in body and len(body[key]) > 50:
                    body[key] = body[key][:50] + [f"... {len(body[key]) - 50} more"]
        report_path.write_text(json.dumps(result, indent=2, default=str))
    return ValidationOutcome(result["success"], result, failed, row_failures, report_path)


def volume_parameters(quality: dict[str, Any], days: int, fraction: float) -> dict[str, Any]:
    """Suite parameters with ``min_rows``/``max_rows`` scaled from per-day bounds to the interval."""
    parameters = dict(quality)
    if "min_rows_per_day" in quality:
        parameters["min_rows"] = math.floor(float(quality["min_rows_per_day"]) * days * fraction)
    if "max_rows_per_day" in quality:
        parameters["max_rows"] = math.ceil(float(quality["max_rows_per_day"]) * days * fraction)
    return parameters
