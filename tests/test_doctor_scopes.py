"""Issue 10 case 5 (the doctor's part) and issue 13 case 7: the doctor checks every scope
the configured features use, derived from the endpoints the client calls, names the
missing one, answers without waiting on a rate limiter, says what it is checking, lists
each door program once and knows a state dir `run` would create. Against the simulated
Cobot server over real HTTP."""

from __future__ import annotations

import ast
import dataclasses
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cobot.endpoints import ENDPOINTS, FEATURES, Scope, features_for, scopes_for
from gateway.cobot.ratelimit import Group, Priority, RateLimiter
from gateway.config.loader import load_config
from gateway.doctor import run_doctor
from gateway.sim import ADMIN_TOKEN, Role, demo_space, run_sim
from gateway.sim import Scope as SimScope
from gateway.sim.booking_routes import BOOKING_ROUTES
from gateway.sim.routes import ROUTES
from gateway.sim.space import SimSpace
from tests.test_doctor import SERVICE, SYNCED, parse_rows, system_for, write_config

REPO = Path(__file__).resolve().parent.parent
ALL = ["checkin", "checkin_tokens", "read_check_ins", "write"]


@dataclasses.dataclass
class Served:
    url: str
    space: SimSpace


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    space = demo_space()
    async with run_sim(space) as url:
        yield Served(url, space)


def token_without(space: SimSpace, *missing: SimScope) -> str:
    scopes = [s for s in SimScope if s not in missing]
    return space.add_access_token(role=Role.ADMIN, scopes=scopes, user="partial").token


async def doctor(
    cfg: Path, token: str, tmp_path: Path, progress: io.StringIO | None = None
) -> tuple[int, str, dict[str, str]]:
    out = io.StringIO()
    code = await run_doctor(
        cfg,
        out,
        env={"COBOT_ACCESS_TOKEN": token},
        system=system_for(tmp_path),
        clock_probes=SYNCED,
        progress=progress,
    )
    return code, out.getvalue(), parse_rows(out.getvalue())


# --- the table ---------------------------------------------------------------------


def test_the_clients_table_agrees_with_the_simulators_reading_of_the_api_pages() -> None:
    sim = {(r.method, r.template): r.scope.value for r in (*ROUTES, *BOOKING_ROUTES)}
    for name, endpoint in ENDPOINTS.items():
        assert sim[(endpoint.method, endpoint.template)] == endpoint.scope.value, name


def _client_calls() -> set[tuple[str, str]]:
    """(file, method) for every call of a CobotClient method in the gateway's code."""
    found = set()
    for path in (REPO / "gateway").rglob("*.py"):
        rel = str(path.relative_to(REPO))
        if rel.startswith(("gateway/cobot/", "gateway/sim/", "gateway/doctor/", "gateway/demo")):
            continue  # the client itself, the simulator, the doctor's probes, the demo's sim
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ENDPOINTS
            ):
                found.add((rel, node.func.attr))
    return found


def test_every_call_the_gateway_makes_is_in_a_feature_the_doctor_checks(tmp_path: Path) -> None:
    calls = _client_calls()
    assert ("gateway/drain.py", "create_work_session") in calls  # the walk sees calls
    # [admin]: the admin page registers and revokes cards (gateway/admin/enrol.py).
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:1", "[admin]\n"))
    checked = {c for f in features_for(cfg) for c in f.calls}
    for rel, method in sorted(calls):
        assert method in checked, f"{rel} calls {method}, which no checked feature lists"
    # Every client method belongs to some feature (the table has no dead rows).
    assert {c for f in FEATURES for c in f.calls} == set(ENDPOINTS)


