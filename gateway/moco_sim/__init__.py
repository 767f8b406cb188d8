"""A simulated MOCO server (presences) for tests, the demo and benchmarks.

``async with run_moco_sim(space) as url:`` serves ``/api/v1/users/presences...`` on
loopback; the test keeps the ``MocoSpace`` (presences, clock, keys, faults, rate-limit
statistics) and reads or changes it while the server runs.
"""

from gateway.moco_sim.server import make_moco_app, run_moco_sim
from gateway.moco_sim.space import ACCOUNT_KEY, MocoSpace, SimPresence, SimUser, demo_moco

__all__ = [
    "ACCOUNT_KEY",
    "MocoSpace",
    "SimPresence",
    "SimUser",
    "demo_moco",
    "make_moco_app",
    "run_moco_sim",
]
