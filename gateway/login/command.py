"""``checkin-gateway login``: from nothing to a working Cobot access token.

1. discover the space's authorization server (``cobot.base_url``'s metadata);
2. register a public client for this gateway (RFC 7591);
3. listen on 127.0.0.1 and print the authorization URL (PKCE S256, the scopes the
   configured features need); on a headless Pi, say how ``ssh -L`` brings the browser's
   redirect back;
4. exchange the code, check every needed scope was granted, write the token file 0600
   where the config says (``cobot.access_token_file``, else ``cobot-token`` beside the
   config: the file the unit's ``LoadCredential=`` reads);
5. try the token with the doctor's own API checks.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from pathlib import Path
from typing import TextIO

import aiohttp

from gateway import __version__
from gateway.config import load_config
from gateway.config.loader import CREDENTIAL_NAME
from gateway.doctor.api import check_api
from gateway.doctor.report import Report
from gateway.doctor.system import System
from gateway.login.loopback import LoopbackReceiver
from gateway.login.oauth import LoginError, Pkce, authorization_url, discover, exchange, register
from gateway.login.scopes import required_scopes

HTTP_TIMEOUT = 15.0  # seconds per request to the authorization server


def token_path(config_path: Path, access_token_file: Path | None) -> Path:
    return access_token_file or config_path.parent / CREDENTIAL_NAME


async def run_login(config_path: Path, out: TextIO, *, port: int = 0, wait: float = 600.0) -> int:
    """0 when a token with every needed scope is stored and works; 1 otherwise
    (LoginError carries the reason); ConfigError for the config."""
    cfg = load_config(config_path)
    target = token_path(config_path, cfg.cobot.access_token_file)
    if not target.parent.is_dir():
        raise LoginError(f"{target.parent} does not exist: cannot store the token there")
    scopes = list(required_scopes(cfg))

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    http_timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    async with aiohttp.ClientSession(timeout=http_timeout) as http:
        md = await discover(http, cfg.cobot.base_url)
        state = secrets.token_urlsafe(24)
        pkce = Pkce.new()
        async with LoopbackReceiver(state, port) as receiver:
            name = f"checkin-gateway {__version__} on {socket.gethostname()}"
            client_id = await register(http, md, receiver.redirect_uri, name, scopes)
            url = authorization_url(md, client_id, receiver.redirect_uri, scopes, state, pkce)
            say(f"Signing in to {cfg.cobot.base_url} for the scopes: {' '.join(scopes)}")
            say("Open this address in a browser and sign in as an admin of the space:")
            say()
            say(f"  {url}")
            say()
            say("On a Pi without a browser: from your computer run")
            say(f"  ssh -L {receiver.port}:127.0.0.1:{receiver.port} {_login_host()}")
            say("then open the address above in your computer's browser.")
            say(f"Waiting for the browser (at most {wait / 60:.0f} min; Ctrl-C stops)...")
            try:
                async with asyncio.timeout(wait):
                    code = await receiver.code()
            except TimeoutError:
                raise LoginError(
                    f"no answer from the browser within {wait:.0f} s; nothing was stored"
                ) from None
        token = await exchange(http, md, client_id, code, receiver.redirect_uri, pkce, scopes)
    missing = [s for s in scopes if s not in token.scopes]
    if missing:
        raise LoginError(
            f"Cobot granted {' '.join(token.scopes) or 'no scopes'} but the gateway needs "
            f"{' '.join(missing)} too; sign in as an admin whose permissions include them. "
            "Nothing was stored."
        )
    write_private(target, token.access_token + "\n")
    say(f"Token stored in {target} (mode 0600).")
    report = Report()
    await check_api(
        report, cfg, System(credential_file=target), {"COBOT_ACCESS_TOKEN": token.access_token}
    )
    report.render(out)
    return 0 if report.ok else 1


def _login_host() -> str:
    user = os.environ.get("SUDO_USER") or os.environ.get("USER") or "pi"
    return f"{user}@{socket.gethostname()}"


def write_private(path: Path, text: str) -> None:
    """Write ``path`` atomically, mode 0600 from its first byte (whatever the umask):
    a temporary file beside it, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    tmp.replace(path)
