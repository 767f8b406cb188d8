"""A simulated Cobot server for tests, the demo and benchmarks.

``async with run_sim(demo_space()) as url:`` serves the check-in API on loopback; the
test keeps the ``SimSpace`` and reads or changes it (clock, faults, rate-limit
statistics, created check-ins) while the server runs.
"""

from gateway.sim.faults import Faults, SimRequest
from gateway.sim.model import (
    ALREADY_CHECKED_IN,
    LOGIN_INCORRECT,
    AccountKind,
    Plan,
    Role,
    Scope,
    SimAccessToken,
    SimAccount,
    SimCheckIn,
    SimMember,
)
from gateway.sim.ratelimit import SimRateLimiter
from gateway.sim.seed import ADMIN_TOKEN, demo_space
from gateway.sim.server import make_app, run_sim
from gateway.sim.space import CheckInAnswer, RequestRecord, SimSpace

__all__ = [
    "ADMIN_TOKEN",
    "ALREADY_CHECKED_IN",
    "LOGIN_INCORRECT",
    "AccountKind",
    "CheckInAnswer",
    "Faults",
    "Plan",
    "RequestRecord",
    "Role",
    "Scope",
    "SimAccessToken",
    "SimAccount",
    "SimCheckIn",
    "SimMember",
    "SimRateLimiter",
    "SimRequest",
    "SimSpace",
    "demo_space",
    "make_app",
    "run_sim",
]
