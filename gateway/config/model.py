"""The configuration schema, as frozen dataclasses (see ``config/example.toml``).

Field names are the TOML keys. Defaults are what a typical space wants; seconds are
floats. Reader and door tables pick their class by their ``type`` key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config.fields import _bounds
from gateway.config.integrations import AdminSection, MetricsSection, MqttSection
from gateway.model import Direction, OfflinePolicy, TokenFormat


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySection:
    state_dir: Path
    offline_policy: OfflinePolicy = OfflinePolicy.KNOWN_TOKENS
    # How long a tap may wait for the API's preview before the door is decided locally.
    decision_deadline: float = field(default=1.5, metadata=_bounds(0.1, 10))
    token_sync_interval: float = field(default=300.0, metadata=_bounds(10))
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    # This gateway's name among several (MQTT topics, Home Assistant's device); default:
    # the host name.
    name: str | None = field(
        default=None,
        metadata={"pattern": r"[A-Za-z0-9_-]{1,64}", "expected": "letters, digits, - or _"},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CobotSection:
    base_url: str
    access_token_file: Path | None = None
    check_in_rpm: int = field(default=120, metadata=_bounds(1, 10_000))
    default_rpm: int = field(default=60, metadata=_bounds(1, 10_000))
    request_timeout: float = field(default=10.0, metadata=_bounds(0.5, 120))


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSection:
    """The offline outbox (check-ins decided locally, waiting for the API)."""

    # The bound: beyond it new offline check-ins are refused (the door still opens per
    # policy) and the refusal is logged loudly; nothing already queued is dropped.
    max_entries: int = field(default=50_000, metadata=_bounds(10))
    # Replays older than this go through work_sessions with valid_from = tap time, so
    # the member is billed for when they really arrived.
    replay_with_valid_from: bool = True
    valid_from_after: float = field(default=120.0, metadata=_bounds(0))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderBase:
    name: str
    type: str
    door: str | None = None
    direction: Direction = Direction.IN
    # The repeated frames of a held card become one event within this many seconds.
    debounce: float = field(default=2.0, metadata=_bounds(0, 3600))
    # Where this reader's taps are recorded: Cobot check-ins, MOCO presences, or both.
    record: tuple[Literal["cobot", "moco"], ...] = ("cobot",)


@dataclass(frozen=True, slots=True, kw_only=True)
class SerialReaderConfig(ReaderBase):
    type: Literal["serial"] = "serial"
    port: str
    baudrate: int = field(default=9600, metadata=_bounds(300, 4_000_000))
    # rdm6300: RDM6300/RDM630 modules; id12la: ID-3LA/ID-12LA/ID-20LA (ASCII mode);
    # line: one token per text line (USB readers in serial mode, Arduino sketches).
    protocol: Literal["rdm6300", "id12la", "line"] = "rdm6300"
    token_format: TokenFormat = TokenFormat.HEX
    # Reads of the same card, each within confirm_window seconds of the last, before it
    # is a tap: 2 drops the single phantom frames cheap RDM6300 boards emit (a card
    # resting on one repeats its frame about every 65 ms). Unset: 2 for rdm6300, 1
    # (every read is a tap) for id12la, which reads a card once, and for line.
    confirm_reads: int | None = field(default=None, metadata=_bounds(1, 10))
    confirm_window: float = field(default=0.5, metadata=_bounds(0.05, 5))

    @property
    def reads_to_confirm(self) -> int:
        if self.confirm_reads is not None:
            return self.confirm_reads
        return 2 if self.protocol == "rdm6300" else 1


# nfcpy's device strings we accept: USB by vendor[:product] or bus[:address], a PN532 or
# Arygon on a serial port (by its name under /dev without "tty"), and nfcpy's UDP
# simulation (tests, benchmarks).
NFC_DEVICE_PATTERN = (
    r"usb(:[0-9a-fA-F]{4}(:[0-9a-fA-F]{4})?|:[0-9]{1,3}(:[0-9]{1,3})?)?"
    r"|tty:[A-Za-z0-9-]+(:(pn532|arygon))?"
    r"|udp(:[A-Za-z0-9.-]*)?(:[0-9]{1,5})?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NfcReaderConfig(ReaderBase):
    """An NFC reader driven by nfcpy (ACR122U on USB, PN532 on a UART).

    ``debounce`` does not apply: a card counts again once lifted for ``lift_time``.
    """

    type: Literal["nfc"] = "nfc"
    device: str = field(
        metadata={
            "pattern": NFC_DEVICE_PATTERN,
            "expected": "an nfcpy device like 'usb', 'usb:072f:2200' or 'tty:AMA0:pn532'",
        }
    )
    token_format: TokenFormat = TokenFormat.HEX
    # Read a token from an NDEF text record (a sticker, a phone app) before the UID.
    ndef_tokens: bool = False
    lift_time: float = field(default=1.0, metadata=_bounds(0.1, 60))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyboardReaderConfig(ReaderBase):
    """Tokens typed on standard input, one per line: the demo's reader, and a console.
    A service has no stdin: USB readers that type like a keyboard are ``type = "hid"``."""

    type: Literal["keyboard"] = "keyboard"


def _mac(text: str) -> str:
    # Imported when a config is parsed, not with this module: config must not import the
    # readers package at load time (it imports config: a cycle).
    from gateway.readers.mac.address import normalize_mac

    return normalize_mac(text)


def _interface(name: str) -> str:
    from gateway.readers.mac.address import normalize_interface

    return normalize_interface(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class MacReaderConfig(ReaderBase):
    """Presence on the LAN: a registered device's MAC heard (DHCP, ARP) checks its member
    in. ``debounce`` here is how often a present device is looked up in the token cache
    again, so one registered while on the LAN counts within that time. ``direction`` is
    not used: arrival is IN, departure (with ``checkout_on_departure``) OUT."""

    type: Literal["mac"] = "mac"
    interface: str = field(metadata={"parse": _interface})  # e.g. wlan0, br-lan
    # A device silent this long is gone; phones asleep talk rarely, so not too short.
    away_after: float = field(default=1800.0, metadata=_bounds(60, 86400))
    checkout_on_departure: bool = False
    # Ask a silent registered device (one unicast ARP request) before it counts as gone.
    confirm_departure: bool = True
    # Devices that never mean a member: printers, the space's own machines.
    ignore: tuple[str, ...] = field(default=(), metadata={"parse": _mac})


DoorAccess = Literal["check-in", "booking", "member"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DoorBase:
    name: str
    type: str
    # Who may open it: "check-in" (Cobot's preview, the default), "booking" (the member
    # holding a booking of ``resource_id`` now), "member" (any token the cache knows).
    access: DoorAccess = "check-in"
    # access = "booking": the Cobot resource behind this door, and seconds before its
    # booking starts / after it ends that its member may enter.
    resource_id: str | None = None
    grace_before: float = field(default=600.0, metadata=_bounds(0, 86_400))
    grace_after: float = field(default=300.0, metadata=_bounds(0, 86_400))
    # access = "booking": entering on a booking also checks the member in.
    check_in: bool = False
    # access = "booking", > 0: a tap at a free room books it now for this many minutes.
    walk_up_minutes: int = field(default=0, metadata=_bounds(0, 1440))


def _argv_item(text: str) -> str:
    if not text:
        raise ValueError("expected a non-empty string (argv items are not split by a shell)")
    return text


_ARGV = {"min_items": 1, "parse": _argv_item}


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandDoorConfig(DoorBase):
    """A door opened by a program: ``command`` is its argv (no shell), e.g.
    ``["/usr/local/bin/relay", "on"]``. It counts as opened only when it exits 0 within
    ``timeout``; past it, the command and every child it started are killed."""

    type: Literal["command"] = "command"
    command: tuple[str, ...] = field(metadata=_ARGV)
    timeout: float = field(default=5.0, metadata=_bounds(0.1, 60))
    # Optional: run with the signal name (granted, refused, offline; clocked-in/out;
    # enrol-waiting/captured/ended: gateway.doors.base) appended; the same timeout applies.
    feedback_command: tuple[str, ...] | None = field(default=None, metadata=_ARGV)


GpioLine = int | str
"""A line by offset on its chip (17) or by the name the chip gives it ("GPIO17")."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GpioDoorConfig(DoorBase):
    """A door strike's relay on a GPIO line (libgpiod v2), with optional door contact,
    exit button, LEDs and buzzer on the same chip. See hardware/relay.md for wiring."""

    type: Literal["gpio"] = "gpio"
    # A path, or the chip's label ("pinctrl-rp1" on a Pi 5; gpiodetect lists them).
    chip: str = "/dev/gpiochip0"
    line: GpioLine
    # Many relay boards switch on when their input is pulled low: then set true.
    active_low: bool = False
    # How long the strike is unlocked per grant (or exit-button press).
    pulse: float = field(default=3.0, metadata=_bounds(0.1, 60))
    # Door contact (reed switch): active while the door is open. With the default
    # pull-up and a switch that closes to ground when the door is shut, the line reads
    # high (active) when the door is open: contact_active_low = false.
    contact_line: GpioLine | None = None
    contact_active_low: bool = False
    # A door open longer than this raises the held-open alarm (logged, red LED, buzzer).
    held_open_alarm: float = field(default=30.0, metadata=_bounds(1, 86_400))
    # Request-to-exit button; a button to ground with the pull-up is active-low.
    exit_button_line: GpioLine | None = None
    exit_button_active_low: bool = True
    input_bias: Literal["pull-up", "pull-down", "disabled", "as-is"] = "pull-up"
    # Kernel debounce of the inputs, in seconds.
    debounce: float = field(default=0.05, metadata=_bounds(0, 1))
    green_led_line: GpioLine | None = None
    red_led_line: GpioLine | None = None
    buzzer_line: GpioLine | None = None
    feedback_active_low: bool = False

    def lines(self) -> dict[str, GpioLine]:
        """Configured lines by config key, e.g. ``{"line": 17, "contact_line": 27}``."""
        keys = (
            "line",
            "contact_line",
            "exit_button_line",
            "green_led_line",
            "red_led_line",
            "buzzer_line",
        )
        return {k: v for k in keys if (v := getattr(self, k)) is not None}


