"""The doctor's findings and the table a person reads."""

from __future__ import annotations

import enum
import textwrap
from dataclasses import dataclass, field
from typing import TextIO


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but worth a look
    FIX = "FIX"  # will not work until fixed: the doctor exits 1
    UNKNOWN = "unknown"  # could not be found out here; no guess is made
    SKIP = "skip"  # not applicable (an earlier failure, or nothing configured)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(slots=True)
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str, fix: str | None = None) -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return not any(c.status is Status.FIX for c in self.checks)

    def render(self, out: TextIO, width: int = 100) -> None:
        name_w = max([len("CHECK"), *(len(c.name) for c in self.checks)])
        status_w = max(len(s.value) for s in Status)
        indent = name_w + status_w + 4
        body = max(40, width - indent)
        print(f"{'CHECK':<{name_w}}  {'STATUS':<{status_w}}  DETAIL", file=out)
        for c in self.checks:
            # Paths and commands are never split: a fix must survive copy and paste.
            lines = _wrap(c.detail, body) or [""]
            if c.fix:
                lines += _wrap(f"fix: {c.fix}", body, "     ")
            print(f"{c.name:<{name_w}}  {c.status.value:<{status_w}}  {lines[0]}", file=out)
            for more in lines[1:]:
                print(" " * indent + more, file=out)
        problems = sum(1 for c in self.checks if c.status is Status.FIX)
        warnings = sum(1 for c in self.checks if c.status in (Status.WARN, Status.UNKNOWN))
        if problems:
            print(f"\n{problems} to fix, {warnings} to look at.", file=out)
        elif warnings:
            print(f"\nNothing to fix; {warnings} to look at.", file=out)
        else:
            print("\nAll fine.", file=out)


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )
