"""Reading and validating the TOML file, and finding the API token."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway.config.integrations import AdminSection, MetricsSection, MqttSection
from gateway.config.model import (
    DOOR_TYPES,
    READER_TYPES,
    BookingsSection,
    CobotSection,
    Config,
    DoorBase,
    GatewaySection,
    GpioDoorConfig,
    MacReaderConfig,
    MocoSection,
    NfcReaderConfig,
    PortalSection,
    QueueSection,
    SerialReaderConfig,
    WiegandReaderConfig,
)
from gateway.config.schema import Where, build
from gateway.errors import ConfigError
from gateway.portal.settings import check_portal

_TOP_LEVEL = (
    "gateway",
    "cobot",
    "queue",
    "readers",
    "doors",
    "portal",
    "bookings",
    "moco",
    "metrics",
    "mqtt",
    "admin",
)
_TABLES = ("gateway", "cobot", "queue", "portal", "bookings", "metrics", "mqtt", "admin")
T = TypeVar("T")
CREDENTIAL_NAME = "cobot-token"
# Cobot's documented limits (API pages: general, check-ins): 60 requests a minute per
# user, 120 for check-ins. Configuring more is allowed (another server, a raised quota)
# but earns a warning: Cobot answers the excess with 429.
COBOT_CHECK_IN_RPM = 120
COBOT_DEFAULT_RPM = 60


def load_config(path: Path | str) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, str(path))


def _typed_tables(
    data: Mapping[str, Any], key: str, types: Mapping[str, type[Any]], where: Where
) -> tuple[Any, ...]:
    tables = data.get(key, [])
    if not isinstance(tables, list):
        raise where.key(key).error(f"expected an array of tables ([[{key}]])")
    built = []
    names: set[str] = set()
    for i, table in enumerate(tables):
        at = where.key(key).index(i)
        if not isinstance(table, dict):
            raise at.error("expected a table")
        kind = table.get("type")
        choices = ", ".join(map(repr, types))
        if "type" not in table:
            raise at.key("type").error(f"missing; expected one of {choices}")
        if not isinstance(kind, str) or kind not in types:
            raise at.key("type").error(f"expected one of {choices}, got {kind!r}")
        if table.get("protocol") == "line" and "token_format" in table:
            # A line reader passes on the text it reads: a format would silently not apply.
            raise at.key("token_format").error(
                "does not apply to protocol = 'line' (the reader's text is the token); remove it"
            )
        item = build(types[kind], table, at)
        if item.name in names:
            raise at.key("name").error(f"duplicate name {item.name!r}")
        names.add(item.name)
        built.append(item)
    return tuple(built)


def parse_config(data: Mapping[str, Any], source: str) -> Config:
    top = Where(source)
    for key in data:
        if key not in _TOP_LEVEL:
            close = difflib.get_close_matches(key, _TOP_LEVEL, n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise top.key(key).error(
                f"unknown section{hint}; expected one of {', '.join(_TOP_LEVEL)}"
            )
    for required in ("gateway", "cobot"):
        if required not in data:
            raise top.key(required).error(f"missing section [{required}]")
    for table in _TABLES:
        if table in data and not isinstance(data[table], dict):
            raise top.key(table).error(
                f"expected a table ([{table}] on a line of its own), got "
                f"{type(data[table]).__name__} {data[table]!r}"
            )
    cfg = Config(
        source=source,
        gateway=build(GatewaySection, data["gateway"], top.key("gateway")),
        cobot=build(CobotSection, data["cobot"], top.key("cobot")),
        queue=build(QueueSection, data.get("queue", {}), top.key("queue")),
        readers=_typed_tables(data, "readers", READER_TYPES, top),
        doors=_typed_tables(data, "doors", DOOR_TYPES, top),
        portal=_portal(data, top),
        moco=_moco(data, top),
        bookings=build(BookingsSection, data.get("bookings", {}), top.key("bookings")),
        metrics=_optional(MetricsSection, data, "metrics", top),
        mqtt=_optional(MqttSection, data, "mqtt", top),
        admin=build(AdminSection, data["admin"], top.key("admin")) if "admin" in data else None,
    )
    _cross_check(cfg, top)
    _check_admin(cfg, top)
    return cfg


def _optional(cls: type[T], data: Mapping[str, Any], key: str, top: Where) -> T | None:
    """A section that is off unless its table is there."""
    return build(cls, data[key], top.key(key)) if key in data else None


def _portal(data: Mapping[str, Any], top: Where) -> PortalSection | None:
    if "portal" not in data:
        return None
    where = top.key("portal")
    if not isinstance(data["portal"], dict):
        raise where.error("expected a table ([portal])")
    cfg = build(PortalSection, data["portal"], where)
    check_portal(cfg, where)
    return cfg


def _moco(data: Mapping[str, Any], top: Where) -> MocoSection | None:
    if "moco" not in data:
        return None
    where = top.key("moco")
    if not isinstance(data["moco"], dict):
        raise where.error("expected a table ([moco])")
    cfg = build(MocoSection, data["moco"], where)
    _check_base_url(cfg.base_url, where.key("base_url"), "https://acme.mocoapp.com", "/api/v1/...")
    seen: dict[str, int] = {}
    for i, user in enumerate(cfg.users):
        token = user.token.strip().upper()
        at = where.key("users").index(i).key("token")
        if not token:
            raise at.error("expected the card's token, got an empty string")
        if token in seen:
            raise at.error(f"the same token is already users[{seen[token]}]")
        seen[token] = i
    return cfg


def _check_base_url(value: str, where: Where, example: str, below: str) -> None:
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise where.error(f"expected an http(s) URL like {example!r}, got {value!r}")
    if url.path not in ("", "/"):
        raise where.error(f"expected the root without a path; requests go to base_url + {below!r}")


def _cross_check(cfg: Config, top: Where) -> None:
    _check_state_dir(cfg, top.key("gateway").key("state_dir"))
    _check_devices(cfg, top)
    url = urlsplit(cfg.cobot.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise (
            top.key("cobot")
            .key("base_url")
            .error(
                f"expected an http(s) URL like 'https://co-up.cobot.me', got {cfg.cobot.base_url!r}"
            )
        )
    if url.path not in ("", "/"):
        raise (
            top.key("cobot")
            .key("base_url")
            .error("expected the space's root without a path; requests go to base_url + '/api/...'")
        )
    for i, door in enumerate(cfg.doors):
        if isinstance(door, GpioDoorConfig):
            _check_gpio_lines(door, top.key("doors").index(i))
    for i, door in enumerate(cfg.doors):
        _check_access(door, top.key("doors").index(i))
    if cfg.bookings.max_age < cfg.bookings.refresh_interval:
        raise (
            top.key("bookings")
            .key("max_age")
            .error(
                f"must be at least refresh_interval ({cfg.bookings.refresh_interval:g}), "
                f"got {cfg.bookings.max_age:g}"
            )
        )
    door_names = {d.name for d in cfg.doors}
    for i, reader in enumerate(cfg.readers):
        _check_record(cfg, reader.record, top.key("readers").index(i).key("record"))
        if isinstance(reader, WiegandReaderConfig):
            _check_wiegand(reader, top.key("readers").index(i))
        if reader.door is not None and reader.door not in door_names:
            known = ", ".join(sorted(door_names)) or "none defined"
            raise (
                top.key("readers")
                .index(i)
                .key("door")
                .error(f"no door named {reader.door!r} (doors: {known})")
            )


def _check_record(cfg: Config, record: tuple[str, ...], where: Where) -> None:
    if not record:
        raise where.error('expected at least one of "cobot", "moco"')
    if len(set(record)) != len(record):
        raise where.error(f"a backend is named twice: {list(record)}")
    if "moco" in record and cfg.moco is None:
        raise where.error('"moco" needs a [moco] section (base_url, users)')


def _check_wiegand(reader: WiegandReaderConfig, where: Where) -> None:
    from gateway.readers.wiegand.formats import formats_for

    try:
        formats_for(reader.format)  # each name is checked already; here the combination
    except ValueError as exc:
        raise where.key("format").error(str(exc)) from None
    for key in ("d0_line", "d1_line"):
        line = getattr(reader, key)
        if isinstance(line, int) and line < 0:
            raise where.key(key).error(f"a line offset is 0 or more, got {line}")
    if str(reader.d0_line) == str(reader.d1_line):
        raise where.key("d1_line").error(f"D0 and D1 are the same line ({reader.d0_line!r})")


def _check_state_dir(cfg: Config, where: Where) -> None:
    state_dir = cfg.gateway.state_dir
    if not state_dir.is_absolute():
        # systemd starts the service in /, a shell wherever it is: one config, two dirs.
        raise where.error(f"expected an absolute path, got {str(state_dir)!r}")
    if state_dir.exists() and not state_dir.is_dir():
        raise where.error(f"{state_dir} exists and is not a directory")


def _check_devices(cfg: Config, top: Where) -> None:
    """Two readers on one serial port (or one NFC device, one interface) would steal
    each other's bytes: refuse. Symlinks (/dev/serial0 -> ttyAMA0) count as the same."""
    seen: dict[str, str] = {}
    for i, reader in enumerate(cfg.readers):
        if isinstance(reader, SerialReaderConfig):
            key, device = "port", os.path.realpath(reader.port)
        elif isinstance(reader, NfcReaderConfig):
            key, device = "device", f"nfc:{reader.device}"
        elif isinstance(reader, MacReaderConfig):
            key, device = "interface", f"if:{reader.interface}"
        else:
            continue
        if device in seen:
            raise (
                top.key("readers")
                .index(i)
                .key(key)
                .error(f"{getattr(reader, key)!r} is already used by reader {seen[device]!r}")
            )
        seen[device] = reader.name


