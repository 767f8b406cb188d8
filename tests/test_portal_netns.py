"""The portal's firewall with real traffic between network namespaces the test makes.

A client namespace, a gateway namespace running nftables and the portal (a subprocess
inside it, so it binds there and reads that namespace's neighbour table), and an
"internet" namespace with a web server. Everything is removed afterwards, also on
failure; the host's own interfaces and ruleset are never touched.
"""

from __future__ import annotations

import json
import time

import pytest

from gateway.portal.firewall import NftFirewall, Ruleset
from tests.conftest import require
from tests.portal_netns import (
    LAN_IF,
    PORTAL_PORT,
    Network,
    conntrack_count,
    have_tools,
    network,
    nft_set,
    wait_for_line,
    wait_until,
)

pytestmark = pytest.mark.real

DAY_ENDS_IN = 24.0  # seconds: the first sign-in's check-in ends then


@pytest.fixture
def net():
    ok, why = have_tools()
    require(ok, why)
    with network(clients=2) as net:
        yield net


def _act(**action: object) -> str:
    return json.dumps(action)


def _start_internet(net: Network) -> None:
    internet = net.python(
        net.internet, "serve", "--http", "80", "--tcp", "5000", "--udp", "53,5353"
    )
    wait_for_line(internet, "READY")
    # A resolver on the gateway itself, where a DHCP server would point clients.
    dns = net.python(net.gateway, "serve", "--udp", "53")
    wait_for_line(dns, "READY")


def _start_gateway(net: Network, state_dir: str, table: str, **extra: str):
    args = [
        "gateway",
        "--state-dir",
        state_dir,
        "--table",
        table,
        "--interface",
        LAN_IF,
        "--port",
        str(PORTAL_PORT),
    ]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    proc = net.python(net.gateway, *args)
    wait_for_line(proc, "READY")
    return proc


def _outside(net: Network, i: int) -> dict[str, dict[str, object]]:
    """What client ``i`` can reach, by name."""
    results = net.client_run(
        i,
        _act(do="http", url=f"http://{net.internet_ip()}/"),
        _act(do="http", url=f"http://[{net.internet_ip(True)}]/"),
        _act(do="tcp", host=net.internet_ip(), port=5000),
        _act(do="tcp", host=net.internet_ip(True), port=5000),
        _act(do="udp", host=net.internet_ip(), port=5353),
        _act(do="udp", host=net.internet_ip(True), port=5353),
    )
    names = ["http4", "http6", "tcp4", "tcp6", "udp4", "udp6"]
    return dict(zip(names, results, strict=True))


def _assert_captive(net: Network, seen: dict[str, dict[str, object]]) -> None:
    assert seen["http4"]["status"] == 302, seen["http4"]
    assert seen["http4"]["location"] == f"http://{net.gateway_ip()}:{PORTAL_PORT}/"
    assert seen["http6"]["status"] == 302, seen["http6"]
    assert seen["http6"]["location"] == f"http://[{net.gateway_ip(True)}]:{PORTAL_PORT}/"
    # Rejected at once (a reset), not left to time out.
    assert seen["tcp4"] == {**seen["tcp4"], "error": "ConnectionRefusedError"}
    assert seen["tcp6"] == {**seen["tcp6"], "error": "ConnectionRefusedError"}
    assert "reply" not in seen["udp4"]
    assert "reply" not in seen["udp6"]


def _assert_out(seen: dict[str, dict[str, object]]) -> None:
    assert seen["http4"].get("body") == "hello from the internet", seen["http4"]
    assert seen["http6"].get("body") == "hello from the internet", seen["http6"]
    assert seen["tcp4"].get("open") == "tcp ok\n"
    assert seen["tcp6"].get("open") == "tcp ok\n"
    assert seen["udp4"].get("reply") == "echo:ping"
    assert seen["udp6"].get("reply") == "echo:ping"


