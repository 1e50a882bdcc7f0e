"""Table upkeep: compact small files (OPTIMIZE) and delete files no recent version reads (VACUUM).

    python -m jobs.maintenance --env dev [--table silver.<source> ...]

Every Delta table of the environment's catalog (or the named ones): compaction rewrites small files
(streaming's micro-batches, daily replaceWhere windows) into larger ones without changing a row, and
vacuum deletes files older than ``maintenance.retention_hours`` that no version within that time
reads. Safe beside the other pipelines: a compaction that loses a commit race to a writer is tried
again, and readers or time travel within the retention never miss a file.
"""

from __future__ import annotations

from typing import Any

from jobs.config.loader import load_config
from jobs.runtime.cli import base_parser, run_cli
from jobs.tablestore import open_table_store
from jobs.tablestore.maintenance import upkeep


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--table", action="append", help="schema.table (repeatable; default: every table)")
    args = parser.parse_args(argv)
    config = load_config(args.env)

    return upkeep(config, open_table_store(config), args.table)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
