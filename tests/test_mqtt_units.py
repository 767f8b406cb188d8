"""Pure parts of metrics and MQTT: sources, commands, topics, the fleet's payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config import parse_config
from gateway.decide import Decision
from gateway.errors import ConfigError
from gateway.metrics.instruments import decision_source
from gateway.model import Direction, Membership, Outcome, Tap
from gateway.mqtt.bridge import MqttBridge
from gateway.mqtt.commands import parse_command
from gateway.mqtt.payloads import Discovery, event_payload
from gateway.mqtt.topics import Topics, slug


def decision(outcome: Outcome, preview_ms: float | None = None) -> Decision:
    tap = Tap("desk", "0A1B2C3D4E", Direction.IN, datetime(2026, 1, 2, 8, 0, tzinfo=UTC), 0.0)
    return Decision(tap, outcome, Membership("m1", "Ada Lovelace"), None, True, 12.0, preview_ms)


@pytest.mark.parametrize(
    ("outcome", "preview", "source"),
    [
        (Outcome.OPENED_ONLINE, 5.0, "online"),
        (Outcome.OPENED_CACHED, None, "cache"),
        (Outcome.OPENED_OFFLINE, None, "offline"),
        (Outcome.DOOR_FAILED, 5.0, "online"),
        (Outcome.DOOR_FAILED, None, "cache"),
    ],
)
def test_decision_source(outcome: Outcome, preview: float | None, source: str) -> None:
    assert decision_source(decision(outcome, preview)) == source


def test_every_outcome_has_a_source() -> None:
    for outcome in Outcome:
        assert decision_source(decision(outcome)) in ("online", "cache", "offline")


def test_event_payload_never_has_the_token_and_names_only_when_asked() -> None:
    plain = json.loads(event_payload(decision(Outcome.OPENED_ONLINE), "front", member_names=False))
    assert plain == {
        "event_type": "opened-online",
        "time": "2026-01-02T08:00:00.000+00:00",
        "door": "front",
        "reader": "desk",
        "direction": "in",
        "outcome": "opened-online",
        "opened": True,
        "latency_s": 0.012,
    }
    named = event_payload(decision(Outcome.OPENED_ONLINE), "front", member_names=True)
    assert json.loads(named)["member"] == "Ada Lovelace"
    assert b"0A1B2C3D4E" not in named and b"m1" not in named


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"x" * 5000, "over 4096 bytes"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"command": "format_disk"}', "unknown command"),
    ],
)
def test_bad_commands_are_refused_saying_why(raw: bytes, detail: str) -> None:
    body, refusal = parse_command(raw)
    assert body is None and refusal is not None and detail in refusal.detail


def test_topics_are_safe_levels() -> None:
    assert slug("Front door #2/a+b") == "Front_door__2_a_b"
    cfg = parse_config(
        {
            "gateway": {"state_dir": "/tmp/x", "name": "gw-1"},
            "cobot": {"base_url": "http://x"},
            "mqtt": {"host": "b"},
        },
        "t",
    )
    assert cfg.mqtt is not None
    t = Topics.of(cfg.mqtt, "gw-1")
    assert t.availability == "checkin-gateway/gw-1/availability"
    assert t.door("Front door", "lock") == "checkin-gateway/gw-1/door/Front_door/lock"
    assert t.discovery("lock", "gw-1", "x") == "homeassistant/lock/gw-1/x/config"


def test_mqtt_config_errors_name_the_key() -> None:
    base = {"gateway": {"state_dir": "/tmp/x"}, "cobot": {"base_url": "http://x"}}
    with pytest.raises(ConfigError, match=r"mqtt.topic_prefix: expected a topic without"):
        parse_config({**base, "mqtt": {"host": "b", "topic_prefix": "a/#"}}, "t.toml")
    with pytest.raises(ConfigError, match=r"mqtt.hots: unknown key \(did you mean 'host'\?\)"):
        parse_config({**base, "mqtt": {"hots": "b"}}, "t.toml")
    with pytest.raises(ConfigError, match=r"metrics.port: must be at most 65535"):
        parse_config({**base, "metrics": {"port": 70000}}, "t.toml")


def _bridge(limiter: RateLimiter, now: float = 1000.0) -> MqttBridge:
    cfg = parse_config(
        {
            "gateway": {"state_dir": "/tmp/x"},
            "cobot": {"base_url": "http://x"},
            "mqtt": {"host": "b"},
        },
        "t",
    ).mqtt
    assert cfg is not None
    return MqttBridge(
        cfg,
        Topics.of(cfg, "gw1"),
        Discovery("gw1", "0", [], [], False),
        doors_of={},
        states=dict,
        commands=None,
        limiter=limiter,
        wall=lambda: now,
    )


def test_fleet_retry_after_blocks_without_echo_and_ignores_garbage() -> None:
    limiter = RateLimiter({Group.CHECK_INS: 120, Group.DEFAULT: 60})
    bridge = _bridge(limiter)
    bridge._fleet_block("check_ins", b'{"until": 1030, "from": "gw2"}')
    (state,) = [s for s in limiter.state() if s.group is Group.CHECK_INS]
    assert 29 < state.blocked_for <= 30
    assert not bridge._out  # a peer's block is not published again
    for garbage in (b"", b"nonsense", b'{"until": "x"}', b"{}"):
        bridge._fleet_block("check_ins", garbage)
    bridge._fleet_block("no_such_group", b'{"until": 1030}')
    bridge._fleet_block("default", b'{"until": 999}')  # already over
    assert [s.blocked_for for s in limiter.state() if s.group is Group.DEFAULT] == [0.0]
    # Our own 429 is shared, retained.
    limiter.block(Group.DEFAULT, 12.0)
    topic, payload, _qos, retain = bridge._out[-1]
    assert topic == "checkin-gateway/fleet/retry_after/default" and retain
    assert json.loads(payload) == {"until": 1012.0, "from": "gw1"}  # type: ignore[arg-type]
