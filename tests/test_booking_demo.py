"""`make demo` has a meeting room booked for Ada and a free phone booth (issue 14)."""

from __future__ import annotations

import subprocess
import sys

from tests.daemon import REPO


def test_demo_rooms() -> None:
    script = "room 0A1B2C3D4E\nroom 04A1B2C3D4E5F6\nbooth 04A1B2C3D4E5F6\nquit\n"
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
    assert "'room CARD': Meeting Room (Ada Lovelace " in out
    assert "their booking of the room holds now" in out
    assert "no booking: Meeting Room is booked by someone else until" in out
    assert "the room was free: booked Phone Booth for you until" in out
    assert out.count("door   OPEN") == 2 and out.count("door   stays SHUT") == 1
