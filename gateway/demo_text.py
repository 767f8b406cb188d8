"""What the demo says: its help, the offline policy in plain words, how to go real,
the words for each outcome, and the demo space's cards and rooms."""

from __future__ import annotations

from collections.abc import Callable

from gateway.demo_moco import CARD_LINE
from gateway.model import Outcome
from gateway.sim import Plan, SimSpace
from gateway.sim.seed import MEETING_ROOM, PHONE_BOOTH

HELP = """\
Type a card number and press Enter (try the cards above).
  out CARD   check that member out (as an exit reader would)
  room CARD  tap at the Meeting Room's reader (opens for the member who booked it)
  booth CARD tap at the Phone Booth's reader (free: a tap books it for 30 minutes;
             the same card again, a minute or more later, ends the booking)
  5E00000001 the staff card: clocks in, and (a minute later) out, at a simulated MOCO
  offline    the internet goes down: the simulated Cobot stops answering
  online     the internet is back: queued check-ins are replayed
  status     what the gateway knows right now
  help       this text;  quit, Ctrl-D or Ctrl-C to stop
"""

OFFLINE_POLICY = """\
Offline, with offline_policy = "known-tokens" (the default), every card in the local
cache gets in, including members Cobot would refuse online (no time passes left, a
membership not yet confirmed): their check-ins wait in the queue and Cobot may refuse
them later. To keep the door shut for everyone while Cobot does not answer, set
offline_policy = "deny" in [gateway].
"""

CONFIG = "/etc/checkin-gateway/config.toml"

REAL_SPACE = f"""\
To run this against your real space:
  1. copy config/example.toml to {CONFIG} and set
     cobot.base_url = "https://YOUR-SPACE.cobot.me"
  2. get an access token: sudo checkin-gateway login --config {CONFIG}
     (it opens Cobot's sign-in in your browser and stores the token)
     (meeting rooms also need read_resources read_bookings write_bookings)
  3. checkin-gateway check-config --config {CONFIG}
     checkin-gateway run --config {CONFIG}
"""

ROOMS = {"room": ("room-1", MEETING_ROOM, 0), "booth": ("booth", PHONE_BOOTH, 30)}

OUTCOME_WORDS = {
    Outcome.OPENED_CACHED: "already checked in today: opened without asking Cobot",
    Outcome.OPENED_ONLINE: "Cobot's preview said yes",
    Outcome.OPENED_OFFLINE: "offline: the card is in the local cache, so it gets in",
    Outcome.REFUSED: "Cobot's preview said no",
    Outcome.DENIED_OFFLINE: "offline, and the door stays shut",
    Outcome.UNKNOWN_TOKEN: "unknown card",
    Outcome.DOOR_FAILED: "the door could not be driven",
    Outcome.CHECKED_OUT: "check-out sent to Cobot",
    Outcome.CHECK_OUT_QUEUED: "offline: check-out queued until Cobot answers",
    Outcome.OPENED_BOOKING: "their booking of the room holds now",
    Outcome.OPENED_WALK_UP: "the room was free",
    Outcome.WALK_UP_ENDED: "their walk-up booking ended early",
    Outcome.NO_BOOKING: "no booking",
    Outcome.STAFF: "not a member: a staff card, clocked at MOCO",
}


def introduce(say: Callable[[str], None], space: SimSpace, base_url: str) -> None:
    say("checkin-gateway demo")
    say(f"A simulated Cobot space answers at {base_url} (this machine only).")
    say("Cards in the demo space:")
    for line in describe_cards(space):
        say(f"  {line}")
    say(f"  {CARD_LINE}")
    say("")
    say(HELP)
    say(OFFLINE_POLICY)
    say(REAL_SPACE)


def describe_rooms(space: SimSpace) -> list[str]:
    lines = []
    for word, (_, rid, walk_up) in ROOMS.items():
        resource = space.rooms.resource(rid)
        booked = [b for b in space.rooms.bookings.values() if b.resource_id == rid]
        what = ", ".join(
            f"{space.members[b.membership_id].name if b.membership_id else 'blocked'} "
            f"{b.start.astimezone():%H:%M}-{b.end.astimezone():%H:%M}"
            for b in booked
        )
        walk = f", walk-up {walk_up} min" if walk_up else ""
        lines.append(f"'{word} CARD': {resource.name} ({what or 'no bookings today'}{walk})")
    return lines


def describe_cards(space: SimSpace) -> list[str]:
    lines = []
    for token, member in space.list_tokens():
        if member.plan is Plan.TIME_PASSES:
            plan = f"{len(member.time_passes)} time pass(es) left"
        else:
            plan = "unlimited plan"
        if not member.confirmed:
            plan += ", membership not confirmed"
        lines.append(f"{token:<18} {member.name:<20} {plan}")
    return lines
