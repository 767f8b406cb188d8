"""The MAC reader: a registered device appearing on the LAN is a check-in tap.

Three layers, as for the serial readers: ``sniff`` (socket -> sightings), ``presence``
(sightings -> arrivals and departures, over time), and this module, which turns those
into taps: ``Direction.IN`` with the device's registered token when a member arrives
and the gateway's ``Attendance`` (``ctx.attendance``) does not have them checked in,
checked out or refused today; ``Direction.OUT`` when their last device has left while
they are checked in (with ``checkout_on_departure``).

Failure modes: without CAP_NET_RAW ``run`` raises ``ReaderError`` at once (state
FAILED) and names the systemd setting that grants it; an interface that does not exist
yet (Wi-Fi still coming up at boot) or goes away is retried with capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from dataclasses import dataclass

import structlog

from gateway.config.model import MacReaderConfig
from gateway.errors import ReaderError, StorageError
from gateway.model import Direction
from gateway.readers.base import ReaderContext, ReaderState, TapSink, make_tap
from gateway.readers.link import (
    LOST,
    PERMISSION,
    LinkFault,
    LinkPolicy,
    LinkSupervisor,
    Sleep,
)
from gateway.readers.link import Clock as LinkClock
from gateway.readers.mac import sniff
from gateway.readers.mac.confirm import ArpConfirmer, LinkOpener
from gateway.readers.mac.packets import DeviceSighting
from gateway.readers.mac.presence import Change, Clock, DevicePresence, PresenceEvent
from gateway.readers.mac.store import PresenceStore, presence_path

log = structlog.get_logger(__name__)

# A socket that lived 30 s resets the backoff. Without CAP_NET_RAW it fails at the first
# attempt: a capability does not appear by itself, unlike a tty's group after plug-in.
LINK_POLICY = LinkPolicy(first_delay=1.0, cap=30.0, stable_after=30.0, permission_attempts=1)
# How often departures are looked for and the table is saved; a departure is noticed
# at most this long after ``away_after``.
SWEEP_INTERVAL = 10.0

_PERMISSION_HINT = (
    "opening a raw packet socket needs the CAP_NET_RAW capability; in the systemd unit's "
    "[Service] section set AmbientCapabilities=CAP_NET_RAW and include CAP_NET_RAW in "
    "CapabilityBoundingSet= (or run as root). The other readers keep running."
)


@dataclass(frozen=True, slots=True)
class MacReaderStats:
    """For status output. Counters run since the reader was made, across reconnects."""

    state: ReaderState
    frames: int  # through the kernel filter (not counting our own)
    outgoing: int  # our own frames (e.g. our DHCP server's replies): skipped
    sightings: int  # frames that showed a client device
    ignored: int  # through the filter but no client (server replies, malformed)
    devices: int  # in the presence table
    present: int  # devices heard within away_after
    members_present: int
    taps_in: int
    taps_out: int
    probes_answered: int  # silent devices that answered the ARP request: no departure
    probes_unanswered: int  # departures confirmed by an unanswered request
    probes_failed: int  # requests that could not be sent (departure on silence alone)
    reconnects: int
    last_error: str | None
    opens: int = 0  # times the socket was opened
    failures: int = 0  # failed opens and losses


class MacReader:
    def __init__(
        self,
        cfg: MacReaderConfig,
        ctx: ReaderContext,
        *,
        clock: Clock | None = None,
        opener: sniff.Opener | None = None,
        policy: LinkPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        link_clock: LinkClock = time.monotonic,
        probe_opener: LinkOpener | None = None,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self._cfg = cfg
        self._log = log.bind(reader=cfg.name)
        self._link = LinkSupervisor(
            policy or LINK_POLICY,
            events="mac_reader",
            clock=link_clock,
            sleep=sleep,
            reader=cfg.name,
            interface=cfg.interface,
        )
        self._confirm = (
            ArpConfirmer(cfg.interface, opener=probe_opener, reader=cfg.name)
            if cfg.confirm_departure
            else None
        )
        self._presence = DevicePresence(
            reader=cfg.name,
            lookup=ctx.lookup,
            attendance=ctx.attendance,
            away_after=cfg.away_after,
            lookup_interval=cfg.debounce,
            ignore=cfg.ignore,
            checkout_on_departure=cfg.checkout_on_departure,
            clock=clock,
            confirm=self._confirm,
        )
        self._store = PresenceStore(presence_path(ctx.state_dir, cfg.name))
        # Looked up at call time so that tests can open the socket in their namespace.
        self._opener = opener
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._sink: TapSink | None = None
        self._counters = sniff.Counters()
        self._taps = {Direction.IN: 0, Direction.OUT: 0}

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._link.state

    @property
    def presence(self) -> DevicePresence:
        return self._presence

    @property
    def stats(self) -> MacReaderStats:
        c = self._counters
        link = self._link.stats
        return MacReaderStats(
            state=link.state,
            frames=c.frames,
            outgoing=c.outgoing,
            sightings=c.sightings,
            ignored=c.ignored,
            devices=len(self._presence),
            present=self._presence.present_count,
            members_present=len(self._presence.present_members()),
            taps_in=self._taps[Direction.IN],
            taps_out=self._taps[Direction.OUT],
            probes_answered=self._presence.asking.answered,
            probes_unanswered=self._presence.asking.unanswered,
            probes_failed=self._confirm.failed if self._confirm else 0,
            reconnects=link.reconnects,
            last_error=link.last_error,
            opens=link.opens,
            failures=link.failures,
        )

    async def run(self, sink: TapSink) -> None:
        if self._sink is not None:
            raise RuntimeError(f"reader {self.name!r} is already running")
        self._sink = sink
        try:
            await self._link.run(self._attempt)
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeper
                self._sweeper = None
            await self._flush()
            await self._store.aclose()
            self._sink = None

    # -- the link ------------------------------------------------------------------

    async def _attempt(self) -> None:
        """One life of the socket: open it, listen until it fails (a ``LinkFault``)."""
        try:
            sock = self._open()
        except LinkFault as fault:
            # The table is loaded after the first attempt, whatever its outcome, but not
            # when the reader cannot work at all: a missing capability fails before
            # touching the state directory. Departures are swept while the link is down.
            if not self._link.is_final(fault):
                await self._start_table()
            raise
        try:
            await self._start_table()
            self._link.up()
            error = await sniff.Sniffer(
                sock, self._on_sighting, self._counters, reader=self.name
            ).run()
        finally:
            sock.close()
        raise _fault(self._cfg.interface, error) from error

    def _open(self) -> socket.socket:
        opener = self._opener or sniff.open_packet_socket
        try:
            return opener(self._cfg.interface)
        except PermissionError as exc:
            raise LinkFault(
                PERMISSION,
                f"mac reader {self.name!r} cannot listen on {self._cfg.interface}: "
                f"{exc.strerror or exc}. {_PERMISSION_HINT}",
            ) from exc
        except sniff.NotEthernetError as exc:
            raise LinkFault("not-ethernet", f"mac reader {self.name!r}: {exc}", fatal=True) from exc
        except OSError as exc:
            raise _fault(self._cfg.interface, exc) from exc

    async def _start_table(self) -> None:
        """Load the presence table and start sweeping for departures, once."""
        if self._sweeper is not None:
            return
        await self._restore()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name=f"mac-sweep-{self.name}")

    # -- sightings and time ----------------------------------------------------------

    def _on_sighting(self, sighting: DeviceSighting) -> None:
        event = self._presence.observe(sighting)
        if event is not None:
            self._emit(event)

    def _emit(self, event: PresenceEvent) -> None:
        assert self._sink is not None
        direction = Direction.IN if event.change is Change.ARRIVED else Direction.OUT
        self._taps[direction] += 1
        self._sink(make_tap(self.name, event.token, direction))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                self.sweep_now()
            except Exception:  # noqa: BLE001 - a bug here must not stop departures for good
                self._log.exception("mac_sweep_failed")
            await self._flush()

    def sweep_now(self) -> None:
        """Look for departures now (the sweep task does this every ``sweep_interval``)."""
        for event in self._presence.sweep():
            self._emit(event)

    # -- the table on disk -------------------------------------------------------------

    async def _restore(self) -> None:
        try:
            devices, stays = await self._store.open()
        except StorageError as exc:
            raise ReaderError(f"mac reader {self.name!r}: {exc}") from exc
        self._presence.restore(devices, stays)
        self._log.info("mac_presence_restored", devices=len(devices), members=len(stays))

    async def _flush(self) -> None:
        changes = self._presence.take_changes()
        try:
            await self._store.save(changes)
        except StorageError as exc:
            # The in-memory table stays right; the rows are tried again at the next flush.
            self._presence.requeue(changes)
            self._log.warning("mac_presence_save_failed", error=str(exc))


def _fault(interface: str, exc: OSError) -> LinkFault:
    if exc.errno == errno.ENODEV:
        return LinkFault("no-interface", f"{interface}: no such interface")
    return LinkFault(LOST, f"{interface}: {exc.strerror or exc}")
