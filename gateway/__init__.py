"""checkin-gateway: members' arrival at a coworking space becomes a Cobot check-in."""

__version__ = "0.1.0"
