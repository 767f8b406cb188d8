"""The portal's pure parts: probes, captive API, languages, pages, CSRF, throttle,
neighbour table parsers, the nftables script, sign-in refusals and its config."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cobot.errors import Refused
from gateway.config.loader import parse_config
from gateway.errors import ConfigError
from gateway.portal import captive_api, pages
from gateway.portal.csrf import CsrfGuard, new_session, valid_session
from gateway.portal.firewall import Ruleset, parse_set
from gateway.portal.i18n import MESSAGES, Lang, negotiate, parse_lang
from gateway.portal.neighbours import (
    canonical_ip,
    canonical_mac,
    parse_ip_neigh,
    parse_proc_arp,
)
from gateway.portal.pages import Html, Message, PageKind, escape
from gateway.portal.probes import PROBES, Action, find_probe, normalise_host
from gateway.portal.signin import SignInOutcome, classify
from gateway.portal.throttle import Throttle, keys_for

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)

# --- probes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "path", "system"),
    [
        ("connectivitycheck.gstatic.com", "/generate_204", "android"),
        ("clients3.google.com", "/generate_204", "android"),
        ("www.google.com", "/gen_204", "android"),
        ("captive.apple.com", "/hotspot-detect.html", "apple"),
        ("www.apple.com", "/library/test/success.html", "apple"),
        ("www.msftconnecttest.com", "/connecttest.txt", "windows"),
        ("www.msftconnecttest.com", "/redirect", "windows"),
        ("www.msftncsi.com", "/ncsi.txt", "windows"),
        ("detectportal.firefox.com", "/success.txt", "firefox"),
        ("Detectportal.Firefox.com.:80", "/success.txt", "firefox"),
        ("nmcheck.gnome.org", "/check_network_status.txt", "networkmanager"),
        ("connectivity-check.ubuntu.com", "/", "networkmanager"),
    ],
)
def test_probes_are_recognised(host, path, system):
    probe = find_probe(host, path)
    assert probe is not None
    assert probe.system == system


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("example.com", "/"),
        ("example.com", "/redirect"),  # ambiguous paths need their host
        ("example.com", "/success.txt"),
        (None, "/redirect"),
        ("captive.apple.com", "/hotspot-detect.htm"),
    ],
)
def test_other_requests_are_not_probes(host, path):
    assert find_probe(host, path) is None


def test_probe_answers_are_what_the_systems_expect():
    by = {(p.system, p.path): p for p in PROBES}
    assert by[("android", "/generate_204")].status == 204
    assert by[("android", "/generate_204")].body == b""
    assert by[("apple", "/hotspot-detect.html")].body == (
        b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
    )
    assert by[("windows", "/connecttest.txt")].body == b"Microsoft Connect Test"
    assert by[("firefox", "/success.txt")].body == b"success\n"
    assert by[("windows", "/redirect")].action is Action.STATUS_PAGE


@given(st.text(max_size=300))
def test_normalise_host_never_raises(host):
    assert isinstance(normalise_host(host), str)


def test_normalise_host_keeps_ipv6_literals():
    assert normalise_host("[FD00::1]:8080") == "[fd00::1]"
    assert normalise_host("10.0.0.1:8080") == "10.0.0.1"
    assert normalise_host("") == ""


# --- RFC 8908 -----------------------------------------------------------------------


def test_captive_state_for_a_captive_and_an_authorised_device():
    url = "http://10.0.0.1:8080/"
    assert captive_api.captive_state(portal_url=url, until=None, now=NOW) == {
        "captive": True,
        "user-portal-url": url,
    }
    state = captive_api.captive_state(portal_url=url, until=NOW + timedelta(seconds=59.9), now=NOW)
    assert state["captive"] is False
    assert state["seconds-remaining"] == 59
    expired = captive_api.captive_state(portal_url=url, until=NOW, now=NOW)
    assert expired["captive"] is True
    assert json.loads(captive_api.render(state)) == state


# --- languages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, Lang.EN),
        ("", Lang.EN),
        ("de", Lang.DE),
        ("de-DE,de;q=0.9,en;q=0.8", Lang.DE),
        ("en-GB,de;q=0.5", Lang.EN),
        ("fr-FR,fr;q=0.9,de;q=0.8,en;q=0.7", Lang.DE),
        ("fr, en;q=0.1, de;q=0.2", Lang.DE),
        ("de;q=0, en;q=0.5", Lang.EN),
        ("de;q=abc", Lang.EN),
        ("de;q=nan", Lang.EN),
        ("*", Lang.EN),
    ],
)
def test_accept_language(header, lang):
    assert negotiate(header) is lang


@given(st.text(max_size=500))
def test_accept_language_never_raises(header):
    assert negotiate(header) in Lang


def test_both_languages_have_every_message():
    assert MESSAGES[Lang.EN].keys() == MESSAGES[Lang.DE].keys()
    assert parse_lang("de") is Lang.DE
    assert parse_lang("xx") is None
    assert parse_lang(None) is None


# --- pages --------------------------------------------------------------------------


def test_everything_substituted_is_escaped():
    page = pages.sign_in_page(
        Lang.EN,
        '<b>"Space" & Co</b>',
        csrf='"><script>',
        login="<img src=x onerror=alert(1)>",
        message=Message(PageKind.ERROR, "<script>alert('x')</script>"),
    ).decode()
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;b&gt;&quot;Space&quot; &amp; Co&lt;/b&gt;" in page
    assert 'role="alert"' in page
    assert 'aria-invalid="true"' in page


def test_escape_leaves_built_markup_alone():
    assert escape("<a>") == "&lt;a&gt;"
    assert escape(Html("<a>")) == "<a>"


def test_pages_are_self_contained_and_accessible():
    page = pages.online_page(Lang.DE, "Space", until="23:59", name="Ada").decode()
    assert '<html lang="de">' in page
    assert 'name="viewport"' in page
    assert "http://" not in page and "https://" not in page  # no external assets
    assert "Willkommen, Ada." in page
    assert 'role="status"' in page


def test_inline_style_is_allowed_by_its_hash_only():
    policy = pages.CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in policy
    assert "'unsafe-inline'" not in policy
    assert "style-src 'sha256-" in policy


def test_format_until_local_time():
    assert pages.format_until(NOW + timedelta(hours=2), NOW, UTC) == "12:00"
    assert pages.format_until(NOW + timedelta(days=1), NOW, UTC) == "2025-03-05 10:00"


# --- CSRF ---------------------------------------------------------------------------


class Ticker:
    """A clock the test moves by hand."""

    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def test_csrf_token_is_bound_to_its_session_and_expires():
    clock = Ticker(1_700_000_000.0)
    guard = CsrfGuard(b"k" * 32, max_age=600, clock=clock)
    session, other = new_session(), new_session()
    token = guard.issue(session)
    assert guard.check(session, token)
    assert not guard.check(other, token)
    assert not guard.check(None, token)
    assert not guard.check(session, None)
    assert not CsrfGuard(b"x" * 32, clock=clock).check(session, token)  # after a restart
    clock.t += 601
    assert not guard.check(session, token)


def test_csrf_rejects_forged_and_future_times():
    clock = Ticker(1_700_000_000.0)
    guard = CsrfGuard(b"k" * 32, clock=clock)
    session = new_session()
    issued, signature = guard.issue(session).split(".")
    assert not guard.check(session, f"{int(issued) + 10}.{signature}")
    assert not guard.check(session, f"-{issued}.{signature}")
    clock.t += 120
    from_the_future = guard.issue(session)
    clock.t -= 120
    assert not guard.check(session, from_the_future)


@given(st.text(max_size=200), st.text(max_size=200))
def test_csrf_check_never_raises(session, token):
    assert CsrfGuard(b"k" * 32).check(session, token) in (True, False)


def test_session_shape():
    assert valid_session(new_session())
    assert not valid_session("short")
    assert not valid_session("x" * 42 + ";")


# --- throttle -----------------------------------------------------------------------


def test_throttle_locks_after_max_failures_until_the_oldest_leaves_the_window():
    clock = Ticker(100.0)
    throttle = Throttle(3, 60, clock=clock)
    keys = keys_for(mac="02:00:00:00:00:01", ip="10.0.0.2", login="Ada@Example.com")
    for _ in range(2):
        throttle.failed(keys)
        clock.t += 10
    assert throttle.retry_after(keys) == 0
    throttle.failed(keys)
    assert throttle.retry_after(keys) == pytest.approx(40)  # the first failure was 20 s ago
    # Each key counts on its own.
    # The login alone (a device with no failures) is not locked: see the next test.
    assert throttle.retry_after(keys_for(mac=None, ip=None, login="ada@example.com ")) == 0
    assert throttle.retry_after(keys_for(mac="02:00:00:00:00:09", ip="10.0.0.9", login="b")) == 0
    clock.t += 40
    assert throttle.retry_after(keys) == 0


def test_a_login_under_attack_slows_failed_devices_but_not_a_clean_one():
    """OWASP account lockout: another device's failures must not keep a member out."""
    throttle = Throttle(5, 900, clock=Ticker(100.0))
    attacker = keys_for(mac="02:00:00:00:00:66", ip="10.0.0.66", login="ada@example.com")
    for _ in range(5):
        throttle.failed(attacker)
    assert throttle.retry_after(attacker) == pytest.approx(900)
    member = keys_for(mac="02:00:00:00:00:01", ip="10.0.0.1", login="Ada@Example.com")
    assert throttle.retry_after(member) == 0
    # A second attacker device that failed once (for any login) meets the login's lock.
    other = keys_for(mac="02:00:00:00:00:67", ip="10.0.0.67", login="ada@example.com")
    throttle.failed(keys_for(mac="02:00:00:00:00:67", ip="10.0.0.67", login="bob"))
    assert throttle.retry_after(other) == pytest.approx(900)
    # Fewer than max_failures for the login: a failed device is not locked by it.
    throttle.clear(["login:ada@example.com"])
    assert throttle.retry_after(other) == 0


