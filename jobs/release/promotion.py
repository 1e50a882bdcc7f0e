"""Promotion as a state machine: which version may become Champion, where a rollback goes, and how
an interrupted alias move is settled. Pure policy in frozen dataclasses; ``jobs.promote`` reads
the registry and the audit trail, asks these functions, and moves the alias.

Invariants (checked by tests after every step of random sequences):
- the Champion is a version validated PASSED that won its comparison against the Champion of the
  moment, and, where approval is human, carries an approval record by an allowed approver;
- the Champion alias is the top of the Champion history the audit trail records (done moves);
- a rollback walks that history back one step (v7 → v6 → v1); a rollback of a rollback walks
  further back, never forward — going forward again is a new promotion;
- a move is written as an intent (``pending``) before the alias moves and settled (``done`` or
  ``abandoned``) afterwards or by the next call, so the trail and the alias never disagree;
- a route that answers clients (a share of the traffic) serves the Champion, its rollback target
  or a version that may become Champion now; a shadow, which never answers, a validated version
  (``route_refusal``: the same rules as the alias, for whatever decides who answers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from jobs.release.registry import PASSED, STATUS_TAG
from jobs.runtime.identity import UNAUTHENTICATED

if TYPE_CHECKING:
    from jobs.core.window import Window

PROMOTE, ROLLBACK = "promote", "rollback"
ALIAS_ACTIONS = (PROMOTE, ROLLBACK)  # the audit trail's alias moves (traffic changes are its other events)
MOVE_PENDING, MOVE_DONE, MOVE_ABANDONED = "pending", "done", "abandoned"
APPROVAL_BY, APPROVAL_AT, APPROVAL_STATUS = "approval.by", "approval.at", "approval.status"
APPROVAL_VIA, APPROVAL_RECORDED_BY = "approval.via", "approval.recorded_by"
APPROVED, REJECTED = "approved", "rejected"
# How the approver was authenticated: Airflow's auth manager (the HITL response's user, recorded by
# the task) or the MLflow server (the approver's own credentials, so recorded_by is the approver).
VIA_AIRFLOW, VIA_MLFLOW = "airflow", "mlflow"
DECISION_TAG, COMPARED_WITH_TAG = "comparison.decision", "comparison.champion_version"
LOWER_IS_BETTER = {"log_loss", "calibration_error"}


def better_or_equal(metric: str, value: float, reference: float, margin: float = 0.0) -> bool:
    """``value`` is at least ``reference + margin`` (or at most ``reference - margin`` when lower is
    better)."""
    tolerance = 1e-9  # a value exactly at the boundary passes despite float rounding
    if metric in LOWER_IS_BETTER:
        return value <= reference - margin + tolerance
    return value >= reference + margin - tolerance


def fair_comparison(champion_tags: dict[str, str], held_out: Window) -> bool:
    """False when the Champion was fitted on days of the held-out window (it would look better than
    it is): its training and validation days end where its own test window starts."""
    start, fitted_until = champion_tags.get("data.window_start"), champion_tags.get("data.test_start")
    if not (start and fitted_until):
        return True
    return held_out.start >= date.fromisoformat(fitted_until) or held_out.end <= date.fromisoformat(start)


@dataclass(frozen=True)
class PromotionRules:
    """An environment's promotion rules: ``human`` approval needs an approval record by one of
    ``approvers`` (anyone when empty)."""

    approval: str = "auto"
    approvers: tuple[str, ...] = ()

    @classmethod
    def of(cls, promotion: object) -> PromotionRules:
        """From an environment's ``promotion`` settings (``approval``, ``approvers``)."""
        return cls(
            str(getattr(promotion, "approval", "auto")), tuple(getattr(promotion, "approvers", ()) or ())
        )

    def may_approve(self, person: str) -> str | None:
        """Why ``person`` may not approve (None when they may)."""
        if person == UNAUTHENTICATED:
            return (
                "an approval needs an authenticated approver, and this MLflow store authenticates nobody "
                "(approve in Airflow, or with your own credentials on a server running MLflow's "
                "authentication)"
            )
        if not person or person in ("auto", "unknown", "timeout"):
            return "an approval needs the name of the person who approves"
        if self.approvers and person not in self.approvers:
            return f"{person} is not among the approvers {list(self.approvers)}"
        return None


@dataclass(frozen=True)
class Candidate:
    """What the registry says of a version that would become Champion."""

    version: str
    validation_status: str | None
    decision: str | None
    compared_with: str | None  # the Champion it was compared with (None: there was none)
    approval: str | None
    approved_by: str | None
    approved_via: str | None = None  # how the approver was authenticated (VIA_AIRFLOW, VIA_MLFLOW)
    approval_recorded_by: str | None = None  # the MLflow identity that wrote the record

    @classmethod
    def from_tags(cls, version: str | int, tags: Mapping[str, str]) -> Candidate:
        return cls(
            version=str(version),
            validation_status=tags.get(STATUS_TAG),
            decision=tags.get(DECISION_TAG),
            compared_with=tags.get(COMPARED_WITH_TAG) or None,
            approval=tags.get(APPROVAL_STATUS),
            approved_by=tags.get(APPROVAL_BY) or None,
            approved_via=tags.get(APPROVAL_VIA) or None,
            approval_recorded_by=tags.get(APPROVAL_RECORDED_BY) or None,
        )


