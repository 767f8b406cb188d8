"""The test VM's image: built once by build_image.sh, cached outside the repository.

The cache directory is ``/var/cache/checkin-gateway-vm/<key>/`` (``$CHECKIN_VM_CACHE``
overrides the parent), where the key hashes build_image.sh and the project's dependency
lists (the wheels baked into the image): change either and the next run rebuilds, and
older images are removed. A lock file makes concurrent test sessions wait for one build
instead of racing.

    python -m tests.vm.image            # build (or find) the image, print its directory
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
BUILD_SCRIPT = HERE / "build_image.sh"
CACHE_ROOT = Path(os.environ.get("CHECKIN_VM_CACHE", "/var/cache/checkin-gateway-vm"))
FILES = ("rootfs.ext4", "vmlinuz", "initrd.img", "kernel-version")


class ImageError(RuntimeError):
    """The image could not be built; the message ends with the build log's tail."""


@dataclass(frozen=True, slots=True)
class Image:
    directory: Path
    built_seconds: float | None  # None: taken from the cache

    @property
    def rootfs(self) -> Path:
        return self.directory / "rootfs.ext4"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def kernel_version(self) -> str:
        return (self.directory / "kernel-version").read_text().strip()


def cache_key() -> str:
    digest = hashlib.sha256(BUILD_SCRIPT.read_bytes())
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    deps = sorted(project["dependencies"]) + sorted(project["optional-dependencies"]["gpio"])
    digest.update("\n".join(deps).encode())
    return digest.hexdigest()[:16]


def cached() -> Image | None:
    directory = CACHE_ROOT / cache_key()
    if all((directory / f).is_file() for f in FILES):
        return Image(directory, None)
    return None


def why_cannot_build() -> str | None:
    """None when this machine can build the image, else the reason."""
    if os.geteuid() != 0:
        return "building the VM image needs root (debootstrap, chroot)"
    missing = [t for t in ("debootstrap", "mkfs.ext4", "chroot") if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (make system-deps installs them)"
    return None


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session's build: wait for it
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(python: str = sys.executable, log: Path | None = None) -> Image:
    """The cached image, building it first when the key changed (a few minutes)."""
    image = cached()
    if image is not None:
        return image
    why = why_cannot_build()
    if why is not None:
        raise ImageError(why)
    with _locked():
        image = cached()
        if image is not None:  # built by another session while we waited
            return image
        key = cache_key()
        final = CACHE_ROOT / key
        building = CACHE_ROOT / f"{key}.building"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        log_path = log or building / "build.log"
        started = time.monotonic()
        with log_path.open("w") as out:
            result = subprocess.run(
                ["bash", str(BUILD_SCRIPT), str(building), str(PROJECT), python],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        seconds = time.monotonic() - started
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise ImageError(f"build_image.sh failed ({result.returncode}):\n{tail}")
        (building / "build-seconds").write_text(f"{seconds:.1f}\n")
        shutil.rmtree(final, ignore_errors=True)
        building.rename(final)
        for stale in CACHE_ROOT.iterdir():  # images of older build scripts
            if stale.is_dir() and stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
        return Image(final, seconds)


if __name__ == "__main__":
    built = ensure()
    when = "cached" if built.built_seconds is None else f"built in {built.built_seconds:.0f} s"
    print(f"{built.directory} ({when})")
