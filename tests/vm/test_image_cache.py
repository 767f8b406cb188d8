"""The VM image's cache (tests/vm/image.py) and the choice of accelerator, on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vm import image
from tests.vm.machine import accelerator


def test_the_cache_key_follows_the_build_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "build_image.sh"
    script.write_bytes(image.BUILD_SCRIPT.read_bytes())
    monkeypatch.setattr(image, "BUILD_SCRIPT", script)
    before = image.cache_key()
    assert image.cache_key() == before
    script.write_text(script.read_text() + "\n# one more step\n")
    assert image.cache_key() != before


def test_an_incomplete_build_is_not_taken_for_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image, "CACHE_ROOT", tmp_path)
    directory = tmp_path / image.cache_key()
    directory.mkdir()
    for name in image.FILES[:-1]:
        (directory / name).write_text("x")
    assert image.cached() is None
    (directory / image.FILES[-1]).write_text("6.1.0-50-amd64\n")
    found = image.cached()
    assert found is not None and found.kernel_version == "6.1.0-50-amd64"


def test_the_cache_lives_outside_the_repository() -> None:
    assert not image.CACHE_ROOT.resolve().is_relative_to(image.PROJECT)


@pytest.mark.parametrize(
    ("flags", "kvm_opens", "expected"),
    [
        ("fpu vme sse2 hypervisor", True, "tcg"),  # this machine: /dev/kvm, no vmx/svm
        ("fpu vme vmx sse2", True, "kvm"),
        ("fpu svm sse2", True, "kvm"),
        ("fpu vmx sse2", False, "tcg"),
    ],
)
def test_kvm_only_when_the_cpu_backs_it(
    tmp_path: Path, flags: str, kvm_opens: bool, expected: str
) -> None:
    kvm = tmp_path / "kvm"
    if kvm_opens:
        kvm.write_text("")
    # "vmx flags" (a line of its own on Intel hosts) is not the CPU's flags line.
    cpuinfo = f"processor\t: 0\nflags\t\t: {flags}\nvmx flags\t: ept vpid\n"
    assert accelerator(cpuinfo, str(kvm)) == expected
