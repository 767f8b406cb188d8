"""MOCO failures beyond the generic ones shared with Cobot (gateway/cobot/errors.py:
``Refused`` 422, ``RateLimited`` 429, ``Unauthorized`` 401/403, ``Unavailable``,
``MalformedResponse``, ``NotFound``, ``NoSlot``)."""

from __future__ import annotations

from gateway.cobot.errors import ApiError


class Locked(ApiError):
    """423 Locked: a ``touch`` conflicts with an existing presence (moco-presences.txt,
    the second special situation). Final for that tap: retrying cannot change it."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"HTTP 423 Locked: {detail}")
        self.detail = detail
