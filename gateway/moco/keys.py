"""Finding MOCO API keys: the account key and each user's own (``[moco]``).

The account key: ``api_key_file``, else ``$MOCO_API_KEY``, else the systemd credential
``$CREDENTIALS_DIRECTORY/moco-api-key`` (LoadCredential=). A user with their own
``api_key_file`` acts with it; every other user is acted for by the account key through
``X-IMPERSONATE-USER-ID``. The account key may be absent only if every user has a key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.model import Config
from gateway.config.schema import Where
from gateway.errors import ConfigError

CREDENTIAL_NAME = "moco-api-key"
ENV_NAME = "MOCO_API_KEY"


@dataclass(frozen=True, slots=True)
class MocoKeys:
    account: str | None
    per_user: Mapping[int, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print a key, even in a traceback
        return f"MocoKeys(account={'set' if self.account else None}, users={sorted(self.per_user)})"

    def credentials(self, user_id: int | None) -> tuple[str, int | None]:
        """(key, user to impersonate or None) for acting as ``user_id`` (None: the
        account key as itself)."""
        if user_id is None:
            if self.account is None:
                raise ConfigError("no MOCO account key")
            return self.account, None
        own = self.per_user.get(user_id)
        if own is not None:
            return own, None
        if self.account is None:
            raise ConfigError(f"no MOCO key acts for user {user_id}")
        return self.account, user_id


def load_moco_keys(cfg: Config, env: Mapping[str, str] | None = None) -> MocoKeys:
    """Raise ``ConfigError`` naming the file and key when a key cannot be read."""
    assert cfg.moco is not None
    env = os.environ if env is None else env
    where = Where(cfg.source).key("moco")
    per_user: dict[int, str] = {}
    for i, user in enumerate(cfg.moco.users):
        if user.api_key_file is not None:
            at = where.key("users").index(i).key("api_key_file")
            per_user[user.user_id] = _read_key(user.api_key_file, at)
    account = _account_key(cfg, env, where.key("api_key_file"))
    if account is None and any(u.user_id not in per_user for u in cfg.moco.users):
        raise where.key("api_key_file").error(
            f"no MOCO API key: set api_key_file, or the environment variable {ENV_NAME}, or "
            f"LoadCredential={CREDENTIAL_NAME}:... in the systemd unit (or give every user "
            "their own api_key_file)"
        )
    return MocoKeys(account, per_user)


def _account_key(cfg: Config, env: Mapping[str, str], where: Where) -> str | None:
    assert cfg.moco is not None
    if cfg.moco.api_key_file is not None:
        return _read_key(cfg.moco.api_key_file, where)
    if env.get(ENV_NAME, "").strip():
        return env[ENV_NAME].strip()
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL_NAME).exists():
        return _read_key(Path(creds) / CREDENTIAL_NAME, where)
    return None


def _read_key(path: Path, where: Where) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise where.error(f"cannot read {path}: {exc.strerror}") from exc
    if not key:
        raise where.error(f"{path} is empty")
    return key
