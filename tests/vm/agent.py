"""The guest's test agent: JSON requests on the virtio-serial port named ``agent``.

Runs as root inside the test VM (checkin-vm-agent.service, made by build_image.sh),
with the guest's system Python and its standard library only. The VM has no network
device: this port is the host's only way in.

One request per line, one answer per line, in order::

    {"id": 1, "op": "ping"}
        -> {"id": 1, "ok": true, "boot_seconds": 14.2}
    {"id": 2, "op": "run", "argv": ["ls", "/"], "cwd": "/", "env": {...},
     "input": "text", "timeout": 60}
        -> {"id": 2, "ok": true, "rc": 0, "stdout": "...", "stderr": "..."}
    {"id": 3, "op": "write", "path": "/etc/x", "text": "...", "mode": 420 (optional)}
        -> {"id": 3, "ok": true}
    {"id": 4, "op": "poweroff"} -> {"id": 4, "ok": true}, then the guest powers off

A malformed or failed request gets ``{"ok": false, "error": "..."}``; the agent never
exits on a bad request (systemd restarts it if it ever does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PORT_NAME = "agent"


def find_port() -> Path:
    """The port's device node; virtio_console may still be loading at boot."""
    while True:
        for entry in Path("/sys/class/virtio-ports").glob("vport*"):
            name = entry / "name"
            if name.is_file() and name.read_text().strip() == PORT_NAME:
                node = Path("/dev") / entry.name
                if node.exists():
                    return node
        time.sleep(0.1)


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def run(req: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})
    try:
        done = subprocess.run(
            [str(a) for a in req["argv"]],
            input=req.get("input"),
            capture_output=True,
            text=True,
            errors="replace",
            cwd=req.get("cwd") or "/",
            env=env,
            timeout=float(req.get("timeout", 60)),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:

        def text(part: bytes | str | None) -> str:
            if isinstance(part, bytes):
                return part.decode(errors="replace")
            return part or ""

        return {
            "ok": True,
            "rc": None,
            "timed_out": True,
            "stdout": text(exc.stdout),
            "stderr": text(exc.stderr),
        }
    return {"ok": True, "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def write(req: dict[str, Any]) -> dict[str, Any]:
    path = Path(req["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(req["text"])
    if req.get("mode") is not None:  # not for sysfs attributes
        path.chmod(int(req["mode"]))
    return {"ok": True}


def handle(req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "ping":
        return {"ok": True, "boot_seconds": uptime()}
    if op == "run":
        return run(req)
    if op == "write":
        return write(req)
    if op == "poweroff":
        subprocess.Popen(["systemctl", "poweroff", "--no-block"])
        return {"ok": True}
    return {"ok": False, "error": f"unknown op {op!r}"}


def serve(port: Path) -> None:
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    with os.fdopen(fd, "r+b", buffering=0) as chan:
        buffer = b""
        while True:
            chunk = chan.read(65536)
            if not chunk:  # host not connected yet, or gone: wait for it
                time.sleep(0.05)
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    req = json.loads(line)
                    answer = handle(req)
                    answer["id"] = req.get("id")
                except Exception as exc:  # the agent must keep serving
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                data = memoryview(json.dumps(answer).encode() + b"\n")
                while data:
                    data = data[chan.write(data) or 0 :]


def main() -> None:
    port = find_port()
    print(f"agent on {port}", file=sys.stderr, flush=True)
    serve(port)


if __name__ == "__main__":
    main()
