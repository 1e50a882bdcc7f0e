"""Monitor the assistant: a window's answered questions and feedback → figures, query drift, a decision.

    python -m jobs.monitor_assistant --env dev --start 2026-12-01 --end 2026-12-02 [--run-id <run>]

Reads ``<catalog>.ml.<assistant>_inference_log`` (answered, non-shadow questions of the window)
and ``<catalog>.ml.<assistant>_feedback``; embeds a sample of the questions and measures how many
no evaluation question resembles (query drift against the labelled questions), beside the
no-answer rate, the median top retrieval score, feedback rate and mean rating, tokens and cost per
request. The figures replace the window's rows of ``<catalog>.monitoring.assistant_metrics``; the
decision (``jobs.assistant.monitoring.decide``): re-index, re-evaluate or nothing, with
``act`` for the DAG's trigger.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jobs.assistant.monitoring import monitor
from jobs.config.loader import load_config
from jobs.core.window import Window
from jobs.runtime.cli import add_run_id, add_window, base_parser, run_cli
from jobs.tablestore import open_table_store

log = logging.getLogger("runway.monitor_assistant")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_window(parser)
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)

    result = monitor(config, open_table_store(config), Window.parse(args.start, args.end), args.run_id)
    log.debug(json.dumps(result))
    return result


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
