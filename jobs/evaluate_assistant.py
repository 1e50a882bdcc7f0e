"""The assistant's evaluation gate: a chain version against the floors and the Champion, on questions.

    python -m jobs.evaluate_assistant --env dev --version 3 [--run-id <run>]

One MLflow run (``evaluate v3``) holds a child run per chain — the candidate and, when there is one,
the Champion — each a ``mlflow.genai.evaluate`` over the labelled questions
(``include/assistants/<name>/questions.yaml``) with Runway's scorers (recall@k, reciprocal rank,
groundedness, citation correctness; traces per question), plus an LLM judge of groundedness where a
generator endpoint is configured. The
verdict (``jobs.assistant.gate``): every floor of ``assistant.gate`` and the p95 latency
limit decide ``PASSED``/``FAILED``; a passed version no worse than the Champion on every metric
(by ``max_regression_vs_champion``) is decided ``promote`` and becomes ``Challenger``. The version's
tags carry the status, the decision and the Champion it was compared with — what promotion checks,
exactly as for a model. A retry after the verdict, with the same Champion, changes nothing.
"""

from __future__ import annotations

from typing import Any

from jobs.assistant.evaluation import evaluate, latest_version
from jobs.config.loader import load_config
from jobs.release.registry import ModelRegistry
from jobs.runtime.cli import add_run_id, base_parser, run_cli


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_run_id(parser)
    parser.add_argument("--version", help="the chain version to judge (default: the newest)")
    args = parser.parse_args(argv)
    config = load_config(args.env)

    version = args.version or latest_version(ModelRegistry.for_config(config, config.assistant_target))
    return evaluate(config, str(version), args.run_id)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