_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - what we look for


def _check_admin(cfg: Config, top: Where) -> None:
    """The admin page never listens where the captive portal's clients are."""
    admin, portal = cfg.admin, cfg.portal
    if admin is None or portal is None or not portal.enabled:
        return
    if _WILDCARDS.intersection(admin.listen):
        raise (
            top.key("admin")
            .key("listen")
            .error(
                "a wildcard address would put the admin page on the captive portal's network "
                f"({portal.interface}) too; list the loopback and management addresses instead"
            )
        )
    shared = set(admin.listen) & set(portal.listen)
    if shared and admin.port == portal.port:
        raise (
            top.key("admin")
            .key("port")
            .error(
                f"{admin.port} is the portal's port on {', '.join(sorted(shared))}; choose another"
            )
        )


def config_warnings(cfg: Config) -> list[str]:
    """What is allowed but probably not meant; ``check-config`` prints these and
    ``run`` logs them at start."""
    where = Where(cfg.source).key("cobot")
    out = []
    if not cfg.readers and (cfg.portal is None or not cfg.portal.enabled):
        # A warning, not an error: a gateway that only replays its queue is legitimate.
        out.append(
            f"{cfg.source}: readers: no reader and no [portal]: nobody can check in through "
            "this gateway; add a [[readers]] table (see config/example.toml)"
        )
    if cfg.admin is not None and _WILDCARDS.intersection(cfg.admin.listen):
        out.append(
            f"{cfg.source}: admin.listen: {', '.join(cfg.admin.listen)} listens on every "
            "network; list the loopback and management network's addresses instead"
        )
    if cfg.cobot.check_in_rpm > COBOT_CHECK_IN_RPM:
        out.append(
            f"{cfg.source}: {where.key('check_in_rpm').path}: {cfg.cobot.check_in_rpm} is above "
            f"Cobot's limit of {COBOT_CHECK_IN_RPM} check-ins a minute; Cobot answers the "
            "excess with 429"
        )
    if cfg.cobot.default_rpm > COBOT_DEFAULT_RPM:
        out.append(
            f"{cfg.source}: {where.key('default_rpm').path}: {cfg.cobot.default_rpm} is above "
            f"Cobot's limit of {COBOT_DEFAULT_RPM} requests a minute; Cobot answers the "
            "excess with 429"
        )
    return out


