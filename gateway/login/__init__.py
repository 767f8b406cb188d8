"""``checkin-gateway login``: a Cobot access token through the browser (OAuth 2.0)."""

from gateway.login.command import run_login

__all__ = ["run_login"]
