"""Would the *service* be allowed? The doctor usually runs as root (sudo), for whom
every device is open; what matters is the checkin-gateway user with the groups and the
device allow-list the systemd unit gives it."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "checkin-gateway"
SERVICE_GROUPS = ("dialout", "gpio", "input")  # the unit's SupplementaryGroups=
# The unit's DevicePolicy=closed admits these character-device drivers (/proc/devices).
DEVICE_ALLOW = ("ttyS", "ttyAMA", "ttyUSB", "ttyACM", "gpiochip", "usb_device", "input")
READ, WRITE = 4, 2


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    uid: int
    gids: frozenset[int]
    is_service: bool  # False: the service user does not exist, we judge as ourselves


def service_principal() -> Principal:
    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        uid = os.getuid()
        mine = frozenset({os.getgid(), *os.getgroups()})
        return Principal(_user_name(uid), uid, mine, is_service=False)
    gids = {pw.pw_gid}
    for name in SERVICE_GROUPS:
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            continue  # the unit would then fail to start: checked separately
    gids.update(g.gr_gid for g in grp.getgrall() if SERVICE_USER in g.gr_mem)
    return Principal(SERVICE_USER, pw.pw_uid, frozenset(gids), is_service=True)


def missing_groups() -> list[str]:
    missing = []
    for name in SERVICE_GROUPS:
        try:
            grp.getgrnam(name)
        except KeyError:
            missing.append(name)
    return missing


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def may(who: Principal, st: os.stat_result, want: int) -> bool:
    """Classic permission bits (no ACLs: udev's uaccess ACLs are for desktop users)."""
    if who.uid == 0:
        return True
    if st.st_uid == who.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in who.gids:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def char_drivers(st: os.stat_result, proc_devices: Path = Path("/proc/devices")) -> list[str]:
    """The driver names registered for a character device's major number, as
    DeviceAllow=char-NAME resolves them (major 4 is both "tty" and "ttyS")."""
    if not stat.S_ISCHR(st.st_mode):
        return []
    major = os.major(st.st_rdev)
    try:
        text = proc_devices.read_text()
    except OSError:
        return []
    names = []
    for line in text.split("Block devices:")[0].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) == major:
            names.append(parts[1])
    return names
