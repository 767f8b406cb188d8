"""Several gateways on one Cobot account (issue 17): three daemon processes, one
simulated Cobot, one Mosquitto. Static shares (check_in_rpm) keep each gateway in its
part; a 429 that one of them gets anyway (Cobot's window holds someone else's requests
too) is shared through the retained fleet topic, so the others hold back instead of
earning their own 429; without the broker each door still decides alone."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.ratelimit import CHECK_INS_TEMPLATE
from gateway.sim.seed import NFC_TOKEN, RDM_TOKEN
from tests.daemon import Daemon
from tests.mqtt_broker import mosquitto, watch

pytestmark = pytest.mark.real

SHARE = 4  # check_in_rpm per gateway
COBOT_LIMIT = 9  # what the simulated account has left for the fleet this minute


def fleet_config(tmp_path: Path, name: str, base_url: str, port: int) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(
        f'[gateway]\nstate_dir = "{tmp_path / name}"\nname = "{name}"\nlog_format = "json"\n'
        f'[cobot]\nbase_url = "{base_url}"\ncheck_in_rpm = {SHARE}\n'
        '[[readers]]\nname = "desk"\ntype = "keyboard"\ndoor = "front"\ndebounce = 0\n'
        '[[doors]]\nname = "front"\ntype = "command"\ncommand = ["true"]\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    return cfg


async def tap(daemon: Daemon, token: str) -> dict[str, Any]:
    assert daemon.proc is not None and daemon.proc.stdin is not None
    seen = len(daemon.events)
    daemon.proc.stdin.write(f"{token}\n".encode())
    await daemon.proc.stdin.drain()
    return await daemon.wait_for(
        lambda e: e.get("event") == "tap" and daemon.events.index(e) >= seen, timeout=10
    )


async def test_three_gateways_share_a_429_and_decide_alone_without_the_broker(
    tmp_path: Path,
) -> None:
    space = demo_space()
    space.rate_limit.limits[CHECK_INS_TEMPLATE] = COBOT_LIMIT
    with mosquitto(tmp_path) as broker:
        async with (
            run_sim(space) as base_url,
            watch(broker.port, "checkin-gateway/fleet/#") as fleet,
        ):
            daemons = {
                name: Daemon(
                    fleet_config(tmp_path, name, base_url, broker.port),
                    {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN},
                    stdin_pipe=True,
                )
                for name in ("gw1", "gw2", "gw3")
            }
            try:
                for d in daemons.values():
                    await d.start()
                for d in daemons.values():
                    await d.wait_for("mqtt_ready")
                    await d.wait_for("token_sync")
                gw1, gw2, gw3 = daemons.values()

                def check_ins(status: int | None = None) -> int:
                    return sum(
                        1
                        for r in space.requests
                        if r.template == CHECK_INS_TEMPLATE
                        and (status is None or r.status == status)
                    )

                # Unknown cards: one preview each. gw1 uses 2 of its 4, gw2 all 4.
                for i in range(2):
                    assert (await tap(gw1, f"AA000000{i:02d}"))["outcome"] == "refused"
                for i in range(SHARE + 1):
                    await tap(gw2, f"BB000000{i:02d}")
                assert check_ins() == 6  # gw2's fifth never left: its own share was used up
                # gw3: three fit in Cobot's window, the fourth earns a 429.
                for i in range(SHARE):
                    await tap(gw3, f"CC000000{i:02d}")
                assert check_ins(429) == 1
                await fleet.wait_for("checkin-gateway/fleet/retry_after/check_ins")
                for d in (gw1, gw2):
                    event = await d.wait_for("fleet_retry_after")
                    assert event["peer"] == "gw3" and event["seconds"] > 30

                # gw1 still has slots of its own, but holds back: Ada is let in on the
                # cache, and Cobot sees no request (no second 429).
                before = check_ins()
                decided = await tap(gw1, RDM_TOKEN)
                assert decided["opened"] is True and decided["outcome"] == "opened-offline"
                assert check_ins() == before and check_ins(429) == 1
                assert check_ins(200) + check_ins(201) + check_ins(422) <= COBOT_LIMIT

                # The broker goes: each door still decides alone, at once.
                broker.stop()
                for d in (gw1, gw2, gw3):
                    await d.wait_for("mqtt_lost")
                decided = await tap(gw2, NFC_TOKEN)
                assert decided["opened"] is True
                assert decided["latency_ms"] < 1500
            finally:
                for d in daemons.values():
                    with contextlib.suppress(Exception):
                        await d.stop()
                    await d.kill()