def test_scopes_follow_the_configuration(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:1"))
    assert [s.value for s in scopes_for(cfg)] == ALL
    no_backdating = dataclasses.replace(
        cfg, queue=dataclasses.replace(cfg.queue, replay_with_valid_from=False)
    )
    assert Scope.WRITE not in scopes_for(no_backdating)


# --- the doctor against the simulator ------------------------------------------------


@pytest.mark.parametrize("missing", [SimScope.WRITE, SimScope.READ_CHECK_INS])
async def test_the_missing_scope_is_named(
    served: Served, tmp_path: Path, missing: SimScope
) -> None:
    token = token_without(served.space, missing)
    code, text, rows = await doctor(write_config(tmp_path, served.url), token, tmp_path)
    assert code == 1
    for scope in ALL:
        status = "FIX" if scope == missing.value else "ok"
        assert rows[f"scope {scope}"].startswith(status), text
    assert rows[f"scope {missing.value}"].startswith(
        f"FIX the token lacks the scope {missing.value}; the gateway needs it for"
    )
    assert f"scopes {' '.join(ALL)}" in " ".join(text.split())
    # The probes changed nothing at Cobot.
    assert not served.space.check_ins


async def test_no_write_scope_needed_without_backdated_replays(
    served: Served, tmp_path: Path
) -> None:
    token = token_without(served.space, SimScope.WRITE)
    cfg = write_config(tmp_path, served.url, "[queue]\nreplay_with_valid_from = false\n")
    code, text, rows = await doctor(cfg, token, tmp_path)
    assert code == 0, text
    assert "scope write" not in rows
    assert not any((r.template or "").endswith("/work_sessions") for r in served.space.requests)


async def test_the_fix_for_a_401_names_every_scope_needed(served: Served, tmp_path: Path) -> None:
    code, text, rows = await doctor(write_config(tmp_path, served.url), "wrong", tmp_path)
    assert code == 1
    assert rows["api token valid"].startswith("FIX the API refused the token (401)")
    assert "with the scopes checkin checkin_tokens read_check_ins write" in " ".join(text.split())


async def test_the_doctor_does_not_wait_on_a_rate_limiter(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[tuple[Group, Priority]] = []
    real = RateLimiter.acquire

    async def counting(self: RateLimiter, group: Group, priority: Priority) -> None:
        waits.append((group, priority))
        await real(self, group, priority)

    monkeypatch.setattr(RateLimiter, "acquire", counting)
    progress = io.StringIO()
    code, text, _ = await doctor(
        write_config(tmp_path, served.url), ADMIN_TOKEN, tmp_path, progress
    )
    assert code == 0, text
    assert waits == []
    # One probe per scope, sent together (a paced limiter spaced them 7.5 s apart).
    probes = [r for r in served.space.requests if r.template is not None]
    assert len(probes) == 4
    assert max(r.at for r in probes) - min(r.at for r in probes) < 1.0
    assert progress.getvalue().splitlines() == [
        "checking the config...",
        "checking the service, state dir, readers and doors...",
        f"checking the Cobot API at {served.url} and the token's scopes...",
        "checking the clock...",
    ]


async def test_a_door_program_is_listed_once(served: Served, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, served.url)
    text = cfg.read_text().replace(
        'command = ["true"]\n', 'command = ["true"]\nfeedback_command = ["true", "beep"]\n'
    )
    cfg.write_text(text)
    _, out, _ = await doctor(cfg, ADMIN_TOKEN, tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("door front")]
    assert len(lines) == 1, out
    assert "command and feedback_command:" in lines[0]
    cfg.write_text(text.replace('["true", "beep"]', '["/nonexistent/beep"]'))
    _, out, _ = await doctor(cfg, ADMIN_TOKEN, tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("door front")]
    assert len(lines) == 2, out
    assert "FIX      feedback_command: /nonexistent/beep: not found" in out


async def test_a_state_dir_run_would_create_is_fine(served: Served, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, served.url)
    state = tmp_path / "state"
    cfg.write_text(cfg.read_text().replace(f'"{state}"', f'"{state}/gateway/new"'))
    code, text, rows = await doctor(cfg, ADMIN_TOKEN, tmp_path)
    assert code == 0, text
    assert rows["state dir"] == (
        f"ok {state}/gateway/new: not there yet; `checkin-gateway run` creates it in {state}"
    )
    os.chown(state, 0, 0)
    state.chmod(0o755)  # the service user may not create anything in it
    code, text, rows = await doctor(cfg, ADMIN_TOKEN, tmp_path)
    assert code == 1
    assert rows["state dir"] == (
        f"FIX {state}/gateway/new does not exist, and {SERVICE.name} may not create it in {state}"
    )


async def test_a_web_server_that_is_not_cobot_is_not_all_fine(tmp_path: Path) -> None:
    """A wrong base_url whose server answers 404 pages to everything: before, every
    probe's 404 read as "allowed" and the doctor said all fine."""
    from aiohttp import web

    async def not_found(_request: web.Request) -> web.Response:
        return web.Response(status=404, text="<html>Not Found</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        code, text, rows = await doctor(write_config(tmp_path, url), ADMIN_TOKEN, tmp_path)
    finally:
        await runner.cleanup()
    assert code == 1
    assert rows["api"].startswith(f"FIX {url} answered, but not as Cobot does"), text
    assert "scope checkin" not in rows
