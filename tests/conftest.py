"""Shared fixtures. Real-component tests call ``require`` instead of ``pytest.skip``:
under CI=true a missing real component is a failure, never a silent skip."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a real component is missing; fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"real component missing under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """A test that runs a command in-process (doctor, status, demo) configures logging
    for the process; put structlog and the stdlib root logger back as they were, so no
    test depends on which ran before it."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in loggers.items():
        logging.getLogger(name).setLevel(lvl)


# --- structure watchers (issue 11): no leaked task or thread, no blocking call -------

LEAK_GRACE = 2.0  # seconds a test's threads get to finish after it ended


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (an unclosed aiosqlite connection, an
    nfcpy worker, an executor that was never shut down), as zeroconf's
    ``verify_threads_ended`` does."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
        # The loop's default executor is shut down with the loop, after fixtures end.
        leaked = [t for t in leaked if not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves an asyncio task pending (a part not stopped, a background
    delivery not awaited): every owner must cancel and await what it started."""
    yield
    current = asyncio.current_task()
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        leaked = [
            t
            for t in asyncio.all_tasks()
            if t is not current and not t.done() and not _aiohttp_broken_connection(t)
        ]
        if not leaked or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left pending: {[t.get_name() for t in leaked]}"


def _aiohttp_broken_connection(task: asyncio.Task[object]) -> bool:
    """aiohttp keeps the handler of a connection that a test broke off on purpose (the
    portal's malformed-request tests) until the loop closes; aiohttp owns it (its server
    was shut down), it is not a task of ours."""
    return "coro=<RequestHandler.start()" in repr(task)


@pytest.fixture
def no_blocking() -> Iterator[None]:
    """Fail any blocking call (file, socket, sleep) that gateway code makes on the event
    loop, as python-zeroconf's tests do with ``blockbuster``. Test code itself may block."""
    from blockbuster import blockbuster_ctx

    # The simulated Cobot server runs in the same loop but stands for another machine;
    # the config is read once, before anything is served (a file's stat, not a device).
    excluded = ["gateway.sim", "gateway.config"]
    with blockbuster_ctx(scanned_modules=["gateway"], excluded_modules=excluded):
        yield
