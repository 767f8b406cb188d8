"""doctor for the keyboard-wedge (HID) and Wiegand readers: the input group, read-only
access, finding a reader by vendor:product, a GPIO chip by label."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from gateway.config.model import HidReaderConfig, WiegandReaderConfig
from gateway.doctor.readers import check_readers
from gateway.doctor.report import Report, Status
from tests.conftest import require
from tests.test_doctor import SERVICE, device, system_for

INPUT_GID = 105  # any group id: the check compares the node's group with the service's


def input_tree(tmp_path: Path, *, mode: int = 0o660) -> Path:
    """/dev/input/event3 (major 13, as the input driver's nodes) and its sysfs ids."""
    dev = tmp_path / "dev"
    (dev / "input").mkdir(parents=True)
    device(dev / "input", "event3", 13, 67, gid=INPUT_GID, mode=mode)
    ids = tmp_path / "sys" / "event3" / "device" / "id"
    ids.mkdir(parents=True)
    (ids / "vendor").write_text("08ff\n")
    (ids / "product").write_text("0009\n")
    return dev


@pytest.mark.real
def test_hid_reader_needs_the_input_group_and_only_reads(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "making device nodes needs root")
    dev = input_tree(tmp_path)
    system = system_for(tmp_path, dev=dev, sys_class_input=tmp_path / "sys")
    reader = HidReaderConfig(name="usb", device="08ff:0009")
    report = Report()
    check_readers(report, (reader,), system)
    check = report.checks[-1]
    assert check.status is Status.FIX
    assert "svc may not read it" in check.detail
    assert "SupplementaryGroups= must list input" in (check.fix or "")
    member = dataclasses.replace(SERVICE, gids=frozenset({SERVICE.uid, INPUT_GID}))
    report = Report()
    check_readers(
        report,
        (reader,),
        system_for(tmp_path, dev=dev, sys_class_input=tmp_path / "sys", principal=member),
    )
    assert report.checks[-1].status is Status.OK
    assert report.checks[-1].detail.endswith("svc may read it")
    # By path, read-only access is enough (mode 0640: group read only).
    node = input_tree(tmp_path / "ro", mode=0o640) / "input" / "event3"
    report = Report()
    by_path = HidReaderConfig(name="usb", device=str(node))
    check_readers(report, (by_path,), system_for(tmp_path, principal=member))
    assert report.checks[-1].status is Status.OK


def test_hid_reader_not_plugged_in(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    report = Report()
    system = system_for(tmp_path, sys_class_input=tmp_path / "sys")
    check_readers(report, (HidReaderConfig(name="usb", device="08ff:0009"),), system)
    assert report.checks[-1].status is Status.FIX
    assert "no input device with this vendor:product" in report.checks[-1].detail


def test_wiegand_chip_by_label_not_found(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    report = Report()
    reader = WiegandReaderConfig(name="gate", chip="pinctrl-rp1", d0_line=5, d1_line=6)
    check_readers(report, (reader,), system_for(tmp_path, dev=tmp_path / "dev"))
    check = report.checks[-1]
    assert check.status is Status.FIX
    assert "no GPIO chip labelled 'pinctrl-rp1'" in check.detail
    assert "gpiodetect" in (check.fix or "")
