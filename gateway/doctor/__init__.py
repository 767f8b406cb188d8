"""``checkin-gateway doctor``: what is fine and what to fix, in one table.

Checks the config, the service user and unit, the state directory, each reader's and
door's device and permissions (as the service user, whoever runs the doctor), the
Cobot API's reachability, the token's validity and scopes, MOCO's key and users
(with [moco]), and the clock.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import structlog

from gateway.config.loader import load_config
from gateway.doctor.api import check_api
from gateway.doctor.clock import DEFAULT_PROBES, Probe, clock_synchronised
from gateway.doctor.devices import check_doors
from gateway.doctor.local import check_capabilities, check_service, check_state_dir
from gateway.doctor.readers import check_readers
from gateway.doctor.report import Report, Status
from gateway.doctor.system import System
from gateway.errors import ConfigError
from gateway.log import configure

__all__ = ["Report", "Status", "System", "run_doctor"]


class Progress:
    """ "checking ..." while the doctor works: on a terminal one line rewritten in place
    and cleared before the table; elsewhere (a test's stream) one line per step."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._tty = stream is not None and stream.isatty()

    def step(self, what: str) -> None:
        if self._stream is None:
            return
        if self._tty:
            self._stream.write(f"\r\033[Kchecking {what}...")
        else:
            self._stream.write(f"checking {what}...\n")
        self._stream.flush()

    def done(self) -> None:
        if self._stream is not None and self._tty:
            self._stream.write("\r\033[K")
            self._stream.flush()


async def run_doctor(
    cfg_path: Path | str,
    out: TextIO | None = None,
    *,
    env: Mapping[str, str] | None = None,
    system: System | None = None,
    clock_probes: tuple[Probe, ...] = DEFAULT_PROBES,
    progress: TextIO | None = None,
) -> int:
    """Print the table to ``out``; 0 when nothing needs fixing, else 1.

    ``progress``: where "checking ..." goes while the doctor works (default: standard
    error when it is a terminal, else nowhere).
    """
    out = out or sys.stdout
    system = system or System()
    report = Report()
    if not structlog.is_configured():
        # The table is the doctor's output; library chatter stays off it (and redacted).
        configure("warning", "console")
    if progress is None and sys.stderr.isatty():
        progress = sys.stderr
    steps = Progress(progress)
    print(f"checkin-gateway doctor: {cfg_path}\n", file=out)
    steps.step("the config")
    try:
        cfg = load_config(cfg_path)
    except ConfigError as exc:
        report.add("config", Status.FIX, str(exc), "checkin-gateway check-config explains")
        cfg = None
    if cfg is not None:
        report.add(
            "config",
            Status.OK,
            f"{len(cfg.readers)} reader(s), {len(cfg.doors)} door(s), "
            f"offline policy {cfg.gateway.offline_policy.value}",
        )
        steps.step("the service, state dir, readers and doors")
        check_service(report, system)
        check_state_dir(report, cfg.gateway.state_dir, system)
        check_readers(report, cfg.readers, system)
        check_doors(report, cfg.doors, system)
        check_capabilities(report, cfg, system)
        steps.step(f"the Cobot API at {cfg.cobot.base_url} and the token's scopes")
        await check_api(report, cfg, system, env)
        if cfg.moco is not None:
            from gateway.doctor.moco import check_moco

            await check_moco(report, cfg, env)
    steps.step("the clock")
    verdict, how = await clock_synchronised(clock_probes)
    steps.done()
    if verdict is None:
        report.add("clock", Status.UNKNOWN, f"synchronisation unknown: {how}")
    elif verdict:
        report.add("clock", Status.OK, f"synchronised ({how})")
    else:
        report.add(
            "clock",
            Status.FIX,
            f"not synchronised by NTP ({how}): check-in times and TLS checks depend on it "
            "(a running gateway also trusts Cobot's Date when it agrees within 2 minutes, "
            "which is why `status` may say synchronised)",
            "enable NTP: sudo timedatectl set-ntp true; check the network reaches an NTP server",
        )
    report.render(out)
    return 0 if report.ok else 1