def test_throttle_clear_and_bounded_memory():
    clock = Ticker(100.0)
    throttle = Throttle(1, 60, max_keys=100, clock=clock)
    throttle.failed(["login:a"])
    throttle.clear(["login:a"])
    assert throttle.retry_after(["login:a"]) == 0
    for i in range(1000):
        throttle.failed([f"ip:{i}"])
    assert len(throttle) == 100
    assert throttle.retry_after(["ip:999"]) > 0  # the newest are kept
    clock.t += 61
    assert throttle.retry_after(["ip:999"]) == 0


# --- neighbours ---------------------------------------------------------------------

PROC_ARP = b"""IP address       HW type     Flags       HW address            Mask     Device
10.77.1.11       0x1         0x2         02:77:01:00:00:01     *        lan0
10.77.1.12       0x1         0x0         00:00:00:00:00:00     *        lan0
10.78.1.2        0x1         0x2         AA:BB:CC:DD:EE:FF     *        wan0
garbage line
10.77.1.13       0x1         0xZZ        02:77:01:00:00:03     *        lan0
"""


def test_proc_arp():
    found = parse_proc_arp(PROC_ARP)
    assert [(n.ip, n.mac, n.device) for n in found] == [
        ("10.77.1.11", "02:77:01:00:00:01", "lan0"),
        ("10.78.1.2", "aa:bb:cc:dd:ee:ff", "wan0"),
    ]


