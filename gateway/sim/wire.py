"""The JSON the simulator answers with, shaped exactly as the Cobot docs show it:
ids as strings, times as "2012/10/25 10:05:24 +0000", ``membership`` as {id, name},
``time_pass`` as {id} and only when a pass was used."""

from __future__ import annotations

from typing import Any

from gateway.sim.model import SimCheckIn, SimMember
from gateway.sim.space import CheckInAnswer, SimSpace
from gateway.sim.timefmt import format_time


def membership(member: SimMember) -> dict[str, str]:
    return {"id": member.id, "name": member.name}


def check_in(space: SimSpace, record: SimCheckIn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if record.id:
        body["id"] = record.id
    body["valid_from"] = format_time(record.valid_from)
    body["valid_until"] = format_time(record.valid_until)
    if record.membership_id:
        body["membership"] = membership(space.members[record.membership_id])
    if record.time_pass_id is not None:
        body["time_pass"] = {"id": record.time_pass_id}
    return body


def check_in_answer(space: SimSpace, answer: CheckInAnswer) -> dict[str, Any]:
    # Guests and admins: "no id and membership_id are returned as Cobot does not track
    # check-ins for them"; the stand-in has neither, so check_in() leaves both out.
    body = check_in(space, answer.check_in)
    if answer.warning is not None:
        body["warning"] = answer.warning
    return body


def check_ins(space: SimSpace, records: list[SimCheckIn]) -> list[dict[str, Any]]:
    return [check_in(space, r) for r in records]


def token(value: str, member: SimMember) -> dict[str, Any]:
    return {"token": value, "membership": membership(member)}
