"""Finding a GPIO chip by path, by name or by label.

The Pi's header is not always ``gpiochip0``: on a Pi 5 it is the RP1's chip (label
``pinctrl-rp1``, ``gpiochip4`` on older kernels, ``gpiochip0`` on newer ones); on a
Pi 4 the label is ``pinctrl-bcm2711``, on earlier Pis ``pinctrl-bcm2835``. A label
stays right across kernels; ``gpiodetect`` lists names and labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEV = Path("/dev")


def chip_path(spec: str, dev: Path = DEV) -> str:
    """``/dev/...`` as given; ``gpiochipN`` -> ``/dev/gpiochipN``; else the chip whose
    label is ``spec``. Raises ``FileNotFoundError`` (ENOENT) when no chip has it."""
    if spec.startswith("/"):
        return spec
    if spec.startswith("gpiochip") and (dev / spec).exists():
        return str(dev / spec)
    import gpiod

    for path in sorted(dev.glob("gpiochip*"), key=lambda p: (len(p.name), p.name)):
        try:
            with gpiod.Chip(str(path)) as chip:
                if chip.get_info().label == spec:
                    return str(path)
        except OSError:
            continue  # a chip we may not open cannot be the one the service is given
    raise FileNotFoundError(2, f"no GPIO chip labelled {spec!r} (gpiodetect lists them)", spec)


def open_chip_by_name(spec: str) -> Any:
    """A ``gpiod.Chip`` for a path, a ``gpiochipN`` name or a label (``OSError`` if none)."""
    import gpiod

    return gpiod.Chip(chip_path(spec))
