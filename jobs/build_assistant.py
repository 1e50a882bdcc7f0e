"""Build the assistant's candidate: prompt, retrieval config and index versions registered as a chain.

    python -m jobs.build_assistant --env dev [--run-id <run>] [--k 4] [--min-score 0.75] [--prompt-file F]

The prompt comes from ``include/assistants/<name>/prompt.txt`` (or ``--prompt-file``) and is
registered in MLflow's prompt registry as ``<catalog>.<ml>.<name>_prompt`` — a new version only
when its text changed. The knowledge base is the chunks table's latest snapshot and its index (run
the knowledge refresh first). The chain (``jobs.assistant.chain.ChainModel``) is logged with that
index, those chunks and that template as artifacts and registered as ``<catalog>.<ml>.<name>``,
``PENDING`` until the evaluation gate judges it; its tags name the three parts (and the code's
commit). The same parts again reuse their version: a retry registers nothing new.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.assistant.build import _optional, build
from jobs.config.loader import load_config
from jobs.runtime.cli import add_run_id, base_parser, run_cli
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_run_id(parser)
    parser.add_argument(
        "--k", type=_optional(int), help="passages per question (empty or default: assistant.retrieval.k)"
    )
    parser.add_argument(
        "--min-score", type=_optional(float), help="empty or default: assistant.retrieval.min_score"
    )
    parser.add_argument(
        "--prompt-file", type=Path, help="a prompt variant (default: the assistant's prompt.txt)"
    )
    args = parser.parse_args(argv)
    config = load_config(args.env)

    return build(
        config,
        open_table_store(config),
        args.run_id,
        k=args.k,
        min_score=args.min_score,
        prompt_file=args.prompt_file,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