def _wiegand_format(name: str) -> str:
    from gateway.readers.wiegand.formats import formats_for

    formats_for(name)  # raises ValueError naming the choices
    return name.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class WiegandReaderConfig(ReaderBase):
    """A Wiegand reader's D0/D1 on two GPIO lines (libgpiod v2; hardware/wiegand.md).
    The lines are 5 V on most readers: a level shifter or divider is required."""

    type: Literal["wiegand"] = "wiegand"
    # A path, or the chip's label: "pinctrl-rp1" is the header on a Pi 5,
    # "pinctrl-bcm2711" on a Pi 4 (gpiodetect lists them).
    chip: str = "/dev/gpiochip0"
    d0_line: GpioLine  # green wire
    d1_line: GpioLine  # white wire
    # "auto" (26, 34, 37 bits), "26", "34", "37", or HID names ("h10301", "h10306",
    # "h10302", "h10304"), or a list of them.
    format: str | tuple[str, ...] = field(default="auto", metadata={"parse": _wiegand_format})
    # "facility-card" ("123,45678", as printed), "decimal" or "hex" (the whole number).
    token_format: Literal["facility-card", "decimal", "hex"] = "facility-card"
    # A keypad's keys make a PIN token ending with "#" ("*" clears). Off: keys ignored.
    keypad: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HidReaderConfig(ReaderBase):
    """A USB reader that types like a keyboard, read through evdev and grabbed
    exclusively so its digits never reach a console or a login prompt."""

    type: Literal["hid"] = "hid"
    device: str = field(
        metadata={
            "pattern": r"/dev/input/\S+|[0-9a-fA-F]{4}:[0-9a-fA-F]{4}",
            "expected": "a /dev/input/by-id/...-event-kbd path or 'vendor:product'",
        }
    )
    # The layout the reader types for (the host setting it was configured with).
    layout: Literal["us", "uk", "de", "fr"] = "us"
    # Keys of one token arrive milliseconds apart; a partial token followed by a pause
    # this long is dropped.
    token_timeout: float = field(default=0.5, metadata=_bounds(0.05, 10))


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalSection:
    """The captive portal on the LAN side (``[portal]``; see gateway/portal)."""

    enabled: bool = True
    space_name: str
    # The LAN-side interface (Wi-Fi or its bridge): firewall rules and the neighbour
    # table (IP -> MAC) are scoped to it.
    interface: str
    # Addresses to listen on; the firewall and the neighbour lookup (only clients on
    # ``interface`` can sign in) keep the other sides out.
    listen: tuple[str, ...] = ("0.0.0.0", "::")  # noqa: S104
    port: int = field(default=8080, metadata=_bounds(1, 65535))
    # How clients reach the portal, e.g. "http://portal.lan:8080/". Default: the address
    # the client connected to (what a redirected connection lands on).
    url: str | None = None
    language: Literal["auto", "en", "de"] = "auto"
    firewall: bool = True
    table: str = "checkin_portal"
    # Client networks allowed to use the portal; empty: any client on ``interface``.
    lan_subnets: tuple[str, ...] = ()
    # A device is let out until the check-in's valid_until, but never longer than this.
    max_session: float = field(default=86_400.0, metadata=_bounds(5, 7 * 86_400))
    # Failed sign-ins per MAC, per IP and per login within failure_window before a lock.
    max_failures: int = field(default=5, metadata=_bounds(1, 1000))
    failure_window: float = field(default=900.0, metadata=_bounds(1, 86_400))


