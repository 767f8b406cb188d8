"""Meeting-room doors: Cobot bookings and resources kept in a local snapshot
(``snapshot``), refreshed per room (``refresh``), and the door rules chosen per door
from the config (``doors``). The rule itself is ``gateway.rules.booking``."""