IP_NEIGH = json.dumps(
    [
        {"dst": "fd77:1::11", "dev": "lan0", "lladdr": "02:77:01:00:00:01", "state": ["STALE"]},
        {"dst": "fe80::1", "dev": "lan0", "lladdr": "02:77:01:00:00:02", "state": ["REACHABLE"]},
        {"dst": "fd77:1::13", "dev": "lan0", "state": ["FAILED"]},
        {"dst": "fd77:1::14", "dev": "lan0", "lladdr": "02:77:01:00:00:04", "state": ["FAILED"]},
        "junk",
    ]
).encode()


def test_ip_neigh_json():
    found = parse_ip_neigh(IP_NEIGH, "lan0")
    assert [(n.ip, n.mac) for n in found] == [
        ("fd77:1::11", "02:77:01:00:00:01"),
        ("fe80::1", "02:77:01:00:00:02"),
    ]


@given(st.binary(max_size=2000))
def test_neighbour_parsers_never_raise(data):
    assert isinstance(parse_proc_arp(data), list)
    assert isinstance(parse_ip_neigh(data, "lan0"), list)


def test_canonical_forms():
    assert canonical_ip("::ffff:10.0.0.2") == "10.0.0.2"
    assert canonical_ip("fe80::1%lan0") == "fe80::1"
    assert canonical_ip("FD00::0001") == "fd00::1"
    assert canonical_ip("nope") is None
    assert canonical_mac("AA-BB-CC-DD-EE-FF") == "aa:bb:cc:dd:ee:ff"
    assert canonical_mac("00:00:00:00:00:00") is None
    assert canonical_mac("aa:bb:cc:dd:ee") is None