@dataclass(frozen=True, slots=True, kw_only=True)
class MocoUser:
    """One staff card clocking one MOCO user (``[[moco.users]]``)."""

    token: str  # the card, in the spelling its reader produces (compared ignoring case)
    user_id: int = field(metadata=_bounds(1))
    # This user's own API key; without it the account key acts for user_id
    # (X-IMPERSONATE-USER-ID).
    api_key_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MocoSection:
    """MOCO presences for staff (``[moco]``; gateway/moco, moco-presences.txt)."""

    base_url: str  # "https://acme.mocoapp.com"; requests go to base_url + "/api/v1/..."
    api_key_file: Path | None = None
    # A second tap of one user sooner than this is ignored. MOCO discards a presence
    # started and stopped within the same minute: less than 60 s is refused.
    min_interval: float = field(default=60.0, metadata=_bounds(60, 86_400))
    # Requests per minute the gateway allows itself at MOCO (its own limiter group).
    # MOCO's limit is not on the presences page: a conservative default.
    rpm: int = field(default=30, metadata=_bounds(1, 10_000))
    request_timeout: float = field(default=10.0, metadata=_bounds(0.5, 30))
    users: tuple[MocoUser, ...] = ()


ReaderConfig = (
    SerialReaderConfig
    | NfcReaderConfig
    | KeyboardReaderConfig
    | MacReaderConfig
    | WiegandReaderConfig
    | HidReaderConfig
)
DoorConfig = CommandDoorConfig | GpioDoorConfig

