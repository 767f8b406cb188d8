"""`make demo` is the first thing a newcomer runs: it must keep working."""

from __future__ import annotations

import subprocess
import sys

from tests.daemon import REPO


def test_demo_tells_what_happened_to_each_tap() -> None:
    script = "0A1B2C3D4E\n0A00000002\nout 0A1B2C3D4E\nquit\n"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo"],
        input=script,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "Ready: 6 cards synced from Cobot" in out
    assert "who    Ada Lovelace" in out
    assert "door   OPEN" in out
    assert "check-in landed for Ada Lovelace" in out
    assert "Cobot's preview said no: No time passes left." in out
    assert "door   stays SHUT" in out
    assert "checked out" in out
    assert "https://YOUR-SPACE.cobot.me" in out  # how to point it at a real space
    assert "0A1B2C3D4E" in out and "********4E" in out  # listed as demo data, taps redacted


def test_the_demo_staff_card_clocks_in_at_moco() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo"],
        input="5E00000001\nquit\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "John Doe (staff)" in out
    assert "a staff card, clocked at MOCO" in out
    assert "moco   clocked IN" in out
