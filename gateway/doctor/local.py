"""Checks of this machine that need no network: the state directory, the service user
and its groups, the unit and the capabilities the configured readers need."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.config.model import Config
from gateway.doctor.access import READ, WRITE, missing_groups
from gateway.doctor.report import Report, Status
from gateway.doctor.system import System
from gateway.statedir import MIN_FREE_BYTES, read_only

LOW_DISK = 100 * 1024 * 1024  # below this the queue may not fit a long outage


def check_service(report: Report, system: System) -> None:
    if not system.unit.exists():
        report.add(
            "systemd unit",
            Status.WARN,
            f"{system.unit} is not installed",
            "sudo make install (or run the gateway by hand with `checkin-gateway run`)",
        )
        return
    if not system.principal.is_service:
        report.add(
            "service user",
            Status.FIX,
            f"the user checkin-gateway does not exist; judging as {system.principal.name} instead",
            "sudo systemd-sysusers /etc/sysusers.d/checkin-gateway.conf",
        )
    missing = missing_groups()
    if missing:
        report.add(
            "service groups",
            Status.FIX,
            f"group(s) {', '.join(missing)} missing: the unit's SupplementaryGroups= "
            "would stop it from starting",
            "sudo systemd-sysusers /etc/sysusers.d/checkin-gateway.conf",
        )
    report.add("systemd unit", Status.OK, f"{system.unit} installed")


def check_state_dir(report: Report, state_dir: Path, system: System) -> None:
    who = system.principal
    managed = system.unit.exists() and state_dir == system.default_state_dir
    if system.unit.exists() and state_dir != system.default_state_dir:
        report.add(
            "state dir",
            Status.WARN,
            f"{state_dir}: the unit's ProtectSystem=strict leaves only "
            f"{system.default_state_dir} writable",
            f'set state_dir = "{system.default_state_dir}", or add ReadWritePaths={state_dir} '
            "in a drop-in",
        )
    if not state_dir.exists():
        if managed:
            report.add("state dir", Status.OK, f"{state_dir}: systemd creates it at start")
            return
        parent = _existing_parent(state_dir)
        if parent is not None and parent.is_dir() and _may_write_dir(parent, system):
            # `run` creates it (with its parents) at start, as this user may.
            report.add(
                "state dir",
                Status.OK,
                f"{state_dir}: not there yet; `checkin-gateway run` creates it in {parent}",
            )
        else:
            report.add(
                "state dir",
                Status.FIX,
                f"{state_dir} does not exist, and {who.name} may not create it"
                + (f" in {parent}" if parent is not None else ""),
                f"sudo install -d -o {who.name} -m 0700 {state_dir}",
            )
        return
    if not state_dir.is_dir():
        report.add("state dir", Status.FIX, f"{state_dir} is not a directory")
        return
    if read_only(state_dir):
        # `run` would still open doors, from memory: nothing queued would survive a stop.
        report.add(
            "state dir",
            Status.FIX,
            f"{state_dir}: the file system is mounted read-only (the gateway would run from "
            "memory: check-ins queued offline are lost when it stops)",
            f"remount it read-write (e.g. sudo mount -o remount,rw $(findmnt -no TARGET "
            f"-T {state_dir})), or set state_dir on a writable file system",
        )
        return
    if not managed and not _may_write_dir(state_dir, system):
        report.add(
            "state dir",
            Status.FIX,
            f"{state_dir}: {who.name} may not write here",
            f"sudo chown -R {who.name}: {state_dir}",
        )
        return
    free = shutil.disk_usage(state_dir).free
    detail = f"{state_dir}: writable, {free / 1e9:.1f} GB free"
    if free < MIN_FREE_BYTES:
        report.add(
            "state dir",
            Status.FIX,
            f"{state_dir}: the disk is full ({free // 1024} KiB free; the gateway would run "
            "from memory)",
            "free some space",
        )
    elif free < LOW_DISK:
        report.add("state dir", Status.WARN, detail, "free some space: the offline queue grows")
    else:
        report.add("state dir", Status.OK, detail)


def _existing_parent(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists():
            return parent
    return None


def _may_write_dir(path: Path, system: System) -> bool:
    from gateway.doctor.access import may

    return may(system.principal, path.stat(), READ | WRITE | 1)


def check_capabilities(report: Report, cfg: Config, system: System) -> None:
    """The portal needs CAP_NET_ADMIN (its drop-in); MAC readers are checked per reader."""
    if getattr(cfg, "portal", None) is None or not system.unit.exists():
        return
    if system.dropin("portal").exists():
        report.add("portal", Status.OK, "the service may change its nftables set (CAP_NET_ADMIN)")
    else:
        report.add(
            "portal",
            Status.FIX,
            "the captive portal needs CAP_NET_ADMIN, which the unit does not grant",
            "sudo make install WITH=portal (add mac-presence too if you use it)",
        )
