"""The installed service under a real systemd, inside the test VM.

``make install WITH=mac-presence`` from a copy of the shared tree (the real install
path: a virtualenv from the project's wheels, sysusers, udev rules, the unit unchanged
plus the MAC presence drop-in, config, token file), then ``systemctl start
checkin-gateway`` with a configuration using a gpio-sim chip for the door, qemu's FTDI
USB serial adapter (/dev/ttyUSB0) for an RDM6300 reader and a veth pair made in the
guest for Wi-Fi presence, against the simulated Cobot on the guest's loopback. A hardening setting that
blocks a configured feature fails here. The tests run in file order on one service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim.seed import ADA, ADMIN_TOKEN, MAC_TOKEN, MARGARET, RDM_TOKEN
from tests.vm.guest_pytest import GuestPytest
from tests.vm.machine import GUEST_PROJECT, GUEST_PYTHON, Result, Vm

# Boot (session fixture, charged to the first test) and guest work under emulation.
pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]

UNIT = "checkin-gateway"
SIM_URL = "http://127.0.0.1:8080"
LINES = {0: "LOCK", 1: "CONTACT", 2: "EXIT", 3: "GREEN", 4: "RED", 5: "BUZZER"}
WAIT = 60.0  # seconds for things that take a fraction of that (software emulation)

CONFIG = """\
[gateway]
state_dir = "/var/lib/checkin-gateway"
log_format = "json"

[cobot]
base_url = "{sim}"

[[readers]]
type = "serial"
name = "front-rfid"
door = "front"
port = "/dev/ttyUSB0"
protocol = "rdm6300"

[[readers]]
type = "mac"
name = "wifi"
interface = "gw0"

