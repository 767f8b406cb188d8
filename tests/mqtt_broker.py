"""A real Mosquitto on loopback, started and stopped by the test (Debian ``mosquitto``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from tests.conftest import require


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    dir: Path
    port: int
    extra: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.dir / "mosquitto.conf"
        # As root, mosquitto drops to the "mosquitto" user, which cannot read the test's
        # password and ACL files under pytest's private tmp dir: stay root (test only).
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "persistence false\n"
            f"{user}"
            f"{self.extra or 'allow_anonymous true'}\n"
        )
        log = (self.dir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "mosquitto.log").read_text())
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def mosquitto(tmp_path: Path, extra: str = "") -> Iterator[Broker]:
    require(shutil.which("mosquitto") is not None, "Debian's mosquitto is not installed")
    d = tmp_path / "broker"
    d.mkdir(exist_ok=True)
    broker = Broker(d, free_port(), extra)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Watcher:
    """Every message on ``topics`` since it subscribed (retained ones included)."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic]

    def last(self, topic: str) -> bytes | None:
        got = self.payloads(topic)
        return got[-1] if got else None

    def json(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.payloads(topic) if p]

    async def wait_for(
        self, topic: str, payload: bytes | None = None, timeout: float = 10
    ) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                last = self.last(topic)
                if last is not None and (payload is None or last == payload):
                    return last
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def watch(port: int, *topics: str, **auth: Any) -> AsyncIterator[Watcher]:
    """Collect what arrives on ``topics``; a broker stopped by the test ends the
    collection quietly (the test looks at what was collected until then)."""
    watcher = Watcher()
    client = aiomqtt.Client("127.0.0.1", port, **auth)
    await client.__aenter__()
    for t in topics:
        await client.subscribe(t, qos=1)

    async def collect() -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                watcher.messages.append((m.topic.value, payload, bool(m.retain)))

    task = asyncio.create_task(collect())
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
