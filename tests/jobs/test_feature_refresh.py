"""Feature refresh on the test use case's days with bad input injected: quarantine or a clear error,
and the good rows always land."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from jobs.core.errors import MissingInputError
from jobs.core.window import Window
from jobs.features.pipeline import type_rows
from jobs.features.quality import QualityGateError
from jobs.features.refresh import JobContext, run_bronze, run_gate, run_gold, run_silver, staged
from jobs.features.seed import seed
from tests.support import content_checksum, make_config

DAY1, DAY2 = date(2013, 1, 1), date(2013, 1, 2)
WINDOW = Window(DAY1, date(2013, 1, 3))


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    return lines[0], lines[1:]


def write_csv(path: Path, header: list[str], body: list[list[str]], extra_raw: str = "") -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
        handle.write(extra_raw)


@pytest.fixture(scope="module")
def corrupted(spark, tmp_path_factory):
    """Two days; day 2's readings get a malformed line, a bad integer, a duplicate and an unknown
    site; day 2's site weather keeps its rows. Runs bronze, silver, gate and gold once."""
    config = make_config(tmp_path_factory.mktemp("refresh"))
    seed(config, WINDOW)
    path = Path(config.storage.landing_root) / "readings" / f"{DAY2}.csv"
    header, body = read_csv(path)
    col = {name: i for i, name in enumerate(header)}
    bad_int, bad_site = list(body[0]), list(body[1])
    bad_int[col["hour"]] = "12h30"
    bad_site[col["site"]] = "XXX"
    body = [bad_int, bad_site, *body[2:], list(body[2])]  # body[2] twice: a duplicate
    write_csv(path, header, body, extra_raw="this,line,is,not,a,reading\n")
    ctx = JobContext.open(config, "test-run")
    results = {
        step: fn(ctx, WINDOW)
        for step, fn in [
            ("bronze", run_bronze),
            ("silver", run_silver),
            ("gate", run_gate),
            ("gold", run_gold),
        ]
    }
    return {"ctx": ctx, "results": results, "bad_int": bad_int, "bad_site": bad_site, "day2_rows": len(body)}


def quarantine(ctx, **where):
    rows = ctx.store.read(ctx.store.name("silver", "quarantine")).collect()
    return [r for r in rows if all(getattr(r, k) == v for k, v in where.items())]


def test_malformed_line_is_quarantined_in_bronze(corrupted):
    ctx = corrupted["ctx"]
    [bad] = quarantine(ctx, source="readings", layer="bronze")
    assert bad.record == "this,line,is,not,a,reading"
    assert bad.failed_checks == ["malformed line"] and bad.run_id == "test-run" and bad.file_date == DAY2
    bronze = ctx.store.read(
        ctx.store.name("bronze", "readings"), window=("_file_date", DAY2, date(2013, 1, 3))
    )
    assert bronze.count() == corrupted["day2_rows"]  # every well-formed line, with ingestion metadata
    assert {r._run_id for r in bronze.select("_run_id").distinct().collect()} == {"test-run"}


def test_bad_values_duplicates_and_failed_expectations_are_quarantined_with_reasons(corrupted):
    rows = [
        (json.loads(r.record), r.failed_checks)
        for r in quarantine(corrupted["ctx"], source="readings", layer="silver")
    ]
    assert len(rows) == 3
    by_kind = {
        "bad_int": [checks for record, checks in rows if record["hour"] == "12h30"],
        "bad_site": [checks for record, checks in rows if record["site"] == "XXX"],
        "duplicate": [
            checks for _, checks in rows if checks == ["duplicate of a row with the same natural key"]
        ],
    }
    assert by_kind["bad_int"] == [["invalid int in hour: '12h30'"]]
    assert len(by_kind["bad_site"]) == 1
    assert any(c.startswith("expect_column_values_to_be_in_set(site") for c in by_kind["bad_site"][0])
    assert len(by_kind["duplicate"]) == 1


def test_good_rows_land_in_silver(corrupted):
    ctx = corrupted["ctx"]
    silver = ctx.store.read(ctx.store.name("silver", "readings"))
    day2 = silver.where(f"event_date = '{DAY2}'").count()
    assert day2 == corrupted["day2_rows"] - 3  # bad int, bad site, one copy of the duplicate
    assert corrupted["results"]["silver"]["readings"] == {
        "rows": silver.count(),
        "quarantined": 3,
        "version": 0,
    }
    assert dict(silver.dtypes)["hour"] == "int" and dict(silver.dtypes)["read_at"] == "timestamp"


