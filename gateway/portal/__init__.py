"""The captive portal: the Wi-Fi's sign-in page, which checks a member in and lets the
device out.

A device that joins the Wi-Fi is caught by the firewall (``firewall.py``: its HTTP goes
to the portal, everything but DNS and DHCP is rejected). The operating system's
connectivity probe (``probes.py``) is answered with a redirect, so the sign-in sheet
opens (``app.py``, ``pages.py``, ``i18n.py``); every failure, down to the HTTP
parser's, is the portal's own page (``guard.py``). Login + password + the device's MAC
(``neighbours.py``) go to Cobot as a preview and then a check-in that registers the MAC
as the member's token (``signin.py``); the MAC is let out until the check-in's
``valid_until`` (``service.py``, remembered in ``store.py`` across restarts). Later
visits need no page: the MAC presence reader sees the device and the gateway calls
``PortalService.authorise``.

This package imports nothing heavy at import time: the config loader uses
``settings.py`` and ``PortalService`` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.portal.service import PortalService

__all__ = ["PortalService"]


def __getattr__(name: str) -> Any:
    if name == "PortalService":
        from gateway.portal.service import PortalService

        return PortalService
    raise AttributeError(name)
