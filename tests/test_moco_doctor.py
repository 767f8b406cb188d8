"""`doctor` with [moco]: the key is tried with a cheap read, each mapped user too."""

from __future__ import annotations

import io
from pathlib import Path

from gateway.doctor import run_doctor
from gateway.moco_sim import ACCOUNT_KEY, demo_moco, run_moco_sim
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from tests.test_doctor import SYNCED, parse_rows, system_for, write_config


def moco_section(url: str, own_key: Path) -> str:
    return f"""
[moco]
base_url = "{url}"

[[moco.users]]
token = "7F00000001"
user_id = 933590696

[[moco.users]]
token = "7F00000002"
user_id = 933590697
api_key_file = "{own_key}"

[[moco.users]]
token = "7F00000003"
user_id = 42
"""


async def run(tmp_path: Path, key: str, own: str) -> tuple[int, str, dict[str, str]]:
    own_key = tmp_path / "own-key"
    own_key.write_text(own)
    async with run_sim(demo_space()) as url, run_moco_sim(demo_moco()) as moco_url:
        cfg = write_config(tmp_path, url, moco_section(moco_url, own_key))
        out = io.StringIO()
        env = {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN, "MOCO_API_KEY": key}
        code = await run_doctor(cfg, out, env=env, system=system_for(tmp_path), clock_probes=SYNCED)
    return code, out.getvalue(), parse_rows(out.getvalue())


async def test_the_key_and_each_user_are_checked(tmp_path: Path) -> None:
    code, text, rows = await run(tmp_path, ACCOUNT_KEY, "moco-user-key-933590697")
    assert rows["moco key"].startswith("ok")
    assert rows["moco"].startswith("ok") and "accepted the key" in rows["moco"]
    assert rows["moco user 933590696"] == "ok presences readable (account key impersonating)"
    assert rows["moco user 933590697"] == "ok presences readable (own key)"
    # User 42 does not exist in MOCO: the account key may not act for them.
    assert rows["moco user 42"].startswith("FIX") and "403" in rows["moco user 42"]
    assert code == 1
    assert ACCOUNT_KEY not in text and "moco-user-key" not in text


async def test_a_wrong_key_is_a_401_with_what_to_do(tmp_path: Path) -> None:
    code, text, rows = await run(tmp_path, "wrong-key", "also-wrong")
    assert rows["moco"].startswith("FIX") and "401" in rows["moco"]
    assert (
        rows["moco user 933590697"].startswith("FIX")
        and "own key (401)" in rows["moco user 933590697"]
    )
    assert "Integrations" in text and code == 1
    assert "wrong-key" not in text