[[doors]]
type = "gpio"
name = "front"
chip = "{chip}"
line = "LOCK"
pulse = 3.0
contact_line = "CONTACT"
held_open_alarm = 120.0
exit_button_line = "EXIT"
exit_button_active_low = true
green_led_line = "GREEN"
red_led_line = "RED"
buzzer_line = "BUZZER"
"""


@dataclass
class Installed:
    vm: Vm
    chip: str
    sysfs: str
    install_seconds: float

    def show(self, *props: str) -> dict[str, str]:
        out = self.vm.run(["systemctl", "show", UNIT, *(f"--property={p}" for p in props)])
        return dict(line.split("=", 1) for line in out.check().stdout.splitlines() if "=" in line)

    def line_high(self, name: str) -> bool:
        offset = next(o for o, n in LINES.items() if n == name)
        out = self.vm.run(["cat", f"{self.sysfs}/sim_gpio{offset}/value"]).check()
        return out.stdout.strip() == "1"

    def pull(self, name: str, high: bool) -> None:
        offset = next(o for o, n in LINES.items() if n == name)
        self.vm.write(f"{self.sysfs}/sim_gpio{offset}/pull", "pull-up" if high else "pull-down")

    def journal(self) -> str:
        return self.vm.run(["journalctl", "-u", UNIT, "-o", "cat", "--no-pager"]).stdout

    def until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout:.0f} s\n{self.journal()[-6000:]}")
            time.sleep(0.2)


def guest_python(vm: Vm, code: str, timeout: float = 60.0) -> Result:
    return vm.run(
        [GUEST_PYTHON, "-c", code],
        cwd=GUEST_PROJECT,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        timeout=timeout,
    ).check()


def sim_get(vm: Vm, path: str) -> str:
    code = (
        "import urllib.request as u, sys;"
        f"r = u.Request('{SIM_URL}{path}', headers={{'Authorization': 'Bearer {ADMIN_TOKEN}'}});"
        "sys.stdout.write(u.urlopen(r, timeout=10).read().decode())"
    )
    return vm.run(["python3", "-c", code], timeout=30).check().stdout


@pytest.fixture(scope="module")
def installed(vm: Vm, guest_device_tests: GuestPytest) -> Iterator[Installed]:
    del guest_device_tests  # started first: it runs on the guest's other CPU meanwhile
    # A copy of the shared tree: the share is read-only and pip builds in the source.
    vm.sh(
        "rm -rf /root/src && mkdir /root/src && tar -C /mnt/project -cf - --exclude=./.git "
        "--exclude=./.venv --exclude='*.egg-info' --exclude=./build --exclude=__pycache__ . "
        "| tar -C /root/src -xf -"
    )
    started = time.monotonic()
    # pip in the guest installs offline from the image's wheelhouse (/etc/pip.conf).
    vm.sh("make -C /root/src install PYTHON=python3 WITH=mac-presence", timeout=600)
    # The LAN the presence reader listens on: a veth pair inside the guest (the VM
    # itself has no network device); the test speaks as a member's phone on member0.
    vm.sh(
        "ip link add gw0 type veth peer name member0 && ip link set gw0 up && "
        "ip link set member0 up"
    )
    install_seconds = time.monotonic() - started
    made = guest_python(
        vm,
        "import json; from tests.gpiosim import GpioSimChip, kernel_gpio_sim;"
        "assert kernel_gpio_sim() is None;"
        f"c = GpioSimChip({LINES!r}, num_lines=8);"
        "print(json.dumps({'chip': c.chip_path, 'sysfs': str(c.sysfs)}))",
    )
    chip = json.loads(made.stdout)
    vm.write(
        "/etc/checkin-gateway/config.toml", CONFIG.format(sim=SIM_URL, chip=chip["chip"]), 0o640
    )
    vm.write("/etc/checkin-gateway/cobot-token", ADMIN_TOKEN + "\n", 0o600)
    # The simulated Cobot on the guest's loopback, as a transient unit.
    vm.sh(
        f"systemd-run --unit=cobot-sim --collect --working-directory={GUEST_PROJECT} "
        f"--setenv=PYTHONDONTWRITEBYTECODE=1 {GUEST_PYTHON} -m gateway.sim --port 8080"
    )
    vm.plug_serial()  # the RDM6300's USB adapter: /dev/ttyUSB0 (ftdi_sio)
    vm.sh(
        "udevadm settle; for i in $(seq 100); do [ -e /dev/ttyUSB0 ] && exit 0; sleep 0.2; done; exit 1"
    )
    rig = Installed(vm, chip["chip"], chip["sysfs"], install_seconds)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            sim_get(vm, "/api/check_ins")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield rig
    vm.run(["systemctl", "stop", UNIT, "cobot-sim"], timeout=60)


def test_make_install_puts_everything_in_place(installed: Installed) -> None:
    vm = installed.vm
    ids = vm.run(["id", "checkin-gateway"]).check().stdout
    assert "(dialout)" in ids and "(gpio)" in ids, ids
    stat = vm.run(["stat", "-c", "%U:%G %a %n", "/etc/checkin-gateway",
                   "/etc/checkin-gateway/config.toml", "/etc/checkin-gateway/cobot-token",
                   installed.chip]).check().stdout.splitlines()  # fmt: skip
    assert stat[0] == "root:checkin-gateway 750 /etc/checkin-gateway"
    assert stat[1] == "root:checkin-gateway 640 /etc/checkin-gateway/config.toml"
    assert stat[2] == "root:root 600 /etc/checkin-gateway/cobot-token"
    # The chip was made after install: the installed udev rule gave it to gpio.
    assert stat[3] == f"root:gpio 660 {installed.chip}"
    dropin = "/etc/systemd/system/checkin-gateway.service.d/mac-presence.conf"
    assert "CAP_NET_RAW" in vm.run(["cat", dropin]).check().stdout
    installed_unit = vm.run(["cat", "/etc/systemd/system/checkin-gateway.service"]).check()
    shipped = vm.run(["cat", "/root/src/systemd/checkin-gateway.service"]).check()
    assert installed_unit.stdout == shipped.stdout, "the hardened unit, unchanged"
    vm.sh("/opt/checkin-gateway/venv/bin/python -c 'import gpiod, gateway'")


def test_start_reaches_active_through_ready(installed: Installed) -> None:
    started = installed.vm.run(["systemctl", "start", UNIT], timeout=120)
    props = installed.show(
        "ActiveState", "SubState", "Type", "StatusText", "NRestarts", "MainPID", "WatchdogUSec"
    )
    assert started.rc == 0 and props["ActiveState"] == "active", (
        f"{started.stderr}\n{props}\n{installed.journal()[-6000:]}"
    )
    # Type=notify: "active" is reached only through READY=1.
    assert props["Type"] == "notify" and props["SubState"] == "running"
    assert props["StatusText"], "a STATUS= line"
    assert props["NRestarts"] == "0"
    assert props["WatchdogUSec"] == "30s"


def test_a_tap_opens_the_door_and_checks_in(installed: Installed) -> None:
    installed.pull("CONTACT", high=False)  # the door is shut
    assert not installed.line_high("LOCK")
    frame = encode_rdm6300(bytes.fromhex(RDM_TOKEN))
    usb = installed.vm.plug_serial()
    for _ in range(3):  # a card held on the reader repeats its frame: one tap
        usb.sendall(frame)
        time.sleep(0.3)
    installed.until(lambda: installed.line_high("LOCK"), "the strike unlocked")
    installed.until(lambda: ADA in sim_get(installed.vm, "/api/check_ins"), "Ada checked in")
    installed.until(lambda: not installed.line_high("LOCK"), "relocked after the pulse")
    check_ins = json.loads(sim_get(installed.vm, "/api/check_ins"))
    assert sum(ADA in json.dumps(c) for c in check_ins) == 1, "one check-in, not three"
    assert installed.show("NRestarts")["NRestarts"] == "0"


ARP_PROBE = """
import socket, struct
mac = bytes.fromhex({mac!r})
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, bytes(4), bytes(6),
                  bytes([192, 168, 50, 23]))
