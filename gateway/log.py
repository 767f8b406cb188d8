"""structlog set-up: JSON when not on a terminal (journald), key=value on a terminal.

Every line leaves through redaction (gateway/redact.py): structlog events after their
traceback is rendered, stdlib records (aiohttp, asyncio, nfcpy, scapy) through the
root handler's formatter.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from gateway.redact import RedactingFormatter, redaction_processor

LogFormat = Literal["auto", "json", "console"]


class _GatewayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler ``configure`` installs (told apart from others by its type)."""


def configure(level: str = "info", fmt: LogFormat = "auto") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redaction_processor,  # after the traceback is text: it may quote a URL
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries we drive log through stdlib logging; keep them quiet unless debugging.
    # Our own handler (not basicConfig, which does nothing when a handler exists), so
    # their lines are always redacted; replaced, not added, when configured again.
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _GatewayHandler)]:
        root.removeHandler(old)
    handler = _GatewayHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(logging.BASIC_FORMAT))
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    for noisy in ("nfc", "scapy", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # aiosqlite's debug lines quote every SQL parameter (the whole token list, MACs, DHCP
    # client ids): never below WARNING, whatever else is raised for debugging.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
