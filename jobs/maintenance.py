"""Table upkeep: compact small files (OPTIMIZE) and delete files no recent version reads (VACUUM).

    python -m jobs.maintenance --env dev [--table silver.<source> ...]

Every Delta table of the environment's catalog (or the named ones): compaction rewrites small files
(streaming's micro-batches, daily replaceWhere windows) into larger ones without changing a row, and
vacuum deletes files older than ``maintenance.retention_hours`` that no version within that time
reads. Safe beside the other pipelines: a compaction that loses a commit race to a writer is tried
again, and readers or time travel within the retention never miss a file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jobs.config.env import EnvConfig
from jobs.config.loader import load_config
from jobs.core.errors import BadInputError
from jobs.platform.cli import base_parser, run_cli

if TYPE_CHECKING:
    from jobs.tablestore import TableStore
    from jobs.tablestore.base import TableName

log = logging.getLogger("runway.maintenance")


def upkeep(config: EnvConfig, store: TableStore, only: list[str] | None = None) -> dict[str, Any]:
    """Compact and vacuum every table (or ``only``: ``schema.table`` names); per-table figures."""
    tables = _chosen(store, only)
    rules = config.maintenance
    report: dict[str, Any] = {}
    for name in tables:
        compacted = store.compact(name) if rules.compact else {"files_removed": 0, "files_added": 0}
        deleted = store.vacuum(name, rules.retention_hours) if rules.vacuum else 0
        report[str(name)] = {**compacted, "files_deleted": deleted, "version": store.version(name)}
        log.info("%s: compacted %d files into %d, vacuumed %d files older than %g h",
                 name, compacted["files_removed"], compacted["files_added"], deleted, rules.retention_hours)  # fmt: skip
    return {"tables": report, "retention_hours": rules.retention_hours}


def _chosen(store: TableStore, only: list[str] | None) -> list[TableName]:
    tables = store.tables()
    if not only:
        return tables
    by_name = {f"{t.schema}.{t.table}": t for t in tables}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise BadInputError(f"no such tables in catalog {store.config.catalog}: {unknown}")
    return [by_name[n] for n in only]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--table", action="append", help="schema.table (repeatable; default: every table)")
    args = parser.parse_args(argv)
    config = load_config(args.env)
    from jobs.tablestore import open_table_store

    return upkeep(config, open_table_store(config), args.table)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
