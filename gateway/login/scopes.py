"""The OAuth scopes the configured features need: what ``login`` asks Cobot for.

One table answers it for the client, the doctor and ``login`` alike:
``gateway.cobot.endpoints`` (each endpoint's scope, from the API pages, and the
features a configuration turns on).
"""

from __future__ import annotations

from gateway.cobot.endpoints import scopes_for
from gateway.config.model import Config


def required_scopes(cfg: Config) -> tuple[str, ...]:
    """Sorted, without repeats: e.g. ``("checkin", "checkin_tokens", "read_check_ins",
    "write")`` for the example config."""
    return tuple(sorted({str(scope.value) for scope in scopes_for(cfg)}))
