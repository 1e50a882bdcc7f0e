"""The model audit trail, ``<catalog>.ml.model_audit``: every alias move and traffic change of a
registered model, as an intent before it happens and settled after it (the I/O; the rules of
alias moves are in ``jobs.release.promotion``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.tablestore import TableStore

AUDIT = "model_audit"  # in the ml schema
AUDIT_SCHEMA = (
    "event_id string, event_time timestamp, model_name string, alias string, action string, "
    "from_version string, to_version string, metrics string, approved_by string, run_id string, reason "
    "string, "
    "status string, request_id string, actor string"
)  # approved_by: the person who approved or asked; actor: the identity the MLflow server authenticated


def audit_trail(store: TableStore, name: str, actions: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The model's events (intents and settled ones), oldest first; only ``actions`` when given."""
    table = store.name("ml", AUDIT)
    if not store.exists(table):
        return []
    events = store.read_pandas(table, order_by=["event_time", "event_id"])
    events = events[events["model_name"] == name]
    if actions is not None:
        events = events[events["action"].isin(actions)]
    return events.to_dict("records")


def write_event(store: TableStore, event: dict[str, Any]) -> None:
    """Record an event, or settle it (the same ``event_id`` again)."""
    frame = store.small_frame([event], AUDIT_SCHEMA)
    store.merge(
        store.name("ml", AUDIT),
        frame,
        ["event_id"],
        metadata={"run_id": event["run_id"], "action": event["action"], "status": event["status"]},
    )


def record_change(store: TableStore, event: dict[str, Any], change: Callable[[], None], done: str) -> None:
    """Intent first, then the change, then the settled event (``status`` ``done``): a crash in
    between leaves the intent for ``settle_intents``, so the trail and the registry agree."""
    write_event(store, event)
    change()
    event["status"] = done
    write_event(store, event)


def settle_intents(
    store: TableStore,
    name: str,
    actions: tuple[str, ...],
    pending: str,
    status_of: Callable[[dict[str, Any]], str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Settle the model's ``actions`` intents a crash left (status ``pending``): each gets the status
    ``status_of`` decides from the registry now (done when its change arrived, else abandoned) and
    is written back. Returns the whole trail afterwards and the events settled."""
    trail = audit_trail(store, name, actions)
    settled = [event for event in trail if event.get("status") == pending]
    for event in settled:
        event["status"] = status_of(event)
        write_event(store, event)
    return trail, settled
