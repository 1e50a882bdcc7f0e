"""Who is acting: the identity the MLflow server authenticated for the credentials Runway uses.

An environment's MLflow credentials are ``mlflow.username`` and the variable ``mlflow.password_env``
names (per environment, like the tracking URI; else MLflow's own ``MLFLOW_TRACKING_USERNAME`` /
``_PASSWORD``). With MLflow's authentication (``mlflow server --app-name basic-auth``) the server
checks them on every request and its permissions decide what they may write; Runway asks the
server once per process whom they belong to and records that name in the audit trail and the
approval record. A store that authenticates nobody (the embedded SQLite default, or a server
without the auth app) gives ``unauthenticated``: the records say so, and an environment whose
promotion needs a person's approval accepts none recorded that way.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.core.errors import BadInputError, TransientError

if TYPE_CHECKING:
    from jobs.config.platform import MlflowSettings

log = logging.getLogger("runway.identity")
UNAUTHENTICATED = "unauthenticated"  # what a store that authenticates nobody records

CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# The process's own credentials from before Runway first exported an environment's, restored when an
# environment names none. Taken then, not at import: a job forked from the warm job server gets its
# task's variables after this module was imported.
_BEFORE_EXPORT: dict[str, str | None] | None = None
_KNOWN: dict[tuple[str, str], Identity] = {}


@dataclass(frozen=True)
class Identity:
    """A name and whether a server vouched for it."""

    name: str
    authenticated: bool

    @classmethod
    def nobody(cls) -> Identity:
        return cls(UNAUTHENTICATED, False)


def use_credentials(settings: MlflowSettings) -> None:
    """Export the environment's MLflow credentials for MLflow's clients (read at each request), or
    the process's own when the environment names none: one environment's never serve another's."""
    global _BEFORE_EXPORT
    if settings.username:
        if _BEFORE_EXPORT is None:
            _BEFORE_EXPORT = {key: os.environ.get(key) for key in CREDENTIAL_VARIABLES}
        password = os.environ.get(settings.password_env, "") if settings.password_env else ""
        wanted = (settings.username, password)
    elif _BEFORE_EXPORT is not None:
        wanted, _BEFORE_EXPORT = tuple(_BEFORE_EXPORT.values()), None
    else:
        return  # nothing exported: the process's own credentials stay as they are
    for key, value in zip(CREDENTIAL_VARIABLES, wanted, strict=True):
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)


def mlflow_identity(tracking_uri: str) -> Identity:
    """Whom the MLflow server at ``tracking_uri`` authenticates for the exported credentials (asked
    once per process and user); ``unauthenticated`` for a store or server without authentication."""
    username = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    scheme = urllib.parse.urlsplit(tracking_uri).scheme
    if scheme not in ("http", "https") or not username:
        return Identity.nobody()
    key = (tracking_uri, username)
    if key not in _KNOWN:
        _KNOWN[key] = _ask(tracking_uri, username, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    return _KNOWN[key]


def _ask(tracking_uri: str, username: str, password: str) -> Identity:
    """The auth app's ``users/get`` for the user itself: 200 with its name when the credentials
    hold, 401 when they do not; a server without the auth app has no such route (404)."""
    query = urllib.parse.urlencode({"username": username})
    request = urllib.request.Request(f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/users/get?{query}")
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            user = json.loads(response.read()).get("user", {})
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            log.warning("no authentication at %s: actions are recorded as %s", tracking_uri, UNAUTHENTICATED)
            return Identity.nobody()
        if exc.code in (401, 403):
            raise BadInputError(
                f"the MLflow server at {tracking_uri} refused the credentials of {username!r} "
                "(MLFLOW_TRACKING_USERNAME / the environment's mlflow.password_env)"
            ) from None
        raise TransientError(
            f"the MLflow server at {tracking_uri} did not say who {username!r} is: {exc}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise TransientError(f"the MLflow server at {tracking_uri} did not answer: {exc}") from None
    if user.get("username") != username:
        raise BadInputError(
            f"the MLflow server at {tracking_uri} answered for {user.get('username')!r}, not {username!r}"
        )
    return Identity(username, True)