def test_gate_result_is_kept_where_a_user_can_open_it(corrupted):
    report = Path(corrupted["results"]["gate"]["readings"]["report"])
    result = json.loads(report.read_text())
    assert result["success"] is True
    types = {r["expectation_config"]["type"] for r in result["results"]}
    assert "expect_table_row_count_to_be_between" in types


def test_gold_has_one_row_per_good_reading_with_joined_features_and_its_label(corrupted):
    ctx = corrupted["ctx"]
    gold = ctx.store.read(ctx.store.name("gold", "tiny_features"))
    silver = ctx.store.read(ctx.store.name("silver", "readings"))
    assert gold.count() == silver.count() and gold.select("reading_id").distinct().count() == gold.count()
    assert gold.where("outdoor_temp IS NULL OR device_age IS NULL OR model IS NULL").count() == 0  # joins
    assert {r.failed for r in gold.select("failed").distinct().collect()} == {0, 1}
    assert {r.month for r in gold.select("month").distinct().collect()} == {1}


def test_rerun_of_bronze_and_silver_leaves_the_same_contents(corrupted):
    ctx = corrupted["ctx"]

    def snapshot():
        silver = content_checksum(ctx.store.read(ctx.store.name("silver", "readings")))
        q = content_checksum(ctx.store.read(ctx.store.name("silver", "quarantine")).drop("quarantined_at"))
        return silver, q

    before = snapshot()
    devices = [ctx.store.version(ctx.store.name(layer, "devices")) for layer in ("bronze", "silver")]
    bronze = run_bronze(ctx, WINDOW)
    silver = run_silver(ctx, WINDOW)
    assert snapshot() == before
    # An unchanged reference snapshot is not written again.
    assert bronze["devices"]["unchanged"] and silver["devices"]["unchanged"]
    assert [ctx.store.version(ctx.store.name(layer, "devices")) for layer in ("bronze", "silver")] == devices


def test_a_file_missing_a_column_is_a_clear_error(spark, tmp_path):
    config = make_config(tmp_path)
    seed(config, Window(DAY1, DAY2))
    path = Path(config.storage.landing_root) / "readings" / f"{DAY1}.csv"
    header, body = read_csv(path)
    drop = header.index("load_pct")
    write_csv(
        path,
        [h for i, h in enumerate(header) if i != drop],
        [[v for i, v in enumerate(r) if i != drop] for r in body],
    )
    with pytest.raises(ValueError, match=r"2013-01-01.csv is missing columns \['load_pct'\]"):
        run_bronze(JobContext.open(config, "r"), Window(DAY1, DAY2))


def test_a_missing_landing_file_is_a_clear_error(spark, tmp_path):
    config = make_config(tmp_path)
    seed(config, Window(DAY1, DAY2))
    with pytest.raises(MissingInputError, match="no landing file for source 'readings'.*2013-01-02.csv"):
        run_bronze(JobContext.open(config, "r"), Window(DAY1, date(2013, 1, 3)))


def test_an_empty_day_fails_the_gate_with_a_readable_summary(spark, tmp_path):
    config = make_config(tmp_path)
    seed(config, Window(DAY1, DAY2))
    path = Path(config.storage.landing_root) / "readings" / f"{DAY1}.csv"
    header, _ = read_csv(path)
    write_csv(path, header, [])
    ctx = JobContext.open(config, "r")
    run_bronze(ctx, Window(DAY1, DAY2))
    run_silver(ctx, Window(DAY1, DAY2))
    with pytest.raises(
        QualityGateError,
        match=r"(?s)readings \[2013-01-01, 2013-01-02\).*expect_table_row_count_to_be_between.*observed 0",
    ):
        run_gate(ctx, Window(DAY1, DAY2))


def test_a_source_all_of_whose_rows_were_quarantined_says_so_with_the_commonest_reasons(spark, tmp_path):
    """Dates in another format quarantined every row, and the gate said only "observed 0"."""
    config = make_config(tmp_path)
    seed(config, Window(DAY1, DAY2))
    path = Path(config.storage.landing_root) / "readings" / f"{DAY1}.csv"
    header, body = read_csv(path)
    for row in body:
        row[header.index("reading_date")] = "01/01/2013"
    write_csv(path, header, body)
    ctx = JobContext.open(config, "r")
    run_bronze(ctx, Window(DAY1, DAY2))
    run_silver(ctx, Window(DAY1, DAY2))
    with pytest.raises(QualityGateError) as failed:
        run_gate(ctx, Window(DAY1, DAY2))
    assert "observed 0" in str(failed.value)
    assert f"all {len(body)} rows of readings in [2013-01-01, 2013-01-02) were quarantined" in str(
        failed.value
    )
    assert (
        f"invalid date in reading_date ({len(body)} rows, e.g. invalid date in reading_date: '01/01/2013')"
        in str(failed.value)
    )


