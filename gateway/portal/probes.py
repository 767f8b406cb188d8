"""The operating systems' captive-portal probes, as data.

Every OS fetches a known URL over plain HTTP when it joins a network and compares the
answer with what it expects. A device that is not let out yet has its port 80 redirected
to the portal, so the portal sees the probe: answering with a redirect makes the OS open
its sign-in sheet; answering as the real server would (for a device that is let out, on
a connection opened before the firewall changed) makes the sheet close.

Matching is by path, and by host where a path alone is ambiguous (``/redirect``, ``/``).
The expected answers are the ones the OS vendors' servers give; they are constants, so
nothing a client sends ever ends up in an answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Action(enum.Enum):
    FIXED = "fixed"  # answer with the stored status and body
    STATUS_PAGE = "status-page"  # send the browser to the portal's own status page


@dataclass(frozen=True, slots=True)
class Probe:
    system: str
    path: str
    # Lower-case host names; empty: the path alone identifies the probe.
    hosts: frozenset[str] = frozenset()
    action: Action = Action.FIXED
    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default=())


_APPLE_SUCCESS = b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
_APPLE_HOSTS = frozenset(
    {
        "captive.apple.com",
        "www.apple.com",
        "www.appleiphonecell.com",
        "www.ibook.info",
        "www.itools.info",
        "www.airport.us",
        "www.thinkdifferent.us",
    }
)
_FIREFOX_CANONICAL = (
    b'<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>'
)

PROBES: tuple[Probe, ...] = (
    # Android, ChromeOS, Chrome: any 204 means online (several hosts, one path).
    Probe("android", "/generate_204", status=204),
    Probe("android", "/gen_204", status=204),
    # Apple iOS/macOS (Captive Network Assistant).
    Probe("apple", "/hotspot-detect.html", content_type="text/html", body=_APPLE_SUCCESS),
    Probe(
        "apple",
        "/library/test/success.html",
        hosts=_APPLE_HOSTS,
        content_type="text/html",
        body=_APPLE_SUCCESS,
    ),
    # Windows NCSI: the probe, the legacy probe, and the page it opens in a browser.
    Probe("windows", "/connecttest.txt", body=b"Microsoft Connect Test"),
    Probe("windows", "/ncsi.txt", body=b"Microsoft NCSI"),
    Probe(
        "windows",
        "/redirect",
        hosts=frozenset({"www.msftconnecttest.com", "www.msftncsi.com"}),
        action=Action.STATUS_PAGE,
    ),
    # Firefox.
    Probe(
        "firefox", "/success.txt", hosts=frozenset({"detectportal.firefox.com"}), body=b"success\n"
    ),
    Probe(
        "firefox",
        "/canonical.html",
        hosts=frozenset({"detectportal.firefox.com"}),
        content_type="text/html",
        body=_FIREFOX_CANONICAL,
    ),
    # Linux NetworkManager (GNOME, Ubuntu, Fedora).
    Probe(
        "networkmanager",
        "/check_network_status.txt",
        body=b"NetworkManager is online\n",
    ),
    Probe(
        "networkmanager",
        "/",
        hosts=frozenset({"connectivity-check.ubuntu.com"}),
        status=204,
        headers=(("X-NetworkManager-Status", "online"),),
    ),
)

_BY_PATH: dict[str, tuple[Probe, ...]] = {}
for _probe in PROBES:
    _BY_PATH[_probe.path] = (*_BY_PATH.get(_probe.path, ()), _probe)


def normalise_host(host: str | None) -> str:
    """``"Captive.Apple.com.:80"`` -> ``"captive.apple.com"``; IPv6 literals keep brackets."""
    if not host:
        return ""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def find_probe(host: str | None, path: str) -> Probe | None:
    """The probe a request is, or None for any other request."""
    candidates = _BY_PATH.get(path)
    if not candidates:
        return None
    name = normalise_host(host)
    for probe in candidates:
        if not probe.hosts or name in probe.hosts:
            return probe
    return None
