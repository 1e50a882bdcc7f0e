"""Task-failure callbacks that send a notification through WebhookNotificationHook."""

from __future__ import annotations

from collections.abc import Callable


def failure_notifier(env: str) -> Callable[[dict], None]:
    """An ``on_failure_callback`` for ``env``: names the DAG, task, run and error, and where to look."""

    def notify(context: dict) -> None:
        from hooks.notification import WebhookNotificationHook
        from jobs.config.loader import load_config

        ti = context.get("ti") or context.get("task_instance")
        dag_id = getattr(ti, "dag_id", "?")
        task_id = getattr(ti, "task_id", "?")
        title = f"Runway [{env}] {dag_id}.{task_id} failed"
        text = f"run {context.get('run_id')}: {context.get('exception')}"
        try:
            WebhookNotificationHook(load_config(env).notifications.webhook_url).send(title, text)
        except Exception as exc:  # a notification must never hide the failure itself
            print(f"runway: notification failed: {exc}")

    return notify
