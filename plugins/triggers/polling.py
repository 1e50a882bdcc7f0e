"""The triggers' shared wait: ask in a worker thread every ``poke_interval`` until an answer is
final or ``timeout`` passes, and end with exactly one event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import TriggerEvent


async def poll_until_final(
    ask: Callable[[], Any],
    status_of: Callable[[Any], str | None],
    payload: Callable[[Any], dict[str, Any]],
    identity: dict[str, Any],
    poke_interval: float,
    timeout: float,
) -> AsyncIterator[TriggerEvent]:
    """``ask()`` (in a thread) until ``status_of(answer)`` names a final status; then one event
    ``{status, **identity, **payload(answer)}``; ``timeout`` with the last answer; ``error`` on a
    failure (one clear event instead of a crashed trigger)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = await asyncio.to_thread(ask)
        except Exception as exc:
            yield TriggerEvent({"status": "error", **identity, "message": str(exc)})
            return
        status = status_of(answer)
        if status is not None:
            yield TriggerEvent({"status": status, **identity, **payload(answer)})
            return
        if time.monotonic() >= deadline:
            yield TriggerEvent({"status": "timeout", **identity, **payload(answer)})
            return
        await asyncio.sleep(poke_interval)