# --- nftables -------------------------------------------------------------------------


def test_ruleset_renders_an_atomic_replacement_with_elements():
    script = Ruleset("checkin_portal", "wlan0", 8080).render(
        [("02:00:00:00:00:01", 99.2), ("02:00:00:00:00:02", 0.1)]
    )
    lines = script.splitlines()
    # Create-if-missing, delete, define: one transaction replaces whatever was there.
    assert lines[:3] == [
        "table inet checkin_portal {}",
        "delete table inet checkin_portal",
        "table inet checkin_portal {",
    ]
    assert "02:00:00:00:00:01 timeout 100s, 02:00:00:00:00:02 timeout 1s" in script
    assert 'iifname "wlan0" ether saddr != @authorised tcp dport 80 redirect to :8080' in script
    assert "tcp dport { 53, 8080 } accept" in script
    assert "meta l4proto ipv6-icmp accept" in script
    assert "reject with icmpx admin-prohibited" in script


def test_allow_renews_and_revoke_is_idempotent():
    rules = Ruleset("t", "lan0", 8080)
    assert rules.allow_script("02:00:00:00:00:01", 30.5).splitlines() == [
        "add element inet t authorised { 02:00:00:00:00:01 }",
        "delete element inet t authorised { 02:00:00:00:00:01 }",
        "add element inet t authorised { 02:00:00:00:00:01 timeout 31s }",
    ]
    assert rules.revoke_script("02:00:00:00:00:01").splitlines() == [
        "add element inet t authorised { 02:00:00:00:00:01 }",
        "delete element inet t authorised { 02:00:00:00:00:01 }",
    ]


def test_parse_set():
    data = json.dumps(
        {
            "nftables": [
                {"metainfo": {}},
                {
                    "set": {
                        "elem": [
                            {"elem": {"val": "02:00:00:00:00:01", "timeout": 30, "expires": 29}},
                            "02:00:00:00:00:02",
                        ]
                    }
                },
            ]
        }
    ).encode()
    assert parse_set(data) == {"02:00:00:00:00:01": 29.0, "02:00:00:00:00:02": math.inf}


