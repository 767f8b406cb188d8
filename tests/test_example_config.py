"""config/example.toml: valid for `check-config`, and it shows every key there is."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config.integrations import AdminSection, MetricsSection, MqttSection
from gateway.config.loader import load_config
from gateway.config.model import (
    DOOR_TYPES,
    READER_TYPES,
    BookingsSection,
    CobotSection,
    GatewaySection,
    MocoSection,
    MocoUser,
    PortalSection,
    QueueSection,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.toml"


async def test_check_config_accepts_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under systemd the token comes from LoadCredential; here from the environment.
    monkeypatch.setenv("COBOT_ACCESS_TOKEN", "example-token")
    out = io.StringIO()
    assert await main(["check-config", "--config", str(EXAMPLE)], out) == 0
    assert "OK" in out.getvalue()


def tables(text: str) -> dict[str, str]:
    """Each table's text, commented-out lines included, keyed by its header; an array
    table (``[[readers]]``) is keyed by its ``type``."""
    found: dict[str, str] = {}
    header = "top"
    for block in re.split(r"^#? ?(\[\[?[a-z_]+\]\]?)\s*$", text, flags=re.M):
        if re.fullmatch(r"\[\[?[a-z_]+\]\]?", block):
            header = block
            continue
        if header.startswith("[["):
            kind = re.search(r'^#? ?type = "([a-z-]+)"', block, re.M)
            assert kind, f"{header} without a type"
            key = f"{header}:{kind.group(1)}"
        else:
            key = header
        found[key] = found.get(key, "") + block
    return found


def keys_shown(block: str) -> set[str]:
    return set(re.findall(r"^#? ?([a-z_][a-z0-9_]*) = ", block, re.M))


SECTIONS = {
    "[gateway]": GatewaySection,
    "[cobot]": CobotSection,
    "[queue]": QueueSection,
    "[bookings]": BookingsSection,
}


@pytest.mark.parametrize(
    ("header", "cls"),
    [
        *SECTIONS.items(),
        *((f"[[readers]]:{t}", c) for t, c in READER_TYPES.items()),
        *((f"[[doors]]:{t}", c) for t, c in DOOR_TYPES.items()),
        ("[portal]", PortalSection),  # commented out: optional, and needs CAP_NET_ADMIN
        ("[moco]", MocoSection),  # commented out: optional
        ("[moco]", MocoUser),  # [[moco.users]] lines are part of [moco]'s text here
        ("[metrics]", MetricsSection),  # commented out: optional
        ("[mqtt]", MqttSection),
        ("[admin]", AdminSection),  # commented out: needs a password file first
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_every_key_is_shown(header: str, cls: type) -> None:
    found = tables(EXAMPLE.read_text())
    assert header in found, f"config/example.toml has no {header} table (commented or not)"
    expected = {f.name for f in dataclasses.fields(cls) if f.init}
    missing = expected - keys_shown(found[header])
    if "[[moco.users]]" in found[header]:
        missing.discard("users")  # shown as its array of tables
    assert not missing, f"{header}: keys missing from config/example.toml: {sorted(missing)}"


def test_the_active_part_uses_the_real_keys_and_defaults() -> None:
    cfg = load_config(EXAMPLE)
    assert str(cfg.gateway.state_dir) == "/var/lib/checkin-gateway"
    assert cfg.cobot.access_token_file is None  # the unit's LoadCredential supplies it
    for section, cls in SECTIONS.items():
        shown = tables(EXAMPLE.read_text())[section]
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING:
                continue
            value = getattr(getattr(cfg, section.strip("[]")), f.name)
            if f"# {f.name} = " not in shown:
                assert value == f.default, (
                    f"{section} {f.name}: the example differs from the default"
                )
