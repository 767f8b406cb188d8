"""OAuth 2.0 for a public client: discovery, registration, PKCE, the code exchange.

- Discovery: RFC 8414 ``/.well-known/oauth-authorization-server``, else OpenID Connect
  Discovery ``/.well-known/openid-configuration`` (the one Cobot's API page names).
- Dynamic client registration: RFC 7591, ``token_endpoint_auth_method = "none"``.
- Authorization code with PKCE: RFC 6749 §4.1 and RFC 7636 (S256 only: ``plain`` would
  hand the verifier to anyone who sees the request).
- Loopback redirect: RFC 8252 §7.3 (``http://127.0.0.1:PORT/callback``).

Every call has a deadline; every answer is checked before use: a server that answers
something else raises ``LoginError`` saying what it got.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from gateway.errors import GatewayError

WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


class LoginError(GatewayError):
    """The OAuth flow could not complete; the message says at which step and why."""


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None
    scopes_supported: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str

    @staticmethod
    def new() -> Pkce:
        """RFC 7636 §4.1: 32 random octets, base64url: a 43-character verifier."""
        verifier = _b64(secrets.token_bytes(32))
        return Pkce(verifier, s256(verifier))


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))), no padding."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _secure(url: str) -> bool:
    """https, or http to a loopback address (the simulator, tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    try:
        return parts.scheme == "http" and ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return parts.scheme == "http" and parts.hostname == "localhost"


async def _json(resp: aiohttp.ClientResponse, step: str) -> dict[str, Any]:
    try:
        body = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        body = None
    if not isinstance(body, dict):
        raise LoginError(f"{step}: {resp.url} answered {resp.status} without a JSON object")
    return body


async def discover(http: aiohttp.ClientSession, base_url: str) -> Metadata:
    """The authorization server's metadata for ``base_url`` (the space's root)."""
    root = base_url.rstrip("/")
    tried = []
    for path in WELL_KNOWN:
        try:
            async with http.get(root + path) as resp:
                if resp.status == 404:
                    tried.append(f"{path} (404)")
                    continue
                if resp.status != 200:
                    raise LoginError(f"discovery: {root + path} answered {resp.status}")
                body = await _json(resp, "discovery")
        except aiohttp.ClientError as exc:
            raise LoginError(f"discovery: cannot reach {root}: {exc}") from exc
        return _metadata(body, root + path)
    raise LoginError(f"discovery: {root} publishes no OAuth metadata (tried {', '.join(tried)})")


def _metadata(body: dict[str, Any], where: str) -> Metadata:
    def url(key: str, *, required: bool = True) -> str | None:
        value = body.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not _secure(value):
            raise LoginError(f"discovery: {where}: {key} is not an https URL: {value!r}")
        return value

    methods = body.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        # RFC 8414 §2: absent means the server does not do PKCE; we will not go without.
        raise LoginError(f"discovery: {where}: the server does not offer PKCE with S256")
    scopes = body.get("scopes_supported")
    authorization, token = url("authorization_endpoint"), url("token_endpoint")
    assert authorization is not None and token is not None
    return Metadata(
        issuer=str(body.get("issuer", "")),
        authorization_endpoint=authorization,
        token_endpoint=token,
        registration_endpoint=url("registration_endpoint", required=False),
        scopes_supported=tuple(map(str, scopes)) if isinstance(scopes, list) else None,
    )


async def register(
    http: aiohttp.ClientSession, md: Metadata, redirect_uri: str, name: str, scopes: list[str]
) -> str:
    """RFC 7591: a public client for ``redirect_uri``; returns its client_id."""
    if md.registration_endpoint is None:
        raise LoginError(
            "registration: the server offers no dynamic client registration; "
            "register checkin-gateway with the space and pass its client id"
        )
    request = {
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": " ".join(scopes),
    }
    try:
        async with http.post(md.registration_endpoint, json=request) as resp:
            body = await _json(resp, "registration")
            if resp.status != 201:
                raise LoginError(f"registration: {resp.status} {_oauth_error(body)}")
    except aiohttp.ClientError as exc:
        raise LoginError(f"registration: {exc}") from exc
    client_id = body.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise LoginError(f"registration: no client_id in the answer: {sorted(body)}")
    return client_id


def authorization_url(
    md: Metadata, client_id: str, redirect_uri: str, scopes: list[str], state: str, pkce: Pkce
) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
    )
    sep = "&" if urlsplit(md.authorization_endpoint).query else "?"
    return f"{md.authorization_endpoint}{sep}{query}"


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    scopes: tuple[str, ...]  # as granted (RFC 6749 §5.1: as requested when omitted)


async def exchange(
    http: aiohttp.ClientSession,
    md: Metadata,
    client_id: str,
    code: str,
    redirect_uri: str,
    pkce: Pkce,
    requested: list[str],
) -> Token:
    """RFC 6749 §4.1.3 with RFC 7636 §4.5: the code and its verifier for a token."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": pkce.verifier,
    }
    try:
        async with http.post(md.token_endpoint, data=form) as resp:
            body = await _json(resp, "token")
            if resp.status != 200:
                raise LoginError(f"token: {resp.status} {_oauth_error(body)}")
    except aiohttp.ClientError as exc:
        raise LoginError(f"token: {exc}") from exc
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise LoginError("token: the answer has no access_token")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise LoginError(f"token: expected a Bearer token, got {body.get('token_type')!r}")
    scope = body.get("scope")
    granted = tuple(str(scope).split()) if isinstance(scope, str) else tuple(requested)
    return Token(token, granted)


def _oauth_error(body: dict[str, Any]) -> str:
    error = body.get("error", "error")
    text = body.get("error_description")
    return f"{error}: {text}" if text else str(error)
