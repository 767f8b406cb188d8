"""TOML for tests that run ``checkin-gateway run`` as a subprocess."""

from __future__ import annotations

from pathlib import Path


def daemon_config(
    tmp_path: Path,
    base_url: str,
    reader: str,
    *,
    door_log: Path | None = None,
    gateway: str = "",
    cobot: str = "",
    extra: str = "",
) -> Path:
    """A config with one reader (``reader``: the lines of its table) on door "front",
    JSON logs, state under ``tmp_path``. The door appends "opened" to ``door_log``.
    ``extra``: more top-level tables (e.g. ``[moco]``)."""
    door = f'["sh", "-c", "echo opened >> {door_log}"]' if door_log else '["true"]'
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
[gateway]
state_dir = "{tmp_path / "state"}"
log_format = "json"
{gateway}

[cobot]
base_url = "{base_url}"
{cobot}

[[readers]]
door = "front"
{reader}

[[doors]]
name = "front"
type = "command"
command = {door}
{extra}
""")
    return cfg
