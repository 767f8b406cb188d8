"""The test VM (tests/vm/): what it costs to build, to boot, and to run its tests.

- Image build, cold: the time recorded when the cached image was built (build_image.sh
  from nothing: wheels, debootstrap, gpio-sim, the Python environment, mkfs). Set
  ``BENCH_VM_COLD=1`` to build a fresh one now, into a temporary cache.
- Boot: qemu start to the guest agent's first answer, and to systemd's "boot finished"
  (``systemctl is-system-running --wait``), with the cached image.
- The VM part of ``make test`` warm (image cached): ``pytest tests/vm`` end to end,
  boot and power-off included.

Software emulation (TCG) unless the CPU backs KVM; the machine's other work shares its
2 cores, so these numbers move with the load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from bench.common import REPO
from tests.vm.image import ensure
from tests.vm.machine import Vm, accelerator, why_no_qemu


def _cold_build() -> float:
    with tempfile.TemporaryDirectory(prefix="checkin-vm-bench-") as cache:
        env = {**os.environ, "CHECKIN_VM_CACHE": cache}
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "tests.vm.image"], cwd=REPO, env=env, check=True)
        return time.monotonic() - started


def main() -> None:
    why = why_no_qemu()
    if why is not None:
        print(f"(skipped: {why})")
        return
    if os.environ.get("BENCH_VM_COLD") == "1":
        cold: float | None = _cold_build()
        image = ensure()
    else:
        image = ensure()
        recorded = image.directory / "build-seconds"
        cold = float(recorded.read_text()) if recorded.is_file() else None
    vm = Vm.boot(image, REPO)
    try:
        agent, ready = vm.boot_seconds, vm.ready_seconds
    finally:
        vm.close()
    started = time.monotonic()
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/vm"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    whole = time.monotonic() - started
    summary = (tests.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"accelerator: {accelerator()}, image {image.directory.name} "
          f"(kernel {image.kernel_version})\n")  # fmt: skip
    print("| measure | seconds |")
    print("|---|---:|")
    print(f"| image build, cold | {'n/a' if cold is None else f'{cold:.0f}'} |")
    print(f"| boot: qemu start to guest agent | {agent:.1f} |")
    print(f"| boot: qemu start to systemd ready | {ready:.1f} |")
    print(f"| `pytest tests/vm`, warm (boot to power-off) | {whole:.0f} |")
    print(f"\n`pytest tests/vm`: {summary}")
