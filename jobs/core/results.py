"""The job result protocol: a job hands a small JSON result (or its failure) to whoever ran it —
Airflow's operators, a cluster's driver output, Databricks' run output — as one marked line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULT_MARKER = "RUNWAY_RESULT "


def write_result(payload: dict[str, Any]) -> None:
    """Hand a small JSON result to the caller through ``$RUNWAY_RESULT_FILE`` (if set) and stdout."""
    text = json.dumps(payload, default=str)
    target = os.environ.get("RUNWAY_RESULT_FILE")
    if target:
        Path(target).write_text(text)
    print(RESULT_MARKER + text, flush=True)


def read_result(output: str) -> dict[str, Any]:
    """The payload ``write_result`` printed (its last ``RUNWAY_RESULT`` line) from a job's output:
    ``{"ok": true, "result": {...}}`` or ``{"ok": false, "exit_code": N, "error": "..."}``; ``{}``
    when the job printed none (it crashed)."""
    lines = [line.strip() for line in (output or "").splitlines() if line.strip().startswith(RESULT_MARKER)]
    return json.loads(lines[-1][len(RESULT_MARKER) :]) if lines else {}
