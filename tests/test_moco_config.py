"""The [moco] config: exactly the issue's keys, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.moco.keys import load_moco_keys

BASE = """
[gateway]
state_dir = "/tmp/x"

[cobot]
base_url = "https://co-up.cobot.me"
"""

ISSUE = """
[moco]
base_url = "https://acme.mocoapp.com"
api_key_file = "{key}"
min_interval = 60

[[moco.users]]
token = "0A1B2C3D4E"
user_id = 933590696

[[moco.users]]
token = "0a1b2c3d4f"
user_id = 933590697
api_key_file = "{own}"

[[readers]]
type = "keyboard"
name = "staff"
record = ["moco"]

[[readers]]
type = "keyboard"
name = "front"
record = ["cobot", "moco"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + text)
    return path


def test_the_issues_keys_parse_and_the_keys_are_read(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("account-key\n")
    (tmp_path / "own").write_text("own-key\n")
    cfg = load_config(write(tmp_path, ISSUE.format(key=tmp_path / "key", own=tmp_path / "own")))
    assert cfg.moco is not None and cfg.moco.min_interval == 60
    assert [u.user_id for u in cfg.moco.users] == [933590696, 933590697]
    assert [r.record for r in cfg.readers] == [("moco",), ("cobot", "moco")]
    keys = load_moco_keys(cfg, env={})
    assert keys.credentials(933590696) == ("account-key", 933590696)
    assert keys.credentials(933590697) == ("own-key", None)
    assert "account-key" not in repr(keys)


def test_the_account_key_from_the_environment_or_a_credential(tmp_path: Path) -> None:
    text = ISSUE.replace('api_key_file = "{key}"\n', "").format(own=tmp_path / "own")
    (tmp_path / "own").write_text("own-key")
    cfg = load_config(write(tmp_path, text))
    assert load_moco_keys(cfg, env={"MOCO_API_KEY": " k1 "}).account == "k1"
    (tmp_path / "moco-api-key").write_text("k2")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert load_moco_keys(cfg, env=env).account == "k2"
    with pytest.raises(ConfigError, match=r"moco\.api_key_file: no MOCO API key"):
        load_moco_keys(cfg, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[moco]\nbase_url = "https://a.mocoapp.com"\nmin_interval = 30\n',
            "moco.min_interval: must be at least 60",
        ),
        ('[moco]\nbase_url = "https://a.mocoapp.com/api/v1"\n', "moco.base_url: expected the root"),
        (
            '[moco]\nbase_url = "https://a.mocoapp.com"\nmin_intervall = 60\n',
            "did you mean 'min_interval'",
        ),
        (
            '[moco]\nbase_url = "https://a.mocoapp.com"\n[[moco.users]]\ntoken = "A"\nuser_id = 1\n'
            '[[moco.users]]\ntoken = "a"\nuser_id = 2\n',
            r"moco.users\[1\].token: the same token",
        ),
        (
            '[[readers]]\ntype = "keyboard"\nname = "s"\nrecord = ["moco"]\n',
            r"readers\[0\].record: \"moco\" needs a \[moco\]",
        ),
        (
            '[[readers]]\ntype = "keyboard"\nname = "s"\nrecord = ["mocco"]\n',
            r"readers\[0\].record\[0\]: expected one of",
        ),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))
