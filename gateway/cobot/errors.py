"""What can go wrong talking to Cobot, each with what the caller should do about it."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import GatewayError


class ApiError(GatewayError):
    """Base of every Cobot API failure."""


class Refused(ApiError):
    """422: Cobot understood and said no (wrong password, no time passes, unknown token).

    Final: retrying will not change the answer. ``reason`` is the API's own words.
    """

    def __init__(self, reason: str, errors: Mapping[str, object] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = dict(errors or {})


class NotFound(ApiError):
    """404 where the API documents it: check-out of a member who is not checked in, an
    unknown token or membership (``Endpoint.answers_404``)."""


class RateLimited(ApiError):
    """429: wait ``retry_after`` seconds before the next request to this group."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class NoSlot(ApiError):
    """Our own rate limiter had no slot within the caller's deadline (a burst of taps, or
    a 429's Retry-After still running). Nothing was sent; the API is not at fault."""


class Unauthorized(ApiError):
    """401/403: the access token is wrong, revoked or lacks a scope. Not retried quickly:
    a person has to fix the token.

    ``scope``: on a 403, the scope Cobot said is missing (RFC 6750 ``insufficient_scope``
    in ``WWW-Authenticate``, or the body's ``"scope"``); None when it did not say.
    """

    def __init__(self, status: int, detail: str, *, scope: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.scope = scope


class Unavailable(ApiError):
    """Could not get an answer: connection failed, timed out, or 5xx.

    ``outcome_unknown`` is True when the request may have reached Cobot (a timeout after
    sending, a dropped connection): the caller must look before resending a check-in.
    """

    def __init__(self, detail: str, *, outcome_unknown: bool, status: int | None = None) -> None:
        super().__init__(detail)
        self.outcome_unknown = outcome_unknown
        self.status = status


class MalformedResponse(ApiError):
    """The answer was not what the API documents (not JSON, missing fields, a status it
    does not list for the endpoint, e.g. a 404 from a proxy on ``POST /api/check_ins``).
    The request did reach something, so for a write the outcome is unknown.

    ``status``: the HTTP status when it was one the endpoint does not list, else None;
    ``json_body``: whether that answer was JSON, as Cobot's own answers are.
    """

    outcome_unknown = True

    def __init__(self, detail: str, *, status: int | None = None, json_body: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.json_body = json_body
