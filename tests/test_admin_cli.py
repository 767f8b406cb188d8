"""``checkin-gateway admin-password``: the hash file the admin page needs."""

from __future__ import annotations

import io
import stat

import pytest

from gateway.admin.password import PasswordCheck, load_hash
from gateway.cli import main


def _config(tmp_path, admin: str) -> str:
    path = tmp_path / "gw.toml"
    path.write_text(
        f'[gateway]\nstate_dir = "{tmp_path}/state"\n[cobot]\nbase_url = "http://127.0.0.1:9"\n'
        '[[readers]]\nname = "k"\ntype = "keyboard"\n' + admin
    )
    return str(path)


async def test_writes_an_argon2_hash_readable_by_its_owner_only(tmp_path, monkeypatch):
    hash_file = tmp_path / "etc" / "admin.hash"
    cfg = _config(tmp_path, f'[admin]\npassword_file = "{hash_file}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    out = io.StringIO()
    assert await main(["admin-password", "--config", cfg, "--stdin"], out) == 0
    encoded = load_hash(hash_file)
    assert encoded.startswith("$argon2id$")
    assert "a long enough password" not in hash_file.read_text() + out.getvalue()
    assert stat.S_IMODE(hash_file.stat().st_mode) == 0o600
    check = PasswordCheck(encoded)
    assert await check.verify("a long enough password")
    assert not await check.verify("a long enough passworD")


async def test_refuses_a_short_password_and_a_config_without_the_file(
    tmp_path, monkeypatch, capsys
):
    hash_file = tmp_path / "admin.hash"
    cfg = _config(tmp_path, f'[admin]\npassword_file = "{hash_file}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert await main(["admin-password", "--config", cfg, "--stdin"], io.StringIO()) == 1
    assert "at least" in capsys.readouterr().err
    assert not hash_file.exists()
    no_file = _config(tmp_path, "[admin]\n")
    assert await main(["admin-password", "--config", no_file, "--stdin"], io.StringIO()) == 2
    assert "password_file" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["port = 0", 'listen = "127.0.0.1"', 'pasword_file = "x"'])
async def test_admin_config_errors_name_the_key(tmp_path, bad, capsys):
    cfg = _config(tmp_path, f"[admin]\n{bad}\n")
    assert await main(["check-config", "--config", cfg], io.StringIO()) == 2
    assert "admin." in capsys.readouterr().err


def test_admin_page_never_on_the_portal_side(tmp_path):
    from gateway.config import config_warnings, parse_config
    from gateway.errors import ConfigError

    base = {"gateway": {"state_dir": str(tmp_path)}, "cobot": {"base_url": "http://x"}}
    portal = {"space_name": "S", "interface": "wlan0"}
    with pytest.raises(ConfigError, match=r"admin\.listen: a wildcard address"):
        parse_config({**base, "portal": portal, "admin": {"listen": ["0.0.0.0"]}}, "t")
    with pytest.raises(ConfigError, match=r"admin\.port: 8080 is the portal's port"):
        parse_config(
            {
                **base,
                "portal": {**portal, "listen": ["10.0.0.1"]},
                "admin": {"listen": ["10.0.0.1"], "port": 8080},
            },
            "t",
        )
    cfg = parse_config({**base, "admin": {"listen": ["::"]}}, "t")  # no portal: a warning
    assert any("admin.listen" in w for w in config_warnings(cfg))
    assert parse_config({**base, "portal": portal, "admin": {}}, "t").admin is not None
