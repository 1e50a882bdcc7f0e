"""Use cases as folders: selected by name or path, checked at load time (columns against the sources
and the gold SQL's dry-analysed output, suites against GX), and written by the scaffold."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from jobs.config.base import ConfigError
from jobs.config.loader import list_use_cases, load_config
from jobs.core.paths import config_dir
from jobs.features.use_case_check import check_use_case, check_use_case_once, fingerprint
from jobs.features.use_case_files import new_use_case
from tests.conftest import ROOT, TEST_USE_CASE
from tests.support import make_config


@pytest.fixture
def use_case(tmp_path, monkeypatch) -> Path:
    """A copy of the test use case, selected."""
    folder = tmp_path / "my_case"
    shutil.copytree(TEST_USE_CASE, folder)
    monkeypatch.setenv("RUNWAY_USE_CASE", str(folder))
    return folder


def edit(path: Path, change) -> None:
    tree = yaml.safe_load(path.read_text())
    change(tree)
    path.write_text(yaml.safe_dump(tree))


def model(tree):
    return tree["use_case"]["model"]


def test_the_tests_use_case_is_what_the_scaffold_writes(tmp_path):
    """tests/use_cases/tiny is `python -m jobs.use_case new tiny --start 2013-01-01`, byte for byte:
    the framework's tests exercise exactly what a new user starts from."""
    fresh = new_use_case("tiny", tmp_path, start=date(2013, 1, 1))
    compared = filecmp.dircmp(fresh, TEST_USE_CASE)
    mismatch = []

    def walk(cmp):
        mismatch.extend(cmp.diff_files + cmp.left_only + cmp.right_only)
        for sub in cmp.subdirs.values():
            walk(sub)

    walk(compared)
    assert not mismatch, f"regenerate tests/use_cases/tiny with the scaffold: {mismatch}"


def test_use_cases_are_selected_by_name_or_path(monkeypatch):
    assert {"flight_delay", "seattle_weather"} <= set(list_use_cases())
    monkeypatch.setenv("RUNWAY_USE_CASE", "flight_delay")
    flights = load_config("dev")
    assert flights.use_case.name == "flight_delay" and flights.mlflow.experiment == "/runway/dev/flight_delay"
    assert flights.use_case.folder == ROOT / "include" / "use_cases" / "flight_delay"
    monkeypatch.setenv("RUNWAY_USE_CASE", str(TEST_USE_CASE))
    assert load_config("prod").registered_model_name == "prod.ml.tiny_classifier"
    monkeypatch.setenv("RUNWAY_USE_CASE", "churn")
    with pytest.raises(
        ConfigError, match=r"use case 'churn': .*churn/use_case.yaml not found .*'flight_delay'"
    ):
        load_config("dev")


def test_an_environment_selects_its_use_case_and_may_not_redefine_it_inline(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    monkeypatch.delenv("RUNWAY_USE_CASE")
    edit(configs / "staging.yaml", lambda t: t.update(use_case=str(TEST_USE_CASE)))
    assert load_config("staging", configs).use_case.name == "tiny"
    assert load_config("dev", configs).use_case.name == "flight_delay"  # base.yaml's default
    edit(configs / "prod.yaml", lambda t: t.update(use_case={"model": {"name": "x"}}))
    with pytest.raises(ConfigError, match=r"prod.yaml: use_case: selects a use case folder by name"):
        load_config("prod", configs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: model(t)["features"].update(expected_to_move=["weekday"]),
            r"use_case.yaml: use_case.model.features.expected_to_move: .*\['weekday'\] are not among the "
            r"model's features",
        ),
        (
            lambda t: model(t)["features"]["numeric"].append("failed"),
            r"use_case.yaml: use_case.model: .*label 'failed' is also listed as a feature",
        ),
        (
            lambda t: t["use_case"]["seed"].update(date_columns=["day"]),
            r"use_case.yaml: use_case: .*seed.date_columns \['day'\] are not columns of daily source "
            r"'readings'",
        ),
        (
            lambda t: t["use_case"]["seed"].update(withheld_from_events=["outcome"]),
            r"use_case.yaml: use_case.seed.withheld_from_events: .*names \['outcome'\], which are not "
            r"columns of the streaming",
        ),
        (
            lambda t: t["use_case"]["sources"]["readings"].update(keys=["reading"]),
            r"use_case.sources.readings: .*keys \['reading'\] are not among the declared columns",
        ),
    ],
)
def test_config_level_mistakes_name_the_file_and_key(use_case, change, message):
    edit(use_case / "use_case.yaml", change)
    with pytest.raises(ConfigError, match=message):
        load_config("dev")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # before: an Arrow FieldRef error with the whole schema, at training time
        (
            lambda t: model(t)["features"]["numeric"].append("vibrato"),
            r"use_case.yaml: use_case.model.features.numeric: \['vibrato'\] not among the columns of the "
            r"gold SQL's output",
        ),
        (lambda t: model(t).update(label="broken"), r"use_case.model.label: \['broken'\] not among"),
        (lambda t: model(t).update(slices=["region"]), r"use_case.model.slices: \['region'\] not among"),
        (
            lambda t: t["use_case"]["features"].update(keys=["id"]),
            r"use_case.features.keys: \['id'\] not among",
        ),
        (
            lambda t: t["use_case"]["features"].update(date_column="day"),
            r"use_case.features.date_column: \['day'\] not among",
        ),
        (
            lambda t: t["use_case"]["sources"]["readings"].update(event_date="to_date(read_time)"),
            r"use_case.sources.readings.event_date: 'to_date\(read_time\)' does not analyse over the "
            r"source's columns",
        ),
    ],
)
def test_columns_are_checked_against_the_sources_and_the_sqls_dry_analysed_output(
    spark, use_case, change, message
):
    config = load_config("dev")
    assert "device_age" in check_use_case(spark, config).fieldNames()  # computed by the SQL, no data read
    edit(use_case / "use_case.yaml", change)
    with pytest.raises(ConfigError, match=message):
        check_use_case(spark, load_config("dev"), suites=False)