@pytest.mark.timeout(150)
def test_sign_in_lets_out_expiry_shuts_out_restart_restores(net, tmp_path):
    table = "portal_test"
    state = str(tmp_path / "state")
    _start_internet(net)
    gw = _start_gateway(net, state, table, day_ends_in=str(DAY_ENDS_IN))
    started = time.monotonic()

    # Before sign-in: HTTP (v4 and v6) is redirected to the portal, all else refused...
    seen = _outside(net, 1)
    _assert_captive(net, seen)
    # ...but DNS (to the gateway and beyond) and DHCP work, and so does the OS probe.
    dns = net.client_run(
        1,
        _act(do="udp", host=net.gateway_ip(), port=53),
        _act(do="udp", host=net.internet_ip(), port=53),
        _act(do="udp", host=net.internet_ip(True), port=53),
        _act(
            do="http",
            url=f"http://{net.internet_ip()}/generate_204",
            host="connectivitycheck.gstatic.com",
        ),
    )
    assert [d.get("reply") for d in dns[:3]] == ["echo:ping"] * 3, dns[2]
    assert dns[3]["status"] == 302
    _check_dhcp(net, tmp_path)
    # The redirected connections are tracked (NATed to the portal).
    assert conntrack_count(net, "-s", net.client_ip(1), "-p", "tcp", "--dport", "80") > 0

    # Sign in from client 1: the portal finds its MAC in the real neighbour table.
    signed = _sign_in(net, 1, "ada@example.com", "ada-demo")
    assert signed["status"] == 200 and signed["online"], signed
    assert net.client_mac(1) in nft_set(net, table)
    # Its tracked connections were flushed: the redirected port-80 ones are gone.
    assert conntrack_count(net, "-s", net.client_ip(1), "-p", "tcp", "--dport", "80") == 0
    _assert_out(_outside(net, 1))
    # Client 2 is still captive.
    _assert_captive(net, _outside(net, 2))

    # The check-in ends when the (simulated) space's day ends: client 1 is shut out.
    remaining = DAY_ENDS_IN - (time.monotonic() - started) + 1
    assert remaining > 0, "the steps before expiry took longer than the day lasted"
    time.sleep(remaining)
    wait_until(lambda: net.client_mac(1) not in nft_set(net, table), 10, "the expiry")
    _assert_captive(net, _outside(net, 1))

    # Client 2 signs in (the simulated day has rolled over: a whole day this time).
    signed = _sign_in(net, 2, "grace@example.com", "grace-demo")
    assert signed["online"], signed
    _assert_out(_outside(net, 2))

    # A restart after a reboot: the gateway stops, the kernel forgets its ruleset, and
    # the portal rebuilds the table from SQLite when it starts again.
    output = net.stop(gw)
    assert "STOPPED" in output, output[-2000:]
    net.run(net.gateway, "nft", "delete", "table", "inet", table)
    gw = _start_gateway(net, state, table)
    assert net.client_mac(2) in nft_set(net, table)
    _assert_out(_outside(net, 2))
    _assert_captive(net, _outside(net, 1))
    net.stop(gw)


def _sign_in(net: Network, i: int, login: str, password: str) -> dict[str, object]:
    portal = f"http://{net.gateway_ip()}:{PORTAL_PORT}/"
    return net.client_run(i, _act(do="signin", portal=portal, login=login, password=password))[0]


def _check_dhcp(net: Network, tmp_path) -> None:
    conf = tmp_path / "udhcpd.conf"
    leases = tmp_path / "udhcpd.leases"
    leases.touch()
    conf.write_text(
        f"start 10.77.{net.n}.100\nend 10.77.{net.n}.150\ninterface {LAN_IF}\n"
        f"lease_file {leases}\npidfile {tmp_path / 'udhcpd.pid'}\n"
        f"opt router {net.gateway_ip()}\nopt dns {net.gateway_ip()}\n"
    )
    server = net.spawn(net.gateway, "busybox", "udhcpd", "-f", str(conf))
    try:
        got = net.client_run(1, _act(do="dhcp", interface="c0"))[0]
        assert got["lease"], got["output"]
    finally:
        net.stop(server)


async def test_nft_firewall_elements_timeouts_and_atomic_reinstall(net):
    fw = NftFirewall(
        Ruleset("portal_unit", LAN_IF, PORTAL_PORT),
        nft=("ip", "netns", "exec", net.gateway, "nft"),
        conntrack=("ip", "netns", "exec", net.gateway, "conntrack"),
    )
    await fw.install([("02:00:00:00:00:01", 100.0)])
    assert set(await fw.authorised()) == {"02:00:00:00:00:01"}
    await fw.allow("02:00:00:00:00:02", 30)
    # Allowing again renews the timeout instead of failing or keeping the old one.
    await fw.allow("02:00:00:00:00:01", 5000)
    found = await fw.authorised()
    assert found["02:00:00:00:00:01"] > 4000
    assert 25 < found["02:00:00:00:00:02"] <= 30
    # Revoking an absent element is not an error.
    await fw.revoke("02:00:00:00:00:02")
    await fw.revoke("02:00:00:00:00:02")
    assert set(await fw.authorised()) == {"02:00:00:00:00:01"}
    # An element's timeout really ends it.
    await fw.allow("02:00:00:00:00:03", 1)
    wait_until(lambda: "02:00:00:00:00:03" not in nft_set(net, "portal_unit"), 5, "timeout")
    # Re-installing replaces the whole table, elements included, in one transaction.
    await fw.install([("02:00:00:00:00:04", 60.0)])
    assert set(await fw.authorised()) == {"02:00:00:00:00:04"}
    await fw.forget_connections(["10.77.1.10", "fd77:1::10"])  # nothing tracked: no error
