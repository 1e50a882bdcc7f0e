"""Load test before deploy: the candidate and the Champion behind the endpoint, the same load.

    python -m jobs.load_test --env staging --version 7 [--run-id <run>]

Each version is served alone by ``python -m jobs.serve`` on loopback (its traffic pinned to it, its
requests logged to ``<catalog>.ml.inference_log_load_test``) and driven by the same bounded Locust
load (``rollout.load_test``: users, seconds, rows per request, from the candidate's test window in
gold), in ``rounds`` alternating rounds of which each version's best counts. The figures —
p50/p95/p99 latency, throughput, error rate — go to an MLflow run (``runway.kind = load_test``) and
to the candidate's version tags (``load_test.*``, ``load_test_status``). The gate
(``jobs.release.gates``) compares the candidate with the Champion measured in the same run and with
the absolute limits; a failure exits 3 with one sentence naming the figure.
"""

from __future__ import annotations

from typing import Any

from jobs.config.loader import load_config
from jobs.runtime.cli import add_run_id, base_parser, run_cli
from jobs.serving.load_gate import load_test
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the candidate model version")
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)

    return load_test(config, open_table_store(config), args.version, run_id=args.run_id)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
