"""The gateway's link to an MQTT broker, kept by the shared ``LinkSupervisor``.

The tap path never waits for the broker: ``decision`` (a ``DecisionHook``) only appends
to a bounded outgoing buffer (the oldest events go first when a long outage fills it).
Retained states (queue, Cobot, readers, locks, contacts) are polled once a second and
published when they change, and all of them again after every reconnect, so a broker
that restarted without persistence is whole again. The client's will publishes
``offline`` retained on ``availability`` when the gateway dies; a clean stop publishes
it itself.

Fleet: with several gateways on one Cobot account, a 429's Retry-After is published
retained on ``<fleet_topic>/retry_after/<group>`` as ``{"until": unix seconds, "from":
name}``; every gateway (this one too, after a restart) blocks that group until then. The
wall clocks of the gateways must agree (NTP) for ``until`` to mean the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from gateway.cobot.ratelimit import MAX_BLOCK, Group, RateLimiter
from gateway.config.integrations import MqttSection
from gateway.decide import Decision
from gateway.mqtt.commands import GatewayCommands
from gateway.mqtt.payloads import Discovery, discovery_configs, event_payload
from gateway.mqtt.topics import Topics
from gateway.readers.link import LinkFault, LinkPolicy, LinkState, LinkSupervisor
from gateway.redact import remember

log = structlog.get_logger(__name__)

# A broker is a network service many gateways share: jitter spreads their reconnects.
MQTT_POLICY = LinkPolicy(first_delay=1.0, cap=60.0, stable_after=30.0, jitter=0.3)
OUTGOING_MAX = 1000  # events buffered while the broker is away
STATE_POLL = 1.0  # seconds between looks at the retained states
PUBLISH_TIMEOUT = 10.0  # seconds for one publish (QoS 1: until the broker's PUBACK)
STOP_TIMEOUT = 1.0  # seconds the "offline" at a clean stop may take

StateSource = Callable[[], Mapping[str, str]]


class _Event:
    """A decision's event payload, encoded by the sender, not on the tap path (once,
    for both topics it goes to)."""

    __slots__ = ("_decision", "_door", "_encoded", "_names")

    def __init__(self, decision: Decision, door: str | None, names: bool) -> None:
        self._decision, self._door, self._names = decision, door, names
        self._encoded: bytes | None = None

    def encode(self) -> bytes:
        if self._encoded is None:
            self._encoded = event_payload(self._decision, self._door, member_names=self._names)
        return self._encoded


Message = tuple[str, bytes | _Event, int, bool]  # topic, payload, qos, retain


class MqttBridge:
    """One broker connection for one gateway; ``run`` is a runner part.

    ``doors_of``: reader -> its door (for events). ``states``: the retained state topics
    and payloads now (``payloads.states``). ``commands`` carries out what arrives on
    ``cmd`` and ``door/<door>/set``. ``limiter``: shares and obeys the fleet's
    Retry-After (None: no fleet sharing).
    """

    def __init__(
        self,
        cfg: MqttSection,
        topics: Topics,
        discovery: Discovery,
        *,
        doors_of: Mapping[str, str | None],
        states: StateSource,
        commands: GatewayCommands | None,
        limiter: RateLimiter | None,
        policy: LinkPolicy = MQTT_POLICY,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._cfg = cfg
        self.topics = topics
        self._discovery = discovery
        self._doors_of = doors_of
        self._states = states
        self._commands = commands
        self._limiter = limiter
        self._wall = wall
        self._out: deque[Message] = deque(maxlen=OUTGOING_MAX)
        self._wake = asyncio.Event()
        self._published: dict[str, str] = {}
        self.dropped = 0  # events lost to a full buffer
        self._door_events: dict[str, str] = {}
        self.opened_at: dict[str, float] = {}  # door -> monotonic time it was last opened
        self.link = LinkSupervisor(
            policy, events="mqtt", broker=f"{cfg.host}:{self.port}", prefix=topics.prefix
        )
        if limiter is not None:
            limiter.on_block.append(self._share_block)

    @property
    def port(self) -> int:
        return self._cfg.port or (8883 if self._cfg.tls else 1883)

    @property
    def state(self) -> LinkState:
        return self.link.state

    def status(self) -> dict[str, Any]:
        """For ``checkin-gateway status``: the link and what it could not send."""
        stats = self.link.stats
        return {
            "state": stats.state.value,
            "broker": f"{self._cfg.host}:{self.port}",
            "reconnects": stats.reconnects,
            "error": stats.last_error,
            "buffered_events": len(self._out),
            "dropped_events": self.dropped,
        }

    # -- the tap path: never waits -------------------------------------------------------

    def decision(self, decision: Decision) -> None:
        """A ``DecisionHook``: queue the event (microseconds; the broker may be away)."""
        door = self._doors_of.get(decision.tap.reader)
        if door is not None and decision.opened:
            self.opened_at[door] = time.monotonic()
        event = _Event(decision, door, self._cfg.member_names)
        self._push((self.topics.event, event, 1, False))
        if door is not None:
            topic = self._door_events.get(door)
            if topic is None:
                topic = self._door_events[door] = self.topics.door(door, "event")
            self._push((topic, event, 1, False))

    def publish_soon(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._push((topic, payload, 1, retain))

    def _push(self, message: Message) -> None:
        if len(self._out) == OUTGOING_MAX:
            self.dropped += 1
        self._out.append(message)
        self._wake.set()

    def _share_block(self, group: Group, seconds: float) -> None:
        body = {"until": round(self._wall() + seconds, 3), "from": self._discovery.name}
        payload = json.dumps(body, separators=(",", ":")).encode()
        self._push((self.topics.retry_after(group.value), payload, 1, True))

    # -- the link --------------------------------------------------------------------

    async def run(self) -> None:
        await self.link.run(self._attempt)

    async def _client(self) -> aiomqtt.Client:
        cfg = self._cfg
        password = None
        if cfg.password_file is not None:
            password = await asyncio.to_thread(_read_secret, cfg.password_file)
            remember(password, pin=True)  # never in a log line, whatever a library says
        tls = None
        if cfg.tls:
            cafile = str(cfg.ca_file) if cfg.ca_file else None
            tls = await asyncio.to_thread(ssl.create_default_context, cafile=cafile)
        return aiomqtt.Client(
            cfg.host,
            self.port,
            username=cfg.username,
            password=password,
            identifier=f"checkin-gateway-{self._discovery.name}",
            keepalive=cfg.keepalive,
            timeout=PUBLISH_TIMEOUT,
            tls_context=tls,
            will=aiomqtt.Will(self.topics.availability, b"offline", qos=1, retain=True),
            max_queued_incoming_messages=256,
        )

    async def _attempt(self) -> None:
        client = await self._client()
        try:
            await client.__aenter__()  # connect (bounded by the client's timeout)
        except aiomqtt.MqttError as exc:
            raise self._fault(exc) from exc
        try:
            self.link.up()
            await self._serve(client)
        except asyncio.CancelledError:
            await self._close(client, clean=True)
            raise
        except aiomqtt.MqttError as exc:
            await self._close(client, clean=False)
            raise self._fault(exc) from exc
        except BaseException:
            await self._close(client, clean=False)
            raise

    async def _close(self, client: aiomqtt.Client, *, clean: bool) -> None:
        """Disconnect within ``STOP_TIMEOUT`` (the runner's stop deadline is shared by
        every part). A clean stop says ``offline`` first: the will is only for a death."""
        client.timeout = STOP_TIMEOUT
        if clean:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self.topics.availability, b"offline", qos=1, retain=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

    def _fault(self, exc: aiomqtt.MqttError) -> LinkFault:
        where = f"MQTT broker {self._cfg.host}:{self.port}"
        # 4/5 (v3.1.1) or 134/135 (v5): bad user name or password, not authorised.
        if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc in (4, 5, 134, 135):
            return LinkFault("refused", f"{where} refused us: {exc}")
        return LinkFault("lost", f"{where}: {exc}")

    async def _serve(self, client: aiomqtt.Client) -> None:
        t = self.topics
        await _publish(client, t.availability, b"online", retain=True)
        await client.subscribe(
            [(t.cmd, 1), (t.door_commands, 1), (t.ha_status, 1), (t.retry_after("+"), 1)]
        )
        await self._announce(client)
        self._published.clear()  # the broker may have lost what we had retained there
        await _first_failure(self._send(client), self._receive(client), self._watch_states())

    async def _announce(self, client: aiomqtt.Client) -> None:
        if not self._cfg.discovery:
            return
        for topic, config in discovery_configs(self.topics, self._discovery).items():
            await _publish(client, topic, json.dumps(config).encode(), retain=True)
        log.info("mqtt_discovery_published", prefix=self.topics.discovery_prefix)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            while self._out:
                topic, payload, qos, retain = self._out[0]
                if isinstance(payload, _Event):
                    payload = payload.encode()
                await _publish(client, topic, payload, qos=qos, retain=retain)
                self._out.popleft()  # only once the broker has it: a loss resends it
            self._wake.clear()
            await self._wake.wait()

    async def _watch_states(self) -> None:
        while True:
            for topic, value in self._states().items():
                if self._published.get(topic) != value:
                    self._published[topic] = value
                    self._push((topic, value.encode(), 1, True))
            await asyncio.sleep(STATE_POLL)

    async def _receive(self, client: aiomqtt.Client) -> None:
        t = self.topics
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == t.ha_status:
                if payload == b"online":  # Home Assistant restarted: announce again
                    await self._announce(client)
            elif message.topic.matches(t.retry_after("+")):
                self._fleet_block(topic.rsplit("/", 1)[-1], payload)
            elif topic == t.cmd:
                await self._command(payload, via="mqtt:cmd")
            elif message.topic.matches(t.door_commands):
                door = topic.split("/")[-2]
                await self._door_command(door, payload)

    async def _command(self, payload: bytes, *, via: str) -> None:
        if self._commands is None:
            return
        reply = await self._commands.run(payload, via=via)
        self.publish_soon(self.topics.reply, reply.payload())

    async def _door_command(self, door_slug: str, payload: bytes) -> None:
        if self._commands is None:
            return
        door = next((d for d in self._discovery.doors if _slug_eq(d, door_slug)), door_slug)
        if payload.strip().upper() != b"UNLOCK":
            log.warning(
                "mqtt_door_command_ignored",
                door=door,
                payload=payload[:32].decode(errors="replace"),
            )
            return
        reply = await self._commands.unlock(door, cid=None, via=f"mqtt:door/{door_slug}/set")
        self.publish_soon(self.topics.reply, reply.payload())

    def _fleet_block(self, group_name: str, payload: bytes) -> None:
        if self._limiter is None:
            return
        try:
            group = Group(group_name)
            body = json.loads(payload)
            until = float(body["until"])
        except (ValueError, KeyError, TypeError):
            if payload:  # an empty retained message clears the topic: nothing to do
                log.warning("mqtt_fleet_garbage", group=group_name)
            return
        seconds = min(until - self._wall(), MAX_BLOCK)
        if seconds <= 0:
            return
        if body.get("from") != self._discovery.name:
            log.info(
                "fleet_retry_after",
                group=group.value,
                seconds=round(seconds, 1),
                peer=body.get("from"),
            )
        self._limiter.block(group, seconds, share=False)


async def _publish(
    client: aiomqtt.Client, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
) -> None:
    await client.publish(topic, payload, qos=qos, retain=retain)
    # aiomqtt waits for the PUBACK with asyncio.wait_for, which on Python 3.11 can lose a
    # cancellation that arrives as the PUBACK does: the stop would then hang here. Honour
    # a pending cancellation ourselves.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _slug_eq(name: str, door_slug: str) -> bool:
    from gateway.mqtt.topics import slug

    return slug(name) == door_slug


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LinkFault(
            "password", f"[mqtt] password_file {path}: cannot read it: {exc.strerror}", fatal=True
        ) from exc


async def _first_failure(*work: Awaitable[Any]) -> None:
    """Run ``work`` together until one ends or fails; cancel the rest; raise its error."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    raise aiomqtt.MqttError("the connection ended")
