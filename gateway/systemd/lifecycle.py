"""Running the daemon under systemd: the watchdog and the status line beside it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.systemd.notify import Notifier

STATUS_INTERVAL = 5.0  # seconds between status refreshes (sent only when changed)


async def run_notified(
    run: Callable[[], Awaitable[None]],
    notifier: Notifier,
    status: Callable[[], str | None],
    *,
    interval: float = STATUS_INTERVAL,
) -> None:
    """Await ``run()`` with the watchdog pinging and ``status()`` published while it
    runs; STOPPING=1 when it ends, however it ends. ``status`` returns None while there
    is nothing to say yet. READY=1 is the caller's: only it knows when it is ready."""

    async def publish() -> None:
        while True:
            text = status()
            if text:
                notifier.status(text)
            await asyncio.sleep(interval)

    watchdog = asyncio.create_task(notifier.watchdog(), name="sd-watchdog")
    publisher = asyncio.create_task(publish(), name="sd-status")
    try:
        await run()
    finally:
        notifier.stopping()
        for task in (watchdog, publisher):
            task.cancel()
        await asyncio.gather(watchdog, publisher, return_exceptions=True)
        notifier.close()