READER_TYPES: dict[str, type[ReaderBase]] = {
    "serial": SerialReaderConfig,
    "nfc": NfcReaderConfig,
    "keyboard": KeyboardReaderConfig,
    "mac": MacReaderConfig,
    "wiegand": WiegandReaderConfig,
    "hid": HidReaderConfig,
}
DOOR_TYPES: dict[str, type[DoorBase]] = {
    "command": CommandDoorConfig,
    "gpio": GpioDoorConfig,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingsSection:
    """``[bookings]``: the snapshot of each booking door's room (gateway/bookings)."""

    # Seconds between snapshots of each room's bookings (yesterday to tomorrow).
    refresh_interval: float = field(default=300.0, metadata=_bounds(30, 86_400))
    # A snapshot older than this (refreshes failing) still decides, but as "offline":
    # the door signals offline and walk-up booking stops.
    max_age: float = field(default=1800.0, metadata=_bounds(60, 7 * 86_400))


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    source: str
    gateway: GatewaySection
    cobot: CobotSection
    queue: QueueSection = QueueSection()
    readers: tuple[ReaderBase, ...] = ()
    doors: tuple[DoorBase, ...] = ()
    portal: PortalSection | None = None
    moco: MocoSection | None = None
    bookings: BookingsSection = BookingsSection()
    metrics: MetricsSection | None = None
    mqtt: MqttSection | None = None
    admin: AdminSection | None = None

    def door(self, name: str) -> DoorBase:
        return next(d for d in self.doors if d.name == name)
