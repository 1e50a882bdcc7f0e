"""Serve the environment's Champion over REST: MLflow's scoring protocol, the alias followed,
every request logged to ``<catalog>.ml.inference_log``.

    RUNWAY_USE_CASE=flight_delay python -m jobs.serve --env dev [--host 127.0.0.1] [--port 8000]

    curl -s localhost:8000/invocations -H 'Content-Type: application/json' \
        -d '{"dataframe_records": [{"temp": 41.0, "origin": "JFK", ...}]}'

The use case (``RUNWAY_USE_CASE``, default base.yaml's) names the registered model served; until
its alias names a version ``/health`` answers 503 with what it waits for, and the log says so.
Settings come from the environment's ``serving`` section (bind address, port, alias, batching,
request bounds, the inference log's WAL and flush). It binds to 127.0.0.1 unless configured
otherwise. SIGTERM (or Ctrl-C) stops it cleanly: requests in flight are answered and the inference
log is committed to Delta before it exits.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from jobs.config.loader import load_config
from jobs.config.traffic import Traffic
from jobs.runtime.cli import base_parser, json_object, run_cli
from jobs.serving.app import create_app

log = logging.getLogger("runway.serve")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--host", default=None, help="bind address (default: serving.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: serving.port)")
    parser.add_argument(
        "--traffic",
        type=json_object,
        default=None,
        help="pin this traffic (JSON, jobs/config/traffic.py) instead of following the registry's "
        "(the load test serves one version this way)",
    )
    args = parser.parse_args(argv)
    config = load_config(args.env)
    host, port = args.host or config.serving.host, args.port or config.serving.port

    app = create_app(config, Traffic.from_dict(args.traffic) if args.traffic else None)
    log.info(
        "serving %s@%s of %s on http://%s:%d",
        config.registered_model_name,
        config.serving.alias or config.champion_alias,
        config.env,
        host,
        port,
    )
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=30
    )
    return {"host": host, "port": port}


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
