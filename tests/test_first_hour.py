"""The first hour (issue 13, cases 4, 5, 8): config mistakes found at check-config with
one line and exit 2, one config file name everywhere, the simulator's own errors."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import config_warnings, load_config
from gateway.errors import ConfigError
from tests.conftest import require
from tests.daemon import REPO

BASE = """
[gateway]
state_dir = "{state}"

[cobot]
base_url = "https://co-up.cobot.me"

[[readers]]
name = "front"
type = "serial"
port = "/dev/ttyAMA0"
door = "front"

[[doors]]
name = "front"
type = "command"
command = ["true"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text.replace("{state}", str(tmp_path / "state")))
    return path


SECOND_READER = '\n[[readers]]\nname = "back"\ntype = "serial"\nport = "/dev/ttyAMA0"\n'


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "[cobot]",
            "decision_deadline = nan\n\n[cobot]",
            "gateway.decision_deadline: expected a finite number, got nan",
        ),
        (
            "[cobot]",
            "token_sync_interval = inf\n\n[cobot]",
            "gateway.token_sync_interval: expected a finite number, got inf",
        ),
        (
            'name = "front"\ntype = "serial"',
            'name = ""\ntype = "serial"',
            "readers[0].name: expected a non-empty string, got ''",
        ),
        (
            'port = "/dev/ttyAMA0"',
            'port = " "',
            "readers[0].port: expected a non-empty string, got ' '",
        ),
        (
            "[[doors]]",
            SECOND_READER + "\n[[doors]]",
            "readers[1].port: '/dev/ttyAMA0' is already used by reader 'front'",
        ),
        (
            'state_dir = "{state}"',
            'state_dir = "var/lib/gw"',
            "gateway.state_dir: expected an absolute path, got 'var/lib/gw'",
        ),
        (
            'door = "front"',
            'door = "front"\nprotocol = "line"\ntoken_format = "decimal"',
            "readers[0].token_format: does not apply to protocol = 'line'",
        ),
        (
            'command = ["true"]',
            "command = []",
            "doors[0].command: expected a list of at least 1 item(s), got 0",
        ),
        (
            'command = ["true"]',
            'command = [""]',
            "doors[0].command[0]: expected a non-empty string",
        ),
        (
            'command = ["true"]',
            'command = ["true"]\nfeedback_command = []',
            "doors[0].feedback_command: expected a list of at least 1 item(s), got 0",
        ),
        (
            '[gateway]\nstate_dir = "{state}"',
            "gateway = 5",
            "gateway: expected a table ([gateway] on a line of its own), got int 5",
        ),
        (
            'name = "front"\ntype = "serial"',
            'name = "front"',
            "readers[0].type: missing; expected one of 'serial', 'nfc', 'keyboard', 'mac'",
        ),
        ("[cobot]", "[cobbot]", "cobbot: unknown section (did you mean [cobot]?)"),
    ],
)
async def test_check_config_rejects_with_one_line_and_exit_2(
    tmp_path: Path, old: str, new: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    assert await main(["check-config", "--config", str(path)], io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"config error: {path}: ")
    assert expected in err


async def test_a_state_dir_that_is_a_file_fails_check_config_not_run(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(ConfigError, match="gateway.state_dir: .* exists and is not a directory"):
        load_config(write(tmp_path, BASE))


async def test_warnings_for_allowed_but_unlikely_settings(tmp_path: Path) -> None:
    text = BASE.replace("[cobot]\n", "[cobot]\ncheck_in_rpm = 500\n")
    out = io.StringIO()
    assert await main(["check-config", "--config", str(write(tmp_path, text))], out) == 0
    assert "warning: " in out.getvalue()
    assert (
        "cobot.check_in_rpm: 500 is above Cobot's limit of 120 check-ins a minute" in out.getvalue()
    )
    no_readers = (
        BASE.split("[[readers]]", maxsplit=1)[0]
        + '[[doors]]\nname = "front"\ntype = "command"\ncommand = ["true"]\n'
    )
    cfg = load_config(write(tmp_path, no_readers))
    assert any("no reader and no [portal]" in w for w in config_warnings(cfg))


def test_run_fails_on_config_with_one_line_before_any_log(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("[cobot]", "decision_deadline = nan\n\n[cobot]"))
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env={**os.environ, "COBOT_ACCESS_TOKEN": "x"},
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"config error: {path}: gateway.decision_deadline: expected a finite number, got nan"
    ]
    assert proc.stdout == ""


# --- one config file name -----------------------------------------------------------


def test_one_config_file_name_everywhere() -> None:
    names = {}
    for rel in (
        "README.md",
        "Makefile",
        "config/example.toml",
        "systemd/checkin-gateway.service",
        "gateway/demo.py",
        "gateway/cli.py",
        "gateway/doctor/system.py",
        "gateway/doctor/__init__.py",
    ):
        for name in re.findall(
            r"checkin-gateway(?:\}|/|\)/)([a-z_-]+\.toml)", (REPO / rel).read_text()
        ):
            names.setdefault(name, []).append(rel)
    assert set(names) == {"config.toml"}, names


def test_the_example_headers_command_passes_on_the_example_as_installed(tmp_path: Path) -> None:
    make = shutil.which("make")
    require(make is not None, "make is not installed")
    assert make is not None
    subprocess.run(
        [make, "-s", "-C", str(REPO), "install-files", f"DESTDIR={tmp_path}"],
        capture_output=True,
        check=True,
    )
    header = (tmp_path / "etc/checkin-gateway/config.toml").read_text().split("\n[", 1)[0]
    command = re.search(r"^#\s+(checkin-gateway check-config --config (\S+))$", header, re.M)
    assert command is not None, header
    installed = tmp_path / command.group(2).lstrip("/")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COBOT_ACCESS_TOKEN", "INVOCATION_ID", "CREDENTIALS_DIRECTORY")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(installed)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{installed}: OK (1 reader(s), 1 door(s), offline policy known-tokens)" in proc.stdout
    # No token yet on a fresh install: said, with the way to get one.
    assert f"get one with: sudo checkin-gateway login --config {installed}" in proc.stdout


# --- the simulator's own errors -------------------------------------------------------


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.sim", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )


def test_the_simulator_says_one_line_for_a_bad_port_or_log_level() -> None:
    proc = sim("--port", "70000")
    assert (proc.returncode, proc.stderr) == (
        2,
        "python -m gateway.sim: error: argument --port: port 70000 is out of range (0-65535; 0: any free)\n",
    )
    proc = sim("--log-level", "loud")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "invalid choice: 'loud'" in proc.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = sim("--port", str(port))
    assert (proc.returncode, proc.stderr) == (
        2,
        f"cannot listen on 127.0.0.1:{port}: Address already in use\n",
    )


def test_make_sim_does_not_default_to_the_portal_port() -> None:
    from gateway.config.model import PortalSection
    from gateway.sim.__main__ import parse_args

    portal_port = next(
        f.default for f in PortalSection.__dataclass_fields__.values() if f.name == "port"
    )
    assert parse_args([]).port != portal_port