def test_seeding_nothing_is_an_error_naming_why(tmp_path):
    """`seed.date_columns` naming a column that is not a date seeded nothing and said ok: true."""
    from jobs.core.errors import BadInputError

    config = make_config(tmp_path)
    spec = config.use_case.seed.model_copy(update={"date_columns": ["site"]})
    undated = config.model_copy(update={"use_case": config.use_case.model_copy(update={"seed": spec})})
    with pytest.raises(
        BadInputError, match=r"date_columns \['site'\] give no row of source 'readings' a date"
    ):
        seed(undated, Window(DAY1, DAY2))
    with pytest.raises(
        BadInputError,
        match=r"no rows in \[2030-01-01, 2030-01-02\): its days run from 2013-01-01 to 2013-12-31",
    ):
        seed(config, Window(date(2030, 1, 1), date(2030, 1, 2)))


def test_text_dates_written_as_midnight_timestamps_seed_as_days():
    """A package's dates written `1985-01-01T00:00:00Z` made every row "invalid date"."""
    import pandas as pd

    from jobs.features.seed import _midnight_as_day

    values = pd.Series(["1985-01-01T00:00:00Z", "2013-01-05", "2013-01-05T13:00:00Z", "nope", None])
    assert _midnight_as_day(values).tolist() == [
        "1985-01-01",
        "2013-01-05",
        "2013-01-05T13:00:00Z",
        "nope",
        None,
    ]


def test_staging_keeps_a_deterministic_sample(spark, tmp_path):
    config = make_config(tmp_path, "staging")
    days = Window(DAY1, date(2013, 1, 6))
    seed(config, days)
    ctx = JobContext.open(config, "r")
    run_bronze(ctx, days)
    bronze = ctx.store.read(ctx.store.name("bronze", staged("readings")))  # awaiting the gate
    source = config.use_case.sources["readings"]
    first = sorted(r._row_key for r in type_rows(bronze, source, config.sample_fraction).collect())
    second = sorted(r._row_key for r in type_rows(bronze, source, config.sample_fraction).collect())
    assert first == second
    assert 0.15 * bronze.count() < len(first) < 0.35 * bronze.count()  # sample_fraction 0.25


def test_a_bad_redelivery_leaves_the_last_good_day_in_place_and_gold_refuses_it(spark, tmp_path):
    """Finding 6: a committed day's file replaced by a header-only file emptied bronze and silver
    before the gate looked, and a following gold step deleted the day's features."""
    config = make_config(tmp_path)
    day = Window(DAY1, DAY2)
    seed(config, day)
    ctx = JobContext.open(config, "good")
    for step in (run_bronze, run_silver, run_gate, run_gold):
        step(ctx, day)
    tables = [
        ctx.store.name(layer, name)
        for layer, name in (("bronze", "readings"), ("silver", "readings"), ("gold", "tiny_features"))
    ]
    before = [content_checksum(ctx.store.read(t)) for t in tables]
    path = Path(config.storage.landing_root) / "readings" / f"{DAY1}.csv"
    header, _ = read_csv(path)
    write_csv(path, header, [])  # the re-delivery
    bad = JobContext.open(config, "redelivery")
    run_bronze(bad, day)
    run_silver(bad, day)
    with pytest.raises(QualityGateError, match="nothing published"):
        run_gate(bad, day)
    with pytest.raises(
        QualityGateError,
        match=r"gold \[2013-01-01, 2013-01-02\) refused: readings 2013-01-01 failed its gate in run "
        r"redelivery",
    ):
        run_gold(bad, day)
    assert [content_checksum(ctx.store.read(t)) for t in tables] == before  # nothing good was lost
    assert before[0][0] > 30


