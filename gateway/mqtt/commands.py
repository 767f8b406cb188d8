"""Commands that arrive over MQTT: remote unlock (opt-in), refresh tokens, enrolment.

Who may send them is the broker's business (its ACL on ``<prefix>/cmd`` and
``<prefix>/door/+/set``); the gateway logs every command it receives and answers each on
``<prefix>/cmd/reply`` with ``{"id", "command", "ok", "detail"}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gateway.doors.base import Door
from gateway.errors import DoorError

log = structlog.get_logger(__name__)

COMMANDS = ("unlock", "refresh_tokens", "enrol")
NO_ENROLMENT = (
    "enrolment needs the admin page: add an [admin] table (the captured card is given to"
    " a member there)"
)
MAX_COMMAND_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Reply:
    id: str | None
    command: str | None
    ok: bool
    detail: str

    def payload(self) -> bytes:
        body = {"id": self.id, "command": self.command, "ok": self.ok, "detail": self.detail}
        return json.dumps(body, separators=(",", ":")).encode()


class TokenRefresh(Protocol):
    def request(self) -> None: ...


class StartEnrolment(Protocol):
    """Puts a reader in enrolment mode: ``(True, detail)`` when it now waits for a new
    card, ``(False, why not)`` otherwise (no such reader, no admin page)."""

    def __call__(self, reader: str) -> tuple[bool, str]: ...


def parse_command(raw: bytes) -> tuple[dict[str, Any] | None, Reply | None]:
    """The command object, or a refusal saying what is wrong with it."""
    if len(raw) > MAX_COMMAND_BYTES:
        return None, Reply(None, None, False, f"command over {MAX_COMMAND_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, Reply(None, None, False, 'not JSON; expected {"command": ..., "id": ...}')
    if not isinstance(body, dict):
        return None, Reply(None, None, False, "expected a JSON object")
    cid = body.get("id")
    cid = str(cid)[:64] if cid is not None else None
    command = body.get("command")
    if command not in COMMANDS:
        return None, Reply(cid, None, False, f"unknown command; expected one of {list(COMMANDS)}")
    return body, None


class GatewayCommands:
    """Carries out commands on the gateway's doors and token sync.

    ``on_unlock(door, opened, error)`` is told of every remote unlock attempt (the bridge
    publishes it as an event). ``enrol`` starts enrolment on a reader (None: this
    gateway cannot enrol, e.g. ``[admin]`` is off; the command is then refused)."""

    def __init__(
        self,
        doors: Mapping[str, Door],
        sync: TokenRefresh,
        *,
        allow_remote_unlock: bool,
        on_unlock: Callable[[str, bool, str | None], Awaitable[None]] | None = None,
        enrol: StartEnrolment | None = None,
        readers: Sequence[str] = (),
    ) -> None:
        self._doors = doors
        self._sync = sync
        self._enrol = enrol
        self._readers = tuple(readers)
        self._allow_unlock = allow_remote_unlock
        self._on_unlock = on_unlock

    async def run(self, raw: bytes, *, via: str) -> Reply:
        body, refusal = parse_command(raw)
        if refusal is not None:
            log.warning("mqtt_command_refused", via=via, detail=refusal.detail)
            return refusal
        assert body is not None
        cid = None if body.get("id") is None else str(body["id"])[:64]
        command = str(body["command"])
        if command == "unlock":
            return await self.unlock(str(body.get("door", "")), cid=cid, via=via)
        if command == "refresh_tokens":
            self._sync.request()
            log.info("mqtt_command", command=command, via=via)
            return Reply(cid, command, True, "token sync requested")
        return self.enrol(body.get("reader"), cid=cid, via=via)

    def enrol(self, reader: object, *, cid: str | None, via: str) -> Reply:
        """``{"command": "enrol", "reader": NAME}``: NAME's next unknown card is captured
        for the admin page. ``reader`` may be left out when the gateway has one reader."""
        if reader is None and len(self._readers) == 1:
            reader = self._readers[0]
        if not isinstance(reader, str) or not reader:
            ok, detail = False, f'"reader" missing; readers: {list(self._readers)}'
        elif self._enrol is None:
            ok, detail = False, NO_ENROLMENT
        else:
            ok, detail = self._enrol(reader)
        name = reader[:64] if isinstance(reader, str) else None
        if ok:
            log.info("mqtt_command", command="enrol", via=via, reader=name, ok=True)
        else:
            log.warning(
                "mqtt_command", command="enrol", via=via, reader=name, ok=False, detail=detail
            )
        return Reply(cid, "enrol", ok, detail)

    async def unlock(self, door_name: str, *, cid: str | None, via: str) -> Reply:
        door = self._doors.get(door_name)
        if not self._allow_unlock:
            log.warning("mqtt_unlock_refused", door=door_name, via=via, reason="not allowed")
            return Reply(cid, "unlock", False, "remote unlock is off ([mqtt] allow_remote_unlock)")
        if door is None:
            log.warning("mqtt_unlock_refused", door=door_name, via=via, reason="no such door")
            return Reply(cid, "unlock", False, f"no door {door_name!r}; doors: {list(self._doors)}")
        error = None
        try:
            await door.open()
        except DoorError as exc:
            error = str(exc)
        # Logged like a tap: the door, who asked (the topic), what happened.
        log.info(
            "tap",
            reader=via,
            door=door_name,
            outcome="remote-unlock",
            opened=error is None,
            reason=error,
        )
        if self._on_unlock is not None:
            await self._on_unlock(door_name, error is None, error)
        return Reply(cid, "unlock", error is None, error or "opened")
