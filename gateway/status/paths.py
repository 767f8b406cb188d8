"""Where the status socket lives.

The runtime directory, first that applies:

1. ``$RUNTIME_DIRECTORY`` (its first entry): systemd's ``RuntimeDirectory=checkin-gateway``
   gives the service ``/run/checkin-gateway``, a tmpfs removed when the service stops.
2. ``/run/checkin-gateway`` when it exists and we may write there: what the CLI, run
   from a shell without the unit's environment, finds the service's socket in.
3. ``$XDG_RUNTIME_DIR/checkin-gateway`` (a user's tmpfs, ``/run/user/UID``) for a gateway
   run by hand, else ``/dev/shm/checkin-gateway-UID`` (tmpfs too; the server refuses a
   directory there that is not its own, so another user cannot plant one).

The socket's name carries a digest of the resolved state directory, so two gateways on
one machine (tests, two doors) never answer for each other, and ``status --config X``
finds the daemon of X's state dir and no other. A unix socket's traffic never touches
the disk; only its directory entry is created, on tmpfs in every case above.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

SERVICE_RUNTIME_DIR = Path("/run/checkin-gateway")


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("RUNTIME_DIRECTORY"):
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0])
    if SERVICE_RUNTIME_DIR.is_dir() and os.access(SERVICE_RUNTIME_DIR, os.W_OK | os.X_OK):
        return SERVICE_RUNTIME_DIR
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "checkin-gateway"
    return _shm()


def _shm() -> Path:
    return Path(f"/dev/shm/checkin-gateway-{os.geteuid()}")  # noqa: S108 - owner checked


def socket_path(state_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """``<runtime dir>/status-<digest of state_dir>.sock`` (always under 108 bytes for
    the runtime dirs above)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return runtime_dir(env) / f"status-{digest}.sock"


def candidates(state_dir: Path, env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a client looks: the path this process would use, then the service's."""
    env = os.environ if env is None else env
    first = socket_path(state_dir, env)
    digest = first.name
    out = [first]
    for base in (
        SERVICE_RUNTIME_DIR,
        Path(env["XDG_RUNTIME_DIR"]) / "checkin-gateway" if env.get("XDG_RUNTIME_DIR") else None,
        _shm(),
    ):
        if base is not None and base / digest not in out:
            out.append(base / digest)
    return out