# --- sign-in refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "outcome"),
    [
        ({"login": "Login or password incorrect."}, SignInOutcome.WRONG_PASSWORD),
        ({"base": "No time passes left."}, SignInOutcome.NO_TIME_PASSES),
        ({"membership": "Membership not confirmed yet."}, SignInOutcome.NOT_CONFIRMED),
        ({"base": "Something else."}, SignInOutcome.REFUSED),
    ],
)
def test_refusals_are_classified(errors, outcome):
    reason = "; ".join(errors.values())
    assert classify(Refused(reason, errors)) is outcome
    assert outcome.counts_as_failure


def test_our_own_trouble_does_not_count_against_a_member():
    for outcome in (
        SignInOutcome.UNAVAILABLE,
        SignInOutcome.MISCONFIGURED,
        SignInOutcome.SIGNED_IN,
    ):
        assert not outcome.counts_as_failure


# --- config -----------------------------------------------------------------------------


def _config(**portal: object) -> dict[str, object]:
    return {
        "gateway": {"state_dir": "/tmp/x"},
        "cobot": {"base_url": "https://co-up.cobot.me"},
        "portal": {"space_name": "Co-Up", "interface": "wlan0", **portal},
    }


def test_portal_section_defaults():
    cfg = parse_config(_config(), "gw.toml").portal
    assert cfg is not None
    assert cfg.enabled and cfg.firewall
    assert (cfg.port, cfg.table, cfg.language) == (8080, "checkin_portal", "auto")
    assert parse_config({k: v for k, v in _config().items() if k != "portal"}, "x").portal is None


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("interface", 'lan0" accept', "portal.interface: expected a network interface name"),
        ("interface", "a" * 16, "portal.interface"),
        ("table", "t; flush ruleset", "portal.table: expected an nftables name"),
        ("url", "javascript:alert(1)", "portal.url: expected an http(s) URL"),
        ("url", "http://portal.lan/?next=x", "portal.url: expected a plain URL"),
        ("lan_subnets", ["10.0.0.0/33"], "portal.lan_subnets[0]"),
        ("listen", ["portal.lan"], "portal.listen[0]: expected an IP address"),
        ("space_name", " ", "portal.space_name"),
        ("port", 0, "portal.port: must be at least 1"),
        ("language", "fr", "portal.language"),
        ("max_session", 1, "portal.max_session: must be at least 5"),
        ("firewal", True, "portal.firewal: unknown key (did you mean 'firewall'?)"),
    ],
)
def test_portal_config_errors_name_the_key(key, value, words):
    with pytest.raises(ConfigError, match=re.escape(words)) as caught:
        parse_config(_config(**{key: value}), "gw.toml")
    assert str(caught.value).startswith("gw.toml: portal.")


async def test_kernel_neighbours_fall_back_to_ip_when_procfs_is_hidden(tmp_path):
    from gateway.portal.neighbours import KernelNeighbours

    # A stand-in for `ip` that answers like `ip -j -4 neigh show to ... dev lan0`.
    fake_ip = tmp_path / "ip"
    fake_ip.write_text(
        "#!/bin/sh\n"
        'echo \'[{"dst":"10.77.1.11","dev":"lan0","lladdr":"02:77:01:00:00:01",'
        '"state":["REACHABLE"]}]\'\n'
    )
    fake_ip.chmod(0o755)
    table = KernelNeighbours("lan0", ip_command=(str(fake_ip),), proc_arp=tmp_path / "missing")
    assert await table.mac_for("10.77.1.11") == "02:77:01:00:00:01"
    assert await table.addresses_of("02:77:01:00:00:01") == ["10.77.1.11"]
    arp = tmp_path / "arp"
    arp.write_bytes(PROC_ARP)
    table = KernelNeighbours("lan0", ip_command=("false",), proc_arp=arp)
    assert await table.mac_for("::ffff:10.77.1.11") == "02:77:01:00:00:01"
    assert await table.mac_for("10.78.1.2") is None  # another interface's neighbour
    assert await table.mac_for("fd77:1::11") is None  # `ip` failed: no answer, no crash
