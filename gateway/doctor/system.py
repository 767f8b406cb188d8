"""Where the doctor looks on this machine; tests point it elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.doctor.access import Principal, service_principal


@dataclass(frozen=True, slots=True)
class System:
    unit_dir: Path = Path("/etc/systemd/system")
    # What LoadCredential= reads; the doctor (run with sudo) reads it the same way.
    credential_file: Path = Path("/etc/checkin-gateway/cobot-token")
    default_state_dir: Path = Path("/var/lib/checkin-gateway")  # StateDirectory=
    dev: Path = Path("/dev")  # where nfcpy looks for tty:NAME serial ports
    sys_class_net: Path = Path("/sys/class/net")
    sys_usb_devices: Path = Path("/sys/bus/usb/devices")
    sys_class_input: Path = Path("/sys/class/input")  # eventN/device/id/{vendor,product}
    proc_devices: Path = Path("/proc/devices")
    principal: Principal = field(default_factory=service_principal)

    @property
    def unit(self) -> Path:
        return self.unit_dir / "checkin-gateway.service"

    def dropin(self, name: str) -> Path:
        return self.unit_dir / "checkin-gateway.service.d" / f"{name}.conf"
