"""Tests that run *inside* the test VM, as root, on the guest's real kernel.

Put tests that need gpio-sim or uinput here (e.g. the Wiegand reader on gpio-sim edges,
keyboard-wedge readers on uinput), built on ``tests.gpiosim.GpioSimChip`` and
``tests.uinput_keyboard.VirtualKeyboard``. They are collected only in the guest
(``CHECKIN_VM_GUEST=1``, tests/vm/conftest.py); on the host,
tests/vm/test_kernel_devices.py runs them in the VM and fails on any failure or skip.
The guest's Python environment has the project's dependencies, pytest, gpiod and evdev
(tests/vm/build_image.sh); the share is read-only, so write only under /tmp.
"""