def _check_access(door: DoorBase, where: Where) -> None:
    """The booking keys belong to ``access = "booking"`` doors, which need a resource."""
    if door.access == "booking":
        if not door.resource_id or not door.resource_id.strip():
            raise where.key("resource_id").error(
                'missing; access = "booking" needs the Cobot resource behind this door '
                'as a string, e.g. resource_id = "12355" (GET /api/resources lists them)'
            )
        return
    defaults = DoorBase(name="", type="")
    for key in ("resource_id", "grace_before", "grace_after", "check_in", "walk_up_minutes"):
        if getattr(door, key) != getattr(defaults, key):
            raise where.key(key).error(
                f'only used with access = "booking" (this door has access = "{door.access}")'
            )


def _check_gpio_lines(door: GpioDoorConfig, where: Where) -> None:
    seen: dict[str, str] = {}
    for key, line in door.lines().items():
        if isinstance(line, int) and line < 0:
            raise where.key(key).error(f"a line offset is 0 or more, got {line}")
        # Offsets and names can still alias each other (17 and "GPIO17"); the door
        # catches that when it asks the chip.
        if str(line) in seen:
            raise where.key(key).error(f"line {line!r} is already used as {seen[str(line)]}")
        seen[str(line)] = key


def load_access_token(cfg: Config, env: Mapping[str, str] | None = None) -> str:
    """The Cobot bearer token: the configured file, else $COBOT_ACCESS_TOKEN, else the
    systemd credential ``$CREDENTIALS_DIRECTORY/cobot-token`` (LoadCredential=)."""
    env = os.environ if env is None else env
    where = Where(cfg.source).key("cobot").key("access_token_file")
    if cfg.cobot.access_token_file is not None:
        return _read_token(cfg.cobot.access_token_file, where)
    if env.get("COBOT_ACCESS_TOKEN", "").strip():
        return env["COBOT_ACCESS_TOKEN"].strip()
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL_NAME).exists():
        return _read_token(Path(creds) / CREDENTIAL_NAME, where)
    raise where.error(
        "no Cobot access token: set access_token_file, or the environment variable "
        f"COBOT_ACCESS_TOKEN, or LoadCredential={CREDENTIAL_NAME}:... in the systemd unit"
    )


def _read_token(path: Path, where: Where) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise where.error(f"cannot read {path}: {exc.strerror}") from exc
    if not token:
        raise where.error(f"{path} is empty")
    return token
