"""Feature refresh for a date interval: landing → bronze → silver (+ quality gate) → gold.

    python -m jobs.feature_refresh {bronze,silver,gate,gold,all} --env dev \
        --start 2013-01-01 --end 2013-01-02 --run-id <orchestrator run id>

- bronze: the landing files' raw values (strings) plus ingestion metadata; malformed lines are
  quarantined. Daily sources replace the interval's files; reference sources are a snapshot.
- silver: typed, sampled (staging), de-duplicated on the natural keys and checked with the source's
  row-level expectations. Rows that fail any of it go to the quarantine table with the reasons;
  the good rows land.
- gate: the suite's table-level expectations (columns, volume, null rates) on the interval's silver
  rows. Failing it stops the pipeline before gold.
- gold: the use case's feature SQL over the interval's silver rows and the reference tables.

Write-audit-publish for daily sources: bronze and silver write the interval to staged tables
(``<source>__staged``); only the gate, once the staged rows pass, publishes them to bronze and
silver and records the pass per day in ``silver.gate_log``. A re-delivery that fails the gate
leaves the last good rows in place, and gold refuses days whose latest gate did not pass.

Every write replaces exactly its interval (Delta replaceWhere) or merges by key, so reruns and
backfills leave the same contents.
"""

from __future__ import annotations

from typing import Any

from jobs.config.loader import load_config
from jobs.core.window import Window
from jobs.features.refresh import STEPS, JobContext, refresh
from jobs.runtime.cli import add_run_id, add_window, base_parser, run_cli


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("step", choices=[*STEPS, "all"])
    add_window(parser)
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)
    window = Window.parse(args.start, args.end)
    if args.step in ("silver", "gate", "all"):
        from jobs.features.quality import preload_gx

        preload_gx()  # overlap GX's import with the JVM's start-up
    ctx = JobContext.open(config, args.run_id)
    return refresh(ctx, window, STEPS if args.step == "all" else (args.step,))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