def test_gold_refuses_a_window_the_gate_never_published(spark, tmp_path):
    config = make_config(tmp_path)
    seed(config, Window(DAY1, DAY2))
    ctx = JobContext.open(config, "r")
    run_bronze(ctx, Window(DAY1, DAY2))
    run_silver(ctx, Window(DAY1, DAY2))
    with pytest.raises(QualityGateError, match="readings 2013-01-01 was never published by the gate"):
        run_gold(ctx, Window(DAY1, DAY2))


@pytest.fixture
def one_day(spark, tmp_path):
    config = make_config(tmp_path)
    seed(config, Window(DAY1, DAY2))
    return config, Path(config.storage.landing_root) / "readings" / f"{DAY1}.csv"


def test_bytes_that_are_not_utf8_are_quarantined_with_file_line_and_column(one_day):
    """Finding 7: bad bytes early in a file rejected the day with a bare codec error; later in the
    file they landed in silver and gold as 'N3756\\ufffd'."""
    config, path = one_day
    header, body = read_csv(path)
    device = header.index("device_id")
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(body[0][device].encode(), body[0][device].encode() + b"\xe9", 1)
    lines[30] = lines[30].replace(body[29][device].encode(), b"N\xff" + body[29][device].encode(), 1)
    path.write_bytes(b"\n".join(lines))
    ctx = JobContext.open(config, "r")
    result = run_bronze(ctx, Window(DAY1, DAY2))
    assert result["readings"]["quarantined"] == 2 and result["readings"]["rows"] == len(body) - 2
    rows = ctx.store.read(ctx.store.name("silver", "quarantine")).where("layer = 'bronze'").collect()
    reasons = " ".join(r.failed_checks[0] for r in rows)
    assert (
        "line 2, column device_id (byte 0xe9" in reasons and "line 31, column device_id (byte 0xff" in reasons
    )
    assert f"{DAY1}.csv" in reasons
    staged_rows = ctx.store.read(ctx.store.name("bronze", staged("readings")))
    assert staged_rows.where("device_id LIKE '%\ufffd%'").count() == 0


def test_a_header_that_is_not_utf8_names_the_file_and_offset(one_day):
    config, path = one_day
    path.write_bytes(b"ye\xe9r," + path.read_bytes())
    with pytest.raises(ValueError, match=rf"{DAY1}.csv: its header is not UTF-8 \(byte 0xe9 at offset 2\)"):
        run_bronze(JobContext.open(config, "r"), Window(DAY1, DAY2))


def test_a_cut_timestamp_is_invalid_not_another_hour(one_day):
    config, path = one_day
    header, body = read_csv(path)
    cut = body[0][header.index("read_at")][:12]  # 2013-01-01T0
    body[0][header.index("read_at")] = cut
    write_csv(path, header, body)
    ctx = JobContext.open(config, "r")
    run_bronze(ctx, Window(DAY1, DAY2))
    run_silver(ctx, Window(DAY1, DAY2))
    rows = ctx.store.read(ctx.store.name("silver", "quarantine")).where("layer = 'silver'").collect()
    assert any(f"invalid timestamp in read_at: '{cut}'" in c for r in rows for c in r.failed_checks)


def test_another_delimiter_and_extra_columns_are_reported(one_day, caplog):
    config, path = one_day
    header, body = read_csv(path)
    write_csv(path, [*header, "note"], [[*row, "x"] for row in body])
    ctx = JobContext.open(config, "r")
    assert run_bronze(ctx, Window(DAY1, DAY2))["readings"]["rows"] == len(body)
    assert "columns the source does not declare, ignored: ['note']" in caplog.text
    path.write_text("\n".join(";".join(row) for row in [header, *body]))
    with pytest.raises(ValueError, match=f"{DAY1}.csv is semicolon-delimited"):
        run_bronze(ctx, Window(DAY1, DAY2))


def test_a_feature_sql_that_repeats_keys_writes_no_gold_and_names_the_sql(spark, tmp_path, monkeypatch):
    """The store's unique_by check refuses the window before anything is written (a join that lost
    its date condition: each reading meets every day's weather of its site)."""
    import shutil

    from jobs.core.errors import BadInputError
    from tests.conftest import TEST_USE_CASE

    folder = tmp_path / "case"
    shutil.copytree(TEST_USE_CASE, folder)
    sql = next((folder / "sql").glob("*.sql"))
    good = sql.read_text()
    sql.write_text(
        good.replace("ON w.site = r.site AND w.reading_date = r.reading_date", "ON w.site = r.site")
    )
    monkeypatch.setenv("RUNWAY_USE_CASE", str(folder))
    config = make_config(tmp_path / "data")
    seed(config, WINDOW)
    ctx = JobContext.open(config, "dup-keys")
    for step in (run_bronze, run_silver, run_gate):
        step(ctx, WINDOW)
    with pytest.raises(
        BadInputError, match=rf"feature SQL {sql.name} yields \d+ duplicated keys \['reading_id'\]"
    ):
        run_gold(ctx, WINDOW)
    gold = ctx.store.name("gold", config.use_case.features.table)
    assert not ctx.store.exists(gold)
    sql.write_text(good)  # fixed: the same window lands, one row per reading
    assert run_gold(ctx, WINDOW)["rows"] == len(ctx.store.read_pandas(gold)) > 0
    assert ctx.store.read_pandas(gold).reading_id.is_unique


