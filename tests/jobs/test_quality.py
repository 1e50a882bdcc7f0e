"""Great Expectations checks: severities, parameters, and the same verdict on both GX backends."""

from __future__ import annotations

import json

import pytest

from jobs.features.quality import FAIL, QUARANTINE, Expectation, load_suite, validate, volume_parameters

EXPECTATIONS = [
    Expectation("expect_column_values_to_be_between", {"column": "speed", "min_value": 0, "max_value": 150}),
    Expectation(
        "expect_column_values_to_be_in_set", {"column": "origin", "value_set": ["EWR", "JFK", "LGA"]}
    ),
    Expectation("expect_column_values_to_not_be_null", {"column": "origin"}),
    Expectation("expect_table_row_count_to_be_between", {"min_value": {"$PARAMETER": "min_rows"}}),
]


@pytest.fixture
def frame(spark):
    rows = [
        ("k1", "EWR", 10.0),
        ("k2", "XXX", 12.0),
        ("k3", "JFK", 1048.0),
        ("k4", None, 5.0),
        ("k5", "LGA", None),
    ]
    return spark.createDataFrame(rows, "_row_key string, origin string, speed double")


def test_severity_defaults_to_quarantine_for_row_checks_and_fail_for_table_checks():
    assert [e.severity for e in EXPECTATIONS] == [QUARANTINE, QUARANTINE, QUARANTINE, FAIL]
    with pytest.raises(ValueError, match="severity must be"):
        _ = Expectation("expect_column_values_to_not_be_null", {"column": "x"}, {"severity": "warn"}).severity


@pytest.mark.parametrize("backend", ["pandas", "spark"])
def test_row_failures_name_each_failed_expectation(frame, backend, tmp_path):
    outcome = validate(
        frame, "t", EXPECTATIONS, severity=QUARANTINE, backend=backend, report_path=tmp_path / "r.json"
    )
    assert outcome.success is False
    assert outcome.row_failures == {
        "k2": ["expect_column_values_to_be_in_set(origin, value_set=['EWR', 'JFK', 'LGA'])"],
        "k3": ["expect_column_values_to_be_between(speed, min_value=0, max_value=150)"],
        "k4": ["expect_column_values_to_not_be_null(origin)"],
    }
    assert json.loads((tmp_path / "r.json").read_text())["success"] is False


@pytest.mark.parametrize("backend", ["pandas", "spark"])
def test_table_checks_use_parameters_and_summarise(frame, backend):
    passed = validate(frame, "t", EXPECTATIONS, severity=FAIL, parameters={"min_rows": 5}, backend=backend)
    failed = validate(frame, "t", EXPECTATIONS, severity=FAIL, parameters={"min_rows": 6}, backend=backend)
    assert passed.success and not failed.success
    assert (
        "expect_table_row_count_to_be_between(min_value=6): observed 5" in failed.summary()
    )  # the bound used, not {'$PARAMETER': 'min_rows'}
    assert "PARAMETER" not in failed.summary()


def test_a_missing_parameter_is_a_clear_error(frame):
    with pytest.raises(ValueError, match=r"needs parameters \['min_rows'\]"):
        validate(frame, "t", EXPECTATIONS, severity=FAIL, parameters={}, backend="pandas")


def test_volume_bounds_scale_with_days_and_sample():
    params = volume_parameters(
        {"min_rows_per_day": 500, "max_rows_per_day": 1500, "other": 0.9}, days=3, fraction=0.25
    )
    assert params == {
        "min_rows_per_day": 500,
        "max_rows_per_day": 1500,
        "other": 0.9,
        "min_rows": 375,
        "max_rows": 1125,
    }


def test_the_use_cases_suites_load():
    from jobs.config.loader import load_config

    use_case = load_config("dev").use_case
    suites = [
        use_case.file("expectations", s.expectations) for s in use_case.sources.values() if s.expectations
    ]
    assert len(suites) == 2
    for path in suites:
        name, expectations = load_suite(path)
        assert {e.severity for e in expectations} == {QUARANTINE, FAIL}


def test_a_suite_loads_while_gx_is_still_being_imported_in_the_background():
    """Finding 8: the gate imported GX in a thread and loaded the suite before it finished
    (ExpectationNotFoundError for expect_column_values_to_not_be_null). A fresh interpreter, as a job."""
    import subprocess
    import sys

    from tests.conftest import TEST_USE_CASE

    suite = TEST_USE_CASE / "expectations" / "silver_readings.json"
    script = (
        "from pathlib import Path\n"
        "from jobs.features import quality\n"
        "quality.preload_gx()\n"
        f"name, expectations = quality.load_suite(Path({str(suite)!r}))\n"
        "print(name, len(expectations), {e.severity for e in expectations})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "quarantine" in done.stdout and "fail" in done.stdout


def test_gx_imports_what_validations_do_not_use_lazily_and_still_has_it_on_use():
    """A job's GX import defers GX_LAZY_IMPORTS (a third of its import time); a validation runs
    without loading them, and a suite that needs them (a distributional expectation) still gets them."""
    import subprocess
    import sys

    script = (
        "import sys, pandas as pd\n"
        "from jobs.features import quality\n"
        "quality.preload_gx(); quality._gx_ready()\n"
        "lazy = lambda: sorted(n for n in quality.GX_LAZY_IMPORTS if type(sys.modules[n]).__name__ == "
        "'_LazyModule')\n"
        "print('deferred', lazy())\n"
        "class Rows:\n"
        "    def __init__(self, frame): self.frame = frame\n"
        "    def toPandas(self): return self.frame\n"
        "rows = Rows(pd.DataFrame({'_row_key': ['a', 'b'], 'x': [1.0, 9.0]}))\n"
        "between = quality.Expectation('expect_column_values_to_be_between', {'column': 'x', 'min_value': 0, "
        "'max_value': 5})\n"
        "print('rows', quality.validate(rows, 's', [between], severity='quarantine', "
        "backend='pandas').row_failures)\n"
        "print('after a validation', lazy())\n"
        "ks = quality.Expectation('expect_column_kl_divergence_to_be_less_than', {'column': 'x', "
        "'partition_object': "
        "{'bins': [0, 5, 10], 'weights': [0.5, 0.5]}, 'threshold': 0.1}, {'severity': 'fail'})\n"
        "print('distributional', quality.validate(rows, 's', [ks], severity='fail', "
        "backend='pandas').success, lazy())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deferred ['altair', 'scipy.stats']" in done.stdout
    assert "rows {'b': ['expect_column_values_to_be_between(x, min_value=0, max_value=5)']}" in done.stdout
    assert "after a validation ['altair', 'scipy.stats']" in done.stdout
    assert "distributional True ['altair']" in done.stdout  # scipy.stats loaded on first use


@pytest.mark.parametrize("meta", [{}, {"severity": "fail"}])
def test_a_misspelled_expectation_type_names_the_suite_file(tmp_path, meta):
    """Before: dropped with a GX traceback (exit 0) when a severity was given, else a retryable crash."""
    from jobs.core.errors import BadInputError
    from jobs.features.quality import load_suite

    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            {
                "name": "s",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "x"}, "meta": meta}
                ],
            }
        )
    )
    with pytest.raises(
        BadInputError, match=rf"{suite}: unknown expectation type 'expect_column_values_to_not_be_nul'"
    ):
        load_suite(suite)
