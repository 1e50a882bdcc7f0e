"""Table upkeep: compaction and vacuum of an environment's Delta tables."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jobs.config.env import EnvConfig
from jobs.core.errors import BadInputError

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
        log.info(
            "%s: compacted %d files into %d, vacuumed %d files older than %g h",
            name,
            compacted["files_removed"],
            compacted["files_added"],
            deleted,
            rules.retention_hours,
        )
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
