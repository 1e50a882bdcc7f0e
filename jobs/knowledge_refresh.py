"""Knowledge refresh: the assistant's corpus → chunks with embeddings (a Delta table) → a vector index.

The chunks table (``<catalog>.<gold>.<chunks_table>``: chunk id, document, position, text,
embedding — the shape Databricks Vector Search syncs from) is replaced as one snapshot per
knowledge version (documents + chunking + embedding model); the same version again writes nothing.
Empty and duplicate chunks go to ``<chunks_table>_quarantine`` with the reason; the rest pass the
assistant's expectation suite and the embedding checks before anything is written. Only chunks the
table does not hold yet are embedded. Then the table version gets its index
(``<index_root>/<catalog>/<chunks_table>/v<version>``), also after a crash between the two.
"""

from __future__ import annotations

from typing import Any

from jobs.assistant.knowledge_refresh import refresh_knowledge
from jobs.config.loader import load_config
from jobs.runtime.cli import add_run_id, base_parser, run_cli
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)

    return refresh_knowledge(config, open_table_store(config), args.run_id)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
