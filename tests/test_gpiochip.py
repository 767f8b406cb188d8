"""Picking a GPIO chip by path, gpiochipN name or label."""

from __future__ import annotations

from pathlib import Path

import gpiod
import pytest

from gateway.gpiochip import chip_path
from tests.gpio_bench import KernelGpioSim, kernel_gpio_sim


def test_paths_and_names(tmp_path: Path) -> None:
    assert chip_path("/dev/gpiochip7", tmp_path) == "/dev/gpiochip7"
    (tmp_path / "gpiochip4").touch()
    assert chip_path("gpiochip4", tmp_path) == str(tmp_path / "gpiochip4")
    with pytest.raises(FileNotFoundError, match="no GPIO chip labelled 'pinctrl-rp1'"):
        chip_path("pinctrl-rp1", tmp_path)


def test_label_of_a_kernel_chip() -> None:
    why_not = kernel_gpio_sim()
    if why_not is not None:
        pytest.skip(f"{why_not}: labels are looked up on real chips only (tests/vm/)")
    sim = KernelGpioSim()
    try:
        with gpiod.Chip(sim.chip_path) as chip:
            label = chip.get_info().label
        assert chip_path(label) == sim.chip_path
    finally:
        sim.close()