with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
    s.bind(("member0", 0))
    s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp)
"""


def test_a_registered_phone_on_the_lan_checks_in(installed: Installed) -> None:
    # An ARP probe from Margaret's phone, whose MAC is her Cobot token: CAP_NET_RAW and
    # AF_PACKET come from the drop-in, the rest of the hardening stays.
    probe = ARP_PROBE.format(mac=MAC_TOKEN.replace(":", ""))

    def checked_in() -> bool:
        if MARGARET in sim_get(installed.vm, "/api/check_ins"):
            return True
        installed.vm.run(["python3", "-c", probe]).check()  # phones repeat themselves
        return False

    installed.until(checked_in, "Margaret checked in by her phone")
    check_ins = json.loads(sim_get(installed.vm, "/api/check_ins"))
    assert sum(MARGARET in json.dumps(c) for c in check_ins) == 1


def test_the_exit_button_opens_the_door(installed: Installed) -> None:
    installed.pull("EXIT", high=False)  # pressed: to ground against the pull-up
    installed.until(lambda: installed.line_high("LOCK"), "unlocked by the exit button")
    installed.pull("EXIT", high=True)
    installed.until(lambda: not installed.line_high("LOCK"), "relocked")
    assert "exit_button_pressed" in installed.journal()


def test_it_may_open_its_devices_and_nothing_else(installed: Installed) -> None:
    vm = installed.vm
    # Nodes anyone may open by their permissions: only the unit's device policy can
    # refuse them. uinput (char-misc), the VM's disk (block) and an input device.
    disk = vm.run(["cat", "/sys/block/vda/dev"]).check().stdout.strip().replace(":", " ")
    event = vm.run(["sh", "-c", "stat -c '%Hr %Lr' /dev/input/event* | head -1"]).check()
    assert event.stdout.strip(), "the VM has an input device (the power button)"
    vm.sh(
        "rm -f /dev/probe-*; mknod -m 0666 /dev/probe-uinput c 10 223;"
        f"mknod -m 0666 /dev/probe-disk b {disk};"
        f"mknod -m 0666 /dev/probe-input c {event.stdout.strip()}"
    )
    paths = [installed.chip, "/dev/ttyUSB0", "pty", "/dev/probe-uinput", "/dev/probe-disk",
             "/dev/probe-input"]  # fmt: skip
    probe = f"{GUEST_PROJECT}/tests/vm/probe_devices.py"
    as_service_user = (
        "setpriv --reuid=checkin-gateway --regid=checkin-gateway --init-groups --no-new-privs"
    )
    pid = installed.show("ControlGroup")["ControlGroup"]
    inside = vm.sh(
        f"echo $$ > /sys/fs/cgroup{pid}/cgroup.procs && "
        f"exec {as_service_user} python3 {probe} {' '.join(paths)}"
    )
    outside = vm.sh(f"exec {as_service_user} python3 {probe} {' '.join(paths)}")
    in_unit, control = json.loads(inside.stdout), json.loads(outside.stdout)
    assert all(v == "ok" for v in control.values()), f"the files allow it: {control}"
    assert in_unit == {
        installed.chip: "ok",
        "/dev/ttyUSB0": "ok",
        "pty": "ok",
        "/dev/probe-uinput": "EPERM",
        "/dev/probe-disk": "EPERM",
        "/dev/probe-input": "EPERM",
    }
    vm.sh("rm -f /dev/probe-*")


def test_the_watchdog_is_answered(installed: Installed) -> None:
    first = installed.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
    # The gateway pings every WatchdogSec/2 = 15 s.
    installed.until(
        lambda: installed.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"] != first,
        "a WATCHDOG=1 ping",
        timeout=40,
    )
    props = installed.show("ActiveState", "NRestarts", "StatusText")
    assert props["ActiveState"] == "active" and props["NRestarts"] == "0", props


def test_stop_is_clean(installed: Installed) -> None:
    installed.vm.run(["systemctl", "stop", UNIT], timeout=60).check()
    props = installed.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert props["ActiveState"] == "inactive", props
    assert props["Result"] == "success", f"{props}\n{installed.journal()[-4000:]}"
    assert not installed.line_high("LOCK"), "stopped with the strike locked"
    # The lines were released: another program may take them now.
    guest_python(
        installed.vm,
        f"import gpiod; gpiod.request_lines({installed.chip!r}, config={{'LOCK': None}}).release()",
    )
