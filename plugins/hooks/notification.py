"""Failure notifications: always logged; POSTed to a webhook (Slack/Teams-style) when configured."""

from __future__ import annotations

import json
import urllib.request

from airflow.sdk import BaseHook


class WebhookNotificationHook(BaseHook):
    hook_name = "Runway notification webhook"

    def __init__(self, webhook_url: str | None = None, timeout: float = 10) -> None:
        super().__init__()
        self.webhook_url = webhook_url or None
        self.timeout = timeout

    def send(self, title: str, text: str) -> bool:
        """Log the message; POST ``{"text": ...}`` to the webhook if there is one. True when posted."""
        self.log.warning("%s\n%s", title, text)
        if not self.webhook_url:
            return False
        body = json.dumps({"text": f"*{title}*\n{text}"}).encode()
        request = urllib.request.Request(
            self.webhook_url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (configured URL)
            return 200 <= response.status < 300
