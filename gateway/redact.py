"""Secrets in logs: card numbers, MACs, passwords and API tokens are masked.

The last two characters stay visible so that a person comparing a log with a card in
hand can tell cards apart; the length stays so that a truncated read is noticeable.
Member ids are not secret and are what logs should be correlated by.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

SENSITIVE_KEYS = frozenset(
    {
        "token",
        "card",
        "uid",
        "mac",
        "password",
        "access_token",
        "authorization",
        "login",
        "api_key",  # MOCO's
    }
)
_KEEP = 2


def redact(secret: str | None) -> str:
    """``"04A1B2C3D4"`` -> ``"********D4"``; short secrets are masked whole."""
    if secret is None:
        return "-"
    if len(secret) <= _KEEP * 3:
        return "*" * len(secret)
    return "*" * (len(secret) - _KEEP) + secret[-_KEEP:]


def redact_mapping(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: redact(str(v)) if k in SENSITIVE_KEYS and v else v for k, v in event.items()}


def redaction_processor(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: a safety net for anything logged under a sensitive key.

    Code should log ``token=redact(t)`` itself; this catches the place that forgot.
    Already-redacted values (starting with ``*``) are left alone.
    """
    for key in SENSITIVE_KEYS.intersection(event_dict):
        value = event_dict[key]
        if isinstance(value, str) and value and not value.startswith("*"):
            event_dict[key] = redact(value)
    return event_dict
