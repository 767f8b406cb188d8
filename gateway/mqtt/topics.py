"""Topic names: one place, so payload builders, the bridge and the docs agree.

Under ``<prefix>`` (default ``checkin-gateway/<gateway name>``)::

    availability            online | offline (retained; the client's will says offline)
    event                   one JSON object per decision (not retained)
    door/<door>/event       the same, for the door's Home Assistant event entity
    door/<door>/lock        LOCKED | UNLOCKED (retained)
    door/<door>/set         UNLOCK (Home Assistant's lock command; opt-in)
    door/<door>/contact     open | closed (retained; doors with a contact line)
    reader/<reader>/state   connecting | ready | reconnecting | failed | stopped (retained)
    queue                   records waiting for delivery (retained)
    cobot                   connected | offline | auth_failed (retained)
    cmd                     JSON commands; answers on cmd/reply

Home Assistant's birth topic ``<discovery_prefix>/status`` and the fleet's
``<fleet_topic>/retry_after/<group>`` (retained) are outside the prefix.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from gateway.config.integrations import MqttSection

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def slug(name: str) -> str:
    """A topic level / entity id from a configured name (no '/', '+', '#', spaces)."""
    return _UNSAFE.sub("_", name) or "_"


def gateway_name(configured: str | None) -> str:
    return slug(configured or socket.gethostname())


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    discovery_prefix: str
    fleet: str

    @classmethod
    def of(cls, cfg: MqttSection, name: str) -> Topics:
        prefix = (cfg.topic_prefix or f"checkin-gateway/{name}").rstrip("/")
        return cls(prefix, cfg.discovery_prefix, cfg.fleet_topic.rstrip("/"))

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def event(self) -> str:
        return f"{self.prefix}/event"

    @property
    def queue(self) -> str:
        return f"{self.prefix}/queue"

    @property
    def cobot(self) -> str:
        return f"{self.prefix}/cobot"

    @property
    def cmd(self) -> str:
        return f"{self.prefix}/cmd"

    @property
    def reply(self) -> str:
        return f"{self.prefix}/cmd/reply"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def door(self, door: str, leaf: str) -> str:
        return f"{self.prefix}/door/{slug(door)}/{leaf}"

    @property
    def door_commands(self) -> str:
        """The filter for every door's ``set`` topic."""
        return f"{self.prefix}/door/+/set"

    def reader_state(self, reader: str) -> str:
        return f"{self.prefix}/reader/{slug(reader)}/state"

    def retry_after(self, group: str) -> str:
        return f"{self.fleet}/retry_after/{group}"

    def discovery(self, component: str, node: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{node}/{object_id}/config"