def unauthenticated_approval(candidate: Candidate) -> str | None:
    """Why an approval record does not show an authenticated approver (None when it does): a
    person Airflow authenticated (a HITL response), or one who wrote it with their own MLflow login."""
    if candidate.approved_via == VIA_AIRFLOW:
        return None
    recorded = candidate.approval_recorded_by or "an unknown writer"
    if candidate.approved_via == VIA_MLFLOW and recorded == candidate.approved_by != UNAUTHENTICATED:
        return None
    return (
        f"it names {candidate.approved_by} but was recorded by {recorded} without an authenticated "
        "approver (approve in Airflow, or with your own credentials on a server running MLflow's "
        "authentication)"
    )


def approval_tags(
    decision: str, person: str, via: str, recorded_by: str, at: str, reason: str = ""
) -> dict[str, str]:
    """The approval record on a version's tags: who decided, how they were authenticated, who wrote it."""
    return {
        APPROVAL_STATUS: decision,
        APPROVAL_BY: person,
        APPROVAL_VIA: via,
        APPROVAL_RECORDED_BY: recorded_by,
        APPROVAL_AT: at,
        "approval.reason": reason,
    }


def promotion_refusal(candidate: Candidate, champion: str | None, rules: PromotionRules) -> str | None:
    """Why ``candidate`` may not become Champion now (None when it may)."""
    v = f"v{candidate.version}"
    if candidate.validation_status != PASSED:
        return (
            f"{v} is not validated ({STATUS_TAG} is {candidate.validation_status or 'unset'}, not {PASSED})"
        )
    if candidate.decision != PROMOTE:
        return (
            f"{v} did not win a comparison with the Champion ({DECISION_TAG} is "
            f"{candidate.decision or 'unset'})"
        )
    if candidate.compared_with != champion:
        return (
            f"{v} was compared with Champion {version_label(candidate.compared_with)}, but the Champion is "
            "now "
            f"{version_label(champion)}: compare again"
        )
    if rules.approval == "human":
        if candidate.approval != APPROVED or not candidate.approved_by:
            state = candidate.approval or "no approval record"
            return f"{v} needs a person's approval before it becomes Champion ({state})"
        if why := rules.may_approve(candidate.approved_by) or unauthenticated_approval(candidate):
            return f"{v}'s approval does not count: {why}"
    return None


def route_refusal(
    candidate: Candidate,
    *,
    answers: bool,
    champion: str | None,
    rollback_to: str | None,
    rules: PromotionRules,
) -> str | None:
    """Why ``candidate`` may not take a route of the traffic (None when it may). A route with a share
    of the traffic answers clients: the Champion, the version a rollback returns to, or one that
    may become Champion now. A shadow (or a route of 0 %) answers nobody: any validated version."""
    v = f"v{candidate.version}"
    if not answers:
        if candidate.validation_status != PASSED:
            status = candidate.validation_status or "unset"
            return f"{v} may not shadow: it is not validated ({STATUS_TAG} is {status}, not {PASSED})"
        return None
    if candidate.version in (champion, rollback_to):
        return None
    if why := promotion_refusal(candidate, champion, rules):
        return (
            f"{v} may not answer clients: {why} (a route with traffic serves the Champion "
            f"{version_label(champion)}, its rollback target or a version that may be promoted now)"
        )
    return None


def version_label(version: str | None) -> str:
    """``v7``, or ``none`` when there is no version."""
    return f"v{version}" if version else "none"


@dataclass(frozen=True)
class Move:
    """One audited alias move."""

    action: str
    from_version: str | None
    to_version: str
    status: str = MOVE_DONE
    request_id: str = ""

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> Move:
        return cls(
            action=str(event["action"]),
            from_version=_text(event.get("from_version")),
            to_version=str(event["to_version"]),
            status=_text(event.get("status")) or MOVE_DONE,
            request_id=_text(event.get("request_id")) or _text(event.get("run_id")) or "",
        )


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN from pandas
        return None
    return str(value) or None


def champion_history(moves: Iterable[Move]) -> list[str]:
    """The Champions the done moves made, oldest first, as a stack: a promotion pushes its version;
    a rollback pops back to its target."""
    stack: list[str] = []
    for move in moves:
        if move.status != MOVE_DONE:
            continue
        if move.action == PROMOTE:
            stack.append(move.to_version)
            continue
        while stack and stack[-1] != move.to_version:
            stack.pop()
        if not stack:
            stack.append(move.to_version)
    return stack


def rollback_target(history: list[str], champion: str | None) -> tuple[str | None, str]:
    """(target, why not): the Champion before the current one, walking the history back."""
    if champion is None:
        return None, "there is no Champion to roll back"
    if not history or history[-1] != champion:
        top = version_label(history[-1] if history else None)
        return None, (
            f"the Champion alias points at v{champion} but the audit trail's last Champion is "
            f"{top}: the alias was moved outside Runway; set it back or promote through Runway"
        )
    if len(history) < 2:
        return None, f"the audit trail has no Champion before v{champion}"
    return history[-2], ""


def settle(move: Move, champion: str | None) -> str:
    """The final status of a pending move, from where the alias points now: the move happened
    (done) or it did not (abandoned; its request may be made again)."""
    return MOVE_DONE if champion == move.to_version else MOVE_ABANDONED
