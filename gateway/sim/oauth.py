"""The simulated Cobot authorization server: metadata, registration, authorize, token.

Cobot's API page (general, OAuth) says only: OAuth 2, the provider configuration under
``/.well-known/openid-configuration``, scopes per endpoint. Where it is silent we take
the strict reading of the RFCs, so a client that passes here passes a careful server:

- RFC 8414 metadata (and the same document as OpenID configuration; id tokens are not
  simulated, so ``openid`` is not a scope here);
- RFC 7591 registration of public clients only (``token_endpoint_auth_method=none``),
  redirect URIs https or http on a loopback IP literal (RFC 8252 §7.3, §8.3: not
  "localhost"), no fragments;
- RFC 6749 §4.1 authorization code, RFC 7636 PKCE required with S256 (``plain`` and a
  missing challenge are refused), RFC 8252 §7.3 any port on a registered loopback URI;
- errors about the client or redirect URI are shown on the page, never redirected
  (RFC 6749 §4.1.2.1); the rest go back to the client with ``error`` and ``state``;
- codes live 120 s and work once; a reused code revokes the token issued for it
  (§4.1.2); the token endpoint takes form bodies only and answers ``no-store``.

The sign-in form checks the space's members and accounts: an admin account gets an
admin token, a member a token for their membership, a guest nothing.
"""

from __future__ import annotations

import html
import ipaddress
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from gateway.sim.model import ALL_SCOPES, AccountKind, Role, SimAccount, SimMember
from gateway.sim.space import SimSpace

CODE_LIFETIME = 120.0  # seconds
REQUEST_LIFETIME = 600.0  # a sign-in page's form stays valid this long
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1
CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # BASE64URL(SHA-256), no padding


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pending:
    """A validated authorization request, waiting for the person's decision."""

    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    challenge: str
    created: float


@dataclass(slots=True)
class Grant:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str
    role: Role
    membership_id: str | None
    user: str
    created: float
    used: bool = False
    token: str | None = None


