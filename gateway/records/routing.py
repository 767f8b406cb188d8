"""Which record backends a reader's taps go to, and which rule judges them.

A reader's ``record`` setting (``["cobot"]`` by default, ``["moco"]`` or both) routes its
admitted taps: the decider holds a record in each named backend (decide.py). A reader
recording to MOCO judges staff cards itself first (rules/staff.py), falling back to the
door's Cobot rule only when it records to Cobot too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config.model import Config
from gateway.portal.decision import READER as PORTAL_READER
from gateway.records.base import RecordBackend
from gateway.rules.base import DoorRule

if TYPE_CHECKING:
    from gateway.moco.service import MocoService
    from gateway.portal.service import PortalService

DEFAULT = ("cobot",)


def reader_backends(
    cfg: Config, cobot: RecordBackend, moco: MocoService | None, portal: PortalService | None
) -> dict[str, list[RecordBackend]]:
    """Readers whose ``record`` is not just Cobot: their backends (a missing MOCO skipped);
    the portal's sign-ins (reader ``portal``) record to the portal's held check-ins."""
    by_name: dict[str, RecordBackend | None] = {
        "cobot": cobot,
        "moco": moco.records if moco is not None else None,
    }
    out = {
        reader.name: [b for n in reader.record if (b := by_name[n]) is not None]
        for reader in cfg.readers
        if reader.record != DEFAULT
    }
    if portal is not None:
        out[PORTAL_READER] = [portal.check_ins]
    return out


def reader_rule(
    cfg: Config, reader: str, moco: MocoService | None, door_rule: DoorRule
) -> DoorRule | None:
    """The rule for ``reader`` when it differs from its door's (``door_rule``), else None."""
    record = next((c.record for c in cfg.readers if c.name == reader), DEFAULT)
    if moco is None or "moco" not in record:
        return None
    return moco.rule(door_rule if "cobot" in record else None)
