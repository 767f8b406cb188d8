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
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.setFormatter(RedactingFormatter(logging.BASIC_FORMAT))
    for noisy in ("nfc", "scapy", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