@dataclass(slots=True)
class OAuthServer:
    space: SimSpace
    clients: dict[str, Client] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)

    # --- metadata ---------------------------------------------------------------------

    async def metadata(self, request: web.Request) -> web.Response:
        issuer = f"{request.scheme}://{request.host}"
        return web.json_response(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/oauth/authorize",
                "token_endpoint": f"{issuer}/oauth/token",
                "registration_endpoint": f"{issuer}/oauth/register",
                "scopes_supported": sorted(ALL_SCOPES),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
            }
        )

    # --- registration (RFC 7591) ------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(400, "invalid_client_metadata", "send the metadata as JSON")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_client_metadata", "malformed JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_client_metadata", "expected a JSON object")
        uris = body.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            return _error(400, "invalid_redirect_uri", "redirect_uris: a non-empty list")
        for uri in uris:
            if not _acceptable_redirect(uri):
                return _error(400, "invalid_redirect_uri", f"not acceptable: {uri}")
        if body.get("token_endpoint_auth_method", "client_secret_basic") != "none":
            return _error(
                400,
                "invalid_client_metadata",
                "only public clients: token_endpoint_auth_method none",
            )
        if not set(body.get("grant_types", ["authorization_code"])) <= {"authorization_code"}:
            return _error(400, "invalid_client_metadata", "grant_types: authorization_code only")
        if not set(body.get("response_types", ["code"])) <= {"code"}:
            return _error(400, "invalid_client_metadata", "response_types: code only")
        name = str(body.get("client_name", ""))[:200]
        client = Client(secrets.token_hex(16), name, tuple(uris))
        self.clients[client.client_id] = client
        return web.json_response(
            {
                "client_id": client.client_id,
                "client_id_issued_at": int(time.time()),
                "client_name": name,
                "redirect_uris": list(client.redirect_uris),
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
            status=201,
        )

    # --- authorization (RFC 6749 §4.1.1, RFC 7636 §4.3) ------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        client = self.clients.get(q.get("client_id", ""))
        if client is None:
            return _page(400, "Unknown application", "This application is not registered.")
        redirect = q.get("redirect_uri", "")
        if not any(_same_redirect(redirect, r) for r in client.redirect_uris):
            return _page(400, "Wrong redirect", "The redirect URI is not registered.")
        state = q.get("state")

        def back(error: str, text: str) -> web.Response:
            return _redirect(redirect, {"error": error, "error_description": text}, state)

        if q.get("response_type") != "code":
            return back("unsupported_response_type", "response_type must be code")
        if q.get("code_challenge_method") != "S256":
            return back("invalid_request", "PKCE with code_challenge_method S256 is required")
        challenge = q.get("code_challenge", "")
        if not CHALLENGE.fullmatch(challenge):
            return back("invalid_request", "code_challenge: 43 base64url characters")
        scopes = tuple(dict.fromkeys(q.get("scope", "").split()))
        unknown = [s for s in scopes if s not in ALL_SCOPES]
        if not scopes or unknown:
            return back("invalid_scope", f"unknown scope: {' '.join(unknown) or '(none)'}")
        request_id = secrets.token_urlsafe(16)
        self.pending[request_id] = Pending(
            client, redirect, scopes, state, challenge, time.monotonic()
        )
        return _form(request_id, self.pending[request_id])

    async def decide(self, request: web.Request) -> web.Response:
        form = await request.post()
        pending = self.pending.get(str(form.get("request_id", "")))
        if pending is None or time.monotonic() - pending.created > REQUEST_LIFETIME:
            return _page(400, "Expired", "This sign-in page has expired; start again.")
        if form.get("decision") == "deny":
            del self.pending[str(form["request_id"])]
            return _redirect(
                pending.redirect_uri,
                {"error": "access_denied", "error_description": "the user said no"},
                pending.state,
            )
        who = self.space.sign_in(str(form.get("login", "")), str(form.get("password", "")))
        if who is None:
            return _form(str(form["request_id"]), pending, "Wrong e-mail or password.")
        if isinstance(who, SimAccount) and who.kind is not AccountKind.ADMIN:
            return _form(
                str(form["request_id"]), pending, "This account may not use the space's API."
            )
        del self.pending[str(form["request_id"])]
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            client_id=pending.client.client_id,
            redirect_uri=pending.redirect_uri,
            scopes=pending.scopes,
            challenge=pending.challenge,
            role=Role.MEMBER if isinstance(who, SimMember) else Role.ADMIN,
            membership_id=who.id if isinstance(who, SimMember) else None,
            user=who.login,
            created=time.monotonic(),
        )
        return _redirect(pending.redirect_uri, {"code": code}, pending.state)

    # --- token (RFC 6749 §4.1.3, RFC 7636 §4.6) ---------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return _error(400, "invalid_request", "the body must be form-encoded")
        form = await request.post()
        if form.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type", "authorization_code only")
        if "client_secret" in form or request.headers.get("Authorization"):
            return _error(401, "invalid_client", "a public client has no secret")
        grant = self.grants.get(str(form.get("code", "")))
        if grant is None:
            return _error(400, "invalid_grant", "unknown code")
        if grant.used:
            if grant.token is not None:  # a replayed code: revoke what it bought
                self.space.access_tokens.pop(grant.token, None)
            return _error(400, "invalid_grant", "code already used")
        grant.used = True
        if time.monotonic() - grant.created > CODE_LIFETIME:
            return _error(400, "invalid_grant", "code expired")
        if form.get("client_id") != grant.client_id:
            return _error(400, "invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri differs from the authorization")
        verifier = str(form.get("code_verifier", ""))
        if not VERIFIER.fullmatch(verifier):
            return _error(400, "invalid_request", "code_verifier: 43-128 unreserved characters")
        from gateway.login.oauth import s256  # one implementation of RFC 7636 §4.2

        if s256(verifier) != grant.challenge:
            return _error(400, "invalid_grant", "code_verifier does not match the challenge")
        access = self.space.add_access_token(
            secrets.token_hex(32),
            role=grant.role,
            membership_id=grant.membership_id,
            scopes=grant.scopes,
            user=grant.user,
        )
        grant.token = access.token
        response = web.json_response(
            {"access_token": access.token, "token_type": "Bearer", "scope": " ".join(grant.scopes)}
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response


def add_oauth_routes(app: web.Application, space: SimSpace) -> OAuthServer:
    server = OAuthServer(space)
    app.router.add_get("/.well-known/oauth-authorization-server", server.metadata)
    app.router.add_get("/.well-known/openid-configuration", server.metadata)
    app.router.add_post("/oauth/register", server.register)
    app.router.add_get("/oauth/authorize", server.authorize)
    app.router.add_post("/oauth/authorize", server.decide)
    app.router.add_post("/oauth/token", server.token)
    return server


def _loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _acceptable_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.fragment or not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))


def _same_redirect(asked: str, registered: str) -> bool:
    """Exact match, except the port of a loopback http URI (RFC 8252 §7.3)."""
    if asked == registered:
        return True
    a, r = urlsplit(asked), urlsplit(registered)
    return (
        a.scheme == r.scheme == "http"
        and _loopback(a.hostname)
        and a.hostname == r.hostname
        and (a.path, a.query) == (r.path, r.query)
    )


def _redirect(uri: str, params: dict[str, str], state: str | None) -> web.Response:
    if state is not None:
        params = {**params, "state": state}
    sep = "&" if urlsplit(uri).query else "?"
    # A plain 302 response (not web.HTTPFound raised: the server's middleware turns
    # raised HTTP exceptions into JSON errors).
    return web.Response(status=302, headers={"Location": f"{uri}{sep}{urlencode(params)}"})


def _error(status: int, error: str, description: str) -> web.Response:
    response = web.json_response({"error": error, "error_description": description}, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(status: int, title: str, text: str) -> web.Response:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")


def _form(request_id: str, pending: Pending, problem: str = "") -> web.Response:
    e = html.escape
    scopes = "".join(f"<li><code>{e(s)}</code></li>" for s in pending.scopes)
    body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Authorize {e(pending.client.name)}</title></head><body>
<h1>Sign in to Cobot</h1>
<p><strong>{e(pending.client.name) or "An application"}</strong> asks for access to this
space with these permissions:</p><ul>{scopes}</ul>
{f'<p role="alert">{e(problem)}</p>' if problem else ""}
<form method="post" action="/oauth/authorize">
<input type="hidden" name="request_id" value="{e(request_id)}">
<label>E-mail <input name="login" type="email" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password">
</label>
<button name="decision" value="allow" type="submit">Allow</button>
<button name="decision" value="deny" type="submit">Deny</button>
</form></body></html>"""
    return web.Response(status=200 if not problem else 401, text=body, content_type="text/html")
