"""Table upkeep on real Delta tables: compaction keeps every row in fewer files, vacuum deletes only
what no recent version reads, and both run safely while another process writes the table."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta

import pytest
from deltalake import DeltaTable

from jobs.config.platform import MaintenanceConfig
from jobs.tablestore import open_table_store
from jobs.tablestore.maintenance import upkeep

SCHEMA = "day date, id int, value string"


def many_small_commits(store, name, days: int = 8):
    for n in range(days):
        day = date(2013, 1, 1) + timedelta(days=n)
        rows = store.small_frame([{"day": day, "id": i, "value": "v"} for i in range(20)], SCHEMA)
        store.overwrite_window(name, rows, "day", day, day + timedelta(days=1))


def test_compaction_keeps_every_row_in_fewer_files_and_vacuum_spares_recent_versions(dev_config):
    store = open_table_store(dev_config)
    table = store.name("silver", "events")
    many_small_commits(store, table)
    before = store.read_pandas(table, order_by=["day", "id"])
    files_before = len(DeltaTable(str(store.path(table))).file_uris())
    report = upkeep(dev_config, store, ["silver.events"])["tables"]["dev.silver.events"]
    assert report["files_removed"] == files_before and report["files_added"] == 1
    assert report["files_deleted"] == 0  # everything is younger than the 168 h retention
    assert store.read_pandas(table, order_by=["day", "id"]).equals(before)
    assert (
        len(store.read_pandas(table, version=3)) == 80
    )  # 4 days: time travel within the retention still works
    deleted = store.vacuum(table, 0, enforce=False)  # what a week later would do
    assert deleted == files_before and store.read_pandas(table, order_by=["day", "id"]).equals(before)


def test_the_retention_cannot_be_configured_below_deltas_minimum():
    with pytest.raises(ValueError, match="greater than or equal to 168"):
        MaintenanceConfig(retention_hours=24)


def test_unknown_tables_are_named(dev_config):
    from jobs.core.errors import BadInputError

    with pytest.raises(BadInputError, match=r"no such tables in catalog dev: \['gold.nope'\]"):
        upkeep(dev_config, open_table_store(dev_config), ["gold.nope"])


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import date, timedelta
    from pathlib import Path
    from tests.support import make_config
    from jobs.tablestore import open_table_store
    store = open_table_store(make_config(Path(sys.argv[1])))
    table = store.name("silver", "events")
    for n in range(8, 20):
        day = date(2013, 1, 1) + timedelta(days=n)
        values = [{"day": day, "id": i, "value": "w"} for i in range(20)]
        rows = store.small_frame(values, "day date, id int, value string")
        store.overwrite_window(table, rows, "day", day, day + timedelta(days=1))
    """
)


def test_upkeep_beside_a_writer_loses_no_row(dev_config):
    store = open_table_store(dev_config)
    table = store.name("silver", "events")
    many_small_commits(store, table)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(dev_config.storage.lakehouse_root.parent)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline, overlapping = time.monotonic() + 60, 0
    while store.version(table) < 9 and time.monotonic() < deadline:  # until the writer's first commit
        time.sleep(0.05)
    while writer.poll() is None and time.monotonic() < deadline:
        upkeep(dev_config, store, ["silver.events"])
        overlapping += writer.poll() is None
    assert writer.wait(timeout=60) == 0, writer.stderr.read()[-2000:]
    assert overlapping, "no upkeep ran while the writer was committing: the test proved nothing"
    upkeep(dev_config, store, ["silver.events"])
    frame = store.read_pandas(table)
    assert len(frame) == 20 * 20 and not frame.duplicated(["day", "id"]).any()