def test_a_package_loader_that_takes_a_dataset_name_seeds_too():
    """`seed.package` could only call loaders without arguments: `data('pkg', 'Name')`-style
    packages needed a hand export into `seed.directory`."""
    from jobs.config.use_case import SeedConfig
    from jobs.core.errors import BadInputError
    from jobs.features.seed import package_frame

    loader = {"call": "data", "args": ["seattle-weather"]}  # vega_datasets.data('seattle-weather')
    spec = SeedConfig(package="vega_datasets", frames={"weather": loader}, date_columns=["date"])
    frame = package_frame(spec, "weather")
    assert len(frame) == 1461 and {"date", "precipitation", "weather"} <= set(frame.columns)
    missing = SeedConfig(package="vega_datasets", frames={"weather": {"call": "dta"}}, date_columns=["date"])
    with pytest.raises(BadInputError, match="use_case.seed.frames.weather: vega_datasets has no 'dta'"):
        package_frame(missing, "weather")


TRAILING = """month(r.reading_date) AS month,
  AVG(r.temperature) OVER (PARTITION BY r.site ORDER BY unix_date(r.reading_date)
                           RANGE BETWEEN 2 PRECEDING AND 1 PRECEDING) AS site_temperature_2d,
  MAX(r.vibration) OVER (PARTITION BY r.device_id ORDER BY unix_date(r.reading_date)
                         RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING) AS device_vibration_yesterday,"""


def test_a_feature_that_looks_back_is_the_same_however_the_refresh_was_split(spark, tmp_path, monkeypatch):
    """The gold SQL saw only the window's rows: a trailing average over the days before gave other
    values day by day than for the whole span at once (NULL on every day's first view). With
    ``lookback_days`` the refresh reads that much published history, computes over it and writes
    only the window's rows: the same gold either way."""
    import shutil

    import yaml

    from jobs.features.refresh import refresh
    from tests.conftest import TEST_USE_CASE

    folder = tmp_path / "case"
    shutil.copytree(TEST_USE_CASE, folder)
    sql = next((folder / "sql").glob("*.sql"))
    sql.write_text(sql.read_text().replace("month(r.reading_date) AS month,", TRAILING))
    tree = yaml.safe_load((folder / "use_case.yaml").read_text())
    tree["use_case"]["sources"]["readings"]["lookback_days"] = 2
    (folder / "use_case.yaml").write_text(yaml.safe_dump(tree))
    monkeypatch.setenv("RUNWAY_USE_CASE", str(folder))
    span = Window(DAY1, date(2013, 1, 6))

    def gold(config):
        table = JobContext.open(config, "read").store
        frame = table.read_pandas(table.name("gold", config.use_case.features.table))
        return frame.sort_values("reading_id").reset_index(drop=True)

    at_once = make_config(tmp_path / "at-once")
    seed(at_once, span)
    refresh(JobContext.open(at_once, "span"), span)
    day_by_day = make_config(tmp_path / "day-by-day")
    seed(day_by_day, span)
    for day in span:
        refresh(JobContext.open(day_by_day, f"day-{day}"), Window(day, day + timedelta(days=1)))
    whole, split = gold(at_once), gold(day_by_day)
    assert len(whole) == len(split) > 0 and whole.site_temperature_2d.notna().sum() > len(whole) / 2
    pd.testing.assert_frame_equal(whole, split, check_like=True)
    with pytest.raises(Exception, match="only a daily source has days to look back over"):
        tree["use_case"]["sources"]["devices"]["lookback_days"] = 1
        (folder / "use_case.yaml").write_text(yaml.safe_dump(tree))
        from jobs.config.loader import load_config

        load_config("dev")
