"""Shared fixtures. Real-component tests call ``require`` instead of ``pytest.skip``:
under CI=true a missing real component is a failure, never a silent skip."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a real component is missing; fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"real component missing under CI: {reason}")
    pytest.skip(reason)
