"""A person's approval of a promotion, as a branch: the Airflow HITL operator through its public
options, with who answered kept for the approval record."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

APPROVE, REJECT = "Approve", "Reject"


class PromotionApprovalOperator(HITLBranchOperator):
    """Asks the ``approvers`` (any user when empty) to approve or reject; branches to
    ``approve_task_id`` or ``reject_task_id`` and pushes who answered and when as XComs
    ``responded_by`` and ``responded_at``.
    An unanswered request is rejected after ``timeout_hours`` (the Champion stays)."""

    def __init__(
        self,
        *,
        approve_task_id: str,
        reject_task_id: str,
        approvers: list[str],
        timeout_hours: float,
        **kwargs,
    ) -> None:
        super().__init__(
            options=[APPROVE, REJECT],
            options_mapping={APPROVE: approve_task_id, REJECT: reject_task_id},
            defaults=[REJECT],
            response_timeout=timedelta(hours=timeout_hours),
            assigned_users=[{"id": person, "name": person} for person in approvers] or None,
            **kwargs,
        )

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        user = event.get("responded_by_user")
        who = (user.get("name") or user.get("id")) if isinstance(user, dict) else user
        context["ti"].xcom_push(key="responded_by", value=str(who or "timeout"))
        answered = event.get("responded_at")
        context["ti"].xcom_push(
            key="responded_at",
            value=answered.isoformat() if hasattr(answered, "isoformat") else str(answered),
        )
        return super().execute_complete(context, event)