@pytest.mark.parametrize(
    "expression", ["to_date(read_time)", "to_date(reading_time,", "date_add(reading_time)"]
)
def test_a_bad_event_date_expression_is_one_sentence_without_a_java_trace(spark, use_case, expression, capfd):
    """Its sentence was buried under ~100 lines of JSON: PySpark's SQLQueryContextLogger logs the
    JVM's stack trace; a parse error's first line was empty."""
    edit(
        use_case / "use_case.yaml",
        lambda t: t["use_case"]["sources"]["readings"].update(event_date=expression),
    )
    with pytest.raises(ConfigError) as raised:
        check_use_case(spark, load_config("dev"), suites=False)
    said = str(raised.value)
    assert len(said.splitlines()) == 1 and "does not analyse" in said
    assert said.split("columns: ", 1)[1].strip()  # the reason itself, not an empty first line
    printed = capfd.readouterr()
    assert "at org.apache.spark" not in printed.out + printed.err and "Py4JJavaError" not in printed.err


def test_a_feature_sql_that_does_not_analyse_names_the_sql_file(spark, use_case):
    sql = next((use_case / "sql").glob("*.sql"))
    sql.write_text(sql.read_text().replace("w.humidity", "w.humidty"))
    with pytest.raises(ConfigError, match=rf"{sql.name}: the feature SQL does not analyse .*humidty"):
        check_use_case(spark, load_config("dev"))


def test_suites_must_use_gx_expectations_on_their_sources_columns(spark, use_case):
    suite = use_case / "expectations" / "silver_readings.json"
    text = suite.read_text()
    suite.write_text(text.replace('"column": "device_id"', '"column": "device"'))
    with pytest.raises(
        ConfigError, match=r"silver_readings.json: expect_column_values_to_not_be_null names \['device'\]"
    ):
        check_use_case(spark, load_config("dev"))
    suite.write_text(
        text.replace("expect_column_values_to_not_be_null", "expect_column_values_to_not_be_nul")
    )
    with pytest.raises(
        Exception,
        match=r"silver_readings.json: unknown expectation type 'expect_column_values_to_not_be_nul'",
    ):
        check_use_case(spark, load_config("dev"))


def test_a_passed_check_is_recorded_once_and_an_edited_use_case_is_checked_again(spark, use_case, tmp_path):
    """The pipeline's tasks check once per use case content: a pass is recorded under its
    fingerprint; an edited SQL or suite has another fingerprint, and its mistake is caught."""
    config = make_config(tmp_path)
    records = Path(config.storage.reports_root) / "dev" / "use_case_checks"
    check_use_case_once(spark, config, suites=False)
    [record] = records.glob("*.json")
    assert record.stem == fingerprint(config) and json.loads(record.read_text())["suites"] is False
    check_use_case_once(spark, config)  # suites were not checked yet: checked now, recorded
    assert json.loads(record.read_text())["suites"] is True
    record.write_text(json.dumps({**json.loads(record.read_text()), "checked": "once"}))
    check_use_case_once(spark, config)  # the same content: not checked again
    assert json.loads(record.read_text())["checked"] == "once"
    record.write_text('{"suites": tr')  # a torn record (a task killed mid-write before the atomic rename)
    check_use_case_once(spark, config)  # is no pass: checked again, rewritten whole
    assert json.loads(record.read_text())["suites"] is True

    sql = next((use_case / "sql").glob("*.sql"))
    sql.write_text(sql.read_text().replace("w.humidity", "w.humidty"))
    edited = make_config(tmp_path)
    assert fingerprint(edited) != record.stem
    with pytest.raises(ConfigError, match="humidty"):
        check_use_case_once(spark, edited)
    assert [p.stem for p in records.glob("*.json")] == [record.stem]  # a failure is not recorded


def test_a_new_use_case_from_the_scaffold_loads_checks_and_seeds(spark, tmp_path, monkeypatch):
    """`make use-case NAME=...` as a new user runs it: the folder it writes is selected, passes every
    check and seeds a landing zone."""
    result = subprocess.run(
        [sys.executable, "-m", "jobs.use_case", "new", "pumps", "--dir", str(tmp_path), "--days", "30"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "RUNWAY_USE_CASE=pumps" in result.stdout
    monkeypatch.setenv("RUNWAY_USE_CASE", str(tmp_path / "pumps"))
    config = load_config("dev")
    assert config.use_case.name == "pumps" and config.registered_model_name == "dev.ml.pumps_classifier"
    check_use_case(spark, config)
    from jobs.core.window import Window
    from jobs.features.seed import seed

    written = seed(
        config,
        Window(config.use_case.start_date, config.use_case.start_date.replace(day=3)),
        tmp_path / "landing",
    )
    assert written["readings"] > 40 and written["site_weather"] == 6 and written["devices"] == 24
    again = subprocess.run(
        [sys.executable, "-m", "jobs.use_case", "new", "pumps", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert again.returncode == 2 and "exists already" in again.stderr
