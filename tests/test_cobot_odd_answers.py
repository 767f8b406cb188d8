"""Issue 10, case 4: whatever Cobot (or a proxy in front of it) answers, the client
parses it without raising anything but its own ApiErrors: Retry-After read against the
response's Date and capped, garbage replaced by a default and logged once, bodies,
times, ids and headers bounded. Real HTTP against a tiny aiohttp server on loopback
(raw TCP where aiohttp itself would refuse to send the garbage)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import structlog
from aiohttp import web

from gateway.cobot.client import CobotClient, parse_retry_after
from gateway.cobot.errors import (
    ApiError,
    MalformedResponse,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.headers import DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER, http_date, retry_after
from gateway.cobot.ratelimit import Group, RateLimiter

LIMITS = {Group.CHECK_INS: 120, Group.DEFAULT: 60}


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Odd:
    url: str
    answer: Answer


@pytest.fixture
async def odd() -> AsyncIterator[Odd]:
    """A server that answers every request with ``odd.answer`` as given."""
    state = Odd("", Answer())

    async def handle(_request: web.Request) -> web.Response:
        a = state.answer
        return web.Response(status=a.status, body=a.body, headers=a.headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(odd: Odd) -> AsyncIterator[CobotClient]:
    async with CobotClient(odd.url, "test-access-token", RateLimiter(LIMITS), timeout=2.0) as c:
        yield c


def http(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def blocked_for(client: CobotClient, group: Group) -> float:
    assert client.limiter is not None
    return next(s.blocked_for for s in client.limiter.state() if s.group is group)


# --- Retry-After -----------------------------------------------------------------------


async def test_retry_after_date_is_read_against_the_responses_date(
    odd: Odd, client: CobotClient
) -> None:
    # Cobot's clock is 3 h ahead of ours (or ours 3 h behind: a Pi before NTP). It says
    # "retry at its now + 30 s": that is 30 s, not 3 h 30 s.
    server_now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    odd.answer = Answer(
        429,
        b'{"error": "Rate limit exceeded."}',
        {"Retry-After": http(server_now + timedelta(seconds=30)), "Date": http(server_now)},
    )
    with pytest.raises(RateLimited) as caught:
        await client.check_in(token="04A1B2C3D4", preview=True)
    assert caught.value.retry_after == 30.0
    assert 29.0 <= blocked_for(client, Group.CHECK_INS) <= 30.0
    assert blocked_for(client, Group.DEFAULT) == 0.0


async def test_a_huge_retry_after_is_capped(odd: Odd, client: CobotClient) -> None:
    odd.answer = Answer(429, b"{}", {"Retry-After": "99999999999999999999999"})
    with pytest.raises(RateLimited) as caught:
        await client.list_tokens()
    assert caught.value.retry_after == MAX_RETRY_AFTER == 300.0
    assert MAX_RETRY_AFTER - 1 <= blocked_for(client, Group.DEFAULT) <= MAX_RETRY_AFTER


async def test_a_far_future_retry_after_date_is_capped(odd: Odd, client: CobotClient) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    odd.answer = Answer(
        429, b"{}", {"Retry-After": http(now + timedelta(days=400)), "Date": http(now)}
    )
    with pytest.raises(RateLimited) as caught:
        await client.list_tokens()
    assert caught.value.retry_after == MAX_RETRY_AFTER


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",  # SUPERSCRIPT TWO: str.isdigit() is True, float() raises
        "\u0661\u0662",  # ARABIC-INDIC digits: isdigit() True, not delay-seconds
        "-5",
        "1.5",
        "1e9",
        "soon",
        "Sun, 99 Nov 2026 25:61:00 GMT",  # a date that is not one
        "",
    ],
)
async def test_garbage_retry_after_gets_the_default_and_is_logged_once(
    odd: Odd, value: str
) -> None:
    odd.answer = Answer(429, b"{}", {"Retry-After": value.encode("utf-8").decode("latin-1")})
    # No limiter: the three 429s must reach the server, not wait out the first block.
    async with CobotClient(odd.url, "test-access-token", None, timeout=2.0) as client:
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                with pytest.raises(RateLimited) as caught:
                    await client.check_in(token="04A1B2C3D4", preview=True)
                assert caught.value.retry_after == DEFAULT_RETRY_AFTER == 60.0
    odd_answers = [e for e in logs if e["event"] == "cobot_odd_answer"]
    assert [e["log_level"] for e in odd_answers] == ["warning", "debug", "debug"]
    assert odd_answers[0]["using_s"] == 60.0


def test_retry_after_parser_directly() -> None:
    now = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
    assert retry_after("7").seconds == 7.0
    assert retry_after(" 7 ").seconds == 7.0
    assert retry_after("0").seconds == 0.0
    assert retry_after("301").seconds == MAX_RETRY_AFTER
    # Without a usable Date the gateway's clock is the reference (and the cap holds).
    r = retry_after("Sun, 22 Nov 2026 10:00:30 GMT", None, now)
    assert (r.seconds, r.problem is not None) == (30.0, True)
    r = retry_after("Sun, 22 Nov 2026 10:00:30 GMT", "garbage", now)
    assert r.seconds == 30.0
    # With a Date, our clock does not matter at all.
    r = retry_after("Sun, 22 Nov 2026 13:00:30 GMT", "Sun, 22 Nov 2026 13:00:00 GMT", now)
    assert (r.seconds, r.problem) == (30.0, None)
    # In the past: go now.
    assert (
        retry_after("Sun, 22 Nov 2026 12:00:00 GMT", "Sun, 22 Nov 2026 13:00:00 GMT").seconds == 0
    )
    assert parse_retry_after(None) == DEFAULT_RETRY_AFTER
    assert parse_retry_after("\u00b2") == DEFAULT_RETRY_AFTER
    assert http_date("Fri, 31 Dec 9999 23:59:59 -2359") is None  # out of range, no raise
    assert http_date("\udcff") is None


# --- bodies, times, ids -----------------------------------------------------------------


def check_in_body(**changes: object) -> bytes:
    body: dict[str, object] = {
        "id": "479c76a975",
        "valid_from": "2026/11/30 10:05:24 +0000",
        "valid_until": "2026/11/30 23:59:59 +0000",
        "membership": {"id": "fdc00612c086d003fab5d99539153f68", "name": "joe"},
    }
    body.update(changes)
    return json.dumps(body).encode()


async def test_a_well_formed_answer_still_parses(odd: Odd, client: CobotClient) -> None:
    odd.answer = Answer(201, check_in_body())
    result = await client.check_in(token="04A1B2C3D4")
    assert result.check_in.id == "479c76a975"
    assert result.check_in.valid_until == datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # deeper than the stack
        (b"\xff\xfe garbage", "not JSON"),
        (b"", "empty answer"),
        (b"null", "expected an object"),
        (check_in_body(valid_from="0001/01/01 00:00:00 +0100"), "out of range"),
        (check_in_body(valid_until="9999/12/31 23:59:59 -2359"), "out of range"),
        (check_in_body(valid_from="2026/11/30 10:05:24 +0000" + " " * 100), "unreadable time"),
        (check_in_body(valid_from=12), "expected a time string"),
        (check_in_body(id="x" * 10_000), "not a usable id"),
        (check_in_body(id="47\n9c"), "not a usable id"),
        (check_in_body(id=True), "expected a non-empty string"),
        (check_in_body(id=1.5), "expected a non-empty string"),
        (check_in_body(membership={"id": ""}), "membership.id"),
        (check_in_body(membership=[]), "expected an object"),
        (check_in_body(time_pass="abc"), "time_pass"),
    ],
)
async def test_garbage_bodies_are_malformed_responses(
    odd: Odd, client: CobotClient, body: bytes, says: str
) -> None:
    odd.answer = Answer(201, body)
    with pytest.raises(MalformedResponse) as caught:
        await client.check_in(token="04A1B2C3D4")
    assert says in str(caught.value)


async def test_a_token_list_with_one_garbage_entry_is_refused_whole(
    odd: Odd, client: CobotClient
) -> None:
    # Whole: a partial list would remove the missing members' access offline.
    good = {"token": "124d3a8", "membership": {"id": "87e630", "name": "John"}}
    odd.answer = Answer(200, json.dumps([good, {"token": ["x"], "membership": {}}]).encode())
    with pytest.raises(MalformedResponse, match=r"check_in_tokens\[1\]\.token"):
        await client.list_tokens()
    odd.answer = Answer(200, json.dumps({"tokens": [good]}).encode())
    with pytest.raises(MalformedResponse, match="expected a list"):
        await client.list_tokens()
    odd.answer = Answer(200, json.dumps([good]).encode())
    assert [r.token for r in await client.list_tokens()] == ["124d3a8"]


async def test_a_refusal_nested_without_end_is_a_bounded_reason(
    odd: Odd, client: CobotClient
) -> None:
    # json.loads reads 900 levels; flattening them must not recurse without end.
    nested = '{"errors": [' * 900 + '"no"' + "]}" * 900
    odd.answer = Answer(422, ('{"errors": ' + nested + "}").encode())
    with pytest.raises(Refused) as caught:
        await client.check_in(token="04A1B2C3D4")
    assert len(caught.value.reason) <= 500
    odd.answer = Answer(422, b"\x00\xff" * 5000)
    with pytest.raises(Refused) as caught:
        await client.check_in(token="04A1B2C3D4")
    assert len(caught.value.reason) <= 200


@pytest.mark.parametrize(
    ("headers", "body", "scope"),
    [
        (
            {"WWW-Authenticate": 'Bearer realm="cobot", error="insufficient_scope", scope="write"'},
            b"{}",
            "write",
        ),
        ({}, b'{"error": "insufficient_scope", "scope": "read_check_ins"}', "read_check_ins"),
        ({"WWW-Authenticate": 'Bearer scope="a\\"b' + "x" * 5000}, b"{}", None),
        ({"WWW-Authenticate": "garbage,,,=="}, b'{"scope": 12}', None),
        ({}, b"<html>Forbidden</html>", None),
    ],
)
async def test_a_403_names_the_missing_scope_when_cobot_says_it(
    odd: Odd, client: CobotClient, headers: dict[str, str], body: bytes, scope: str | None
) -> None:
    odd.answer = Answer(403, body, headers)
    with pytest.raises(Unauthorized) as caught:
        await client.create_work_session("fdc00612c086d003fab5d99539153f68")
    assert caught.value.status == 403
    assert caught.value.scope == scope


@pytest.mark.parametrize("status", [301, 302, 400, 409, 418])
async def test_statuses_the_api_does_not_list_are_malformed(
    odd: Odd, client: CobotClient, status: int
) -> None:
    odd.answer = Answer(status, b"<html>moved</html>", {"Location": "http://127.0.0.1:1/"})
    with pytest.raises(MalformedResponse, match=f"unexpected HTTP {status}"):
        await client.check_in_status(token="04A1B2C3D4")


# --- bytes aiohttp would never send: a raw TCP server -------------------------------------


@pytest.fixture
async def raw_server() -> AsyncIterator[tuple[str, Callable[[bytes], None]]]:
    reply = [b""]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply[0])
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def set_reply(data: bytes) -> None:
        reply[0] = data

    try:
        yield f"http://127.0.0.1:{port}", set_reply
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 abc Garbage\r\n\r\n",
        b"HTTP/1.1 429 Too Many\r\nRetry-After: \xb2\xff\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
        b"\x00\x01\x02\x03",
    ],
)
async def test_broken_http_is_an_api_error_not_a_crash(
    raw_server: tuple[str, Callable[[bytes], None]], reply: bytes
) -> None:
    url, set_reply = raw_server
    set_reply(reply)
    async with CobotClient(url, "test-access-token", RateLimiter(LIMITS), timeout=2.0) as c:
        with pytest.raises(ApiError) as caught:
            await c.check_in(token="04A1B2C3D4", preview=True)
    if b" 429 " in reply:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == DEFAULT_RETRY_AFTER
    else:
        assert isinstance(caught.value, Unavailable | MalformedResponse)


async def test_a_404_where_the_api_does_not_document_one_is_malformed(
    odd: Odd, client: CobotClient
) -> None:
    # A proxy's or a wrong base_url's 404 on the check-in endpoint is not a final
    # answer about the member (it used to escape the decider as NotFound).
    odd.answer = Answer(404, b"<html>Not Found</html>")
    with pytest.raises(MalformedResponse) as caught:
        await client.check_in(token="04A1B2C3D4", preview=True)
    assert caught.value.status == 404
    with pytest.raises(MalformedResponse):
        await client.create_work_session("fdc00612c086d003fab5d99539153f68")
    # Where 404 is documented it keeps its meaning, if it is Cobot's (JSON) answer...
    with pytest.raises(MalformedResponse, match="not Cobot's answer"):
        await client.check_in_status(token="04A1B2C3D4")
    odd.answer = Answer(404, b'{"error": "not found"}')
    assert await client.check_in_status(token="04A1B2C3D4") is None
    assert await client.check_out("fdc00612c086d003fab5d99539153f68") is None
    assert await client.get_token("04A1B2C3D4") is None


def test_the_limiter_never_blocks_for_ever() -> None:
    from gateway.cobot.ratelimit import MAX_BLOCK

    now = [1000.0]
    limiter = RateLimiter(LIMITS, clock=lambda: now[0])
    limiter.block(Group.DEFAULT, float("inf"))
    limiter.block(Group.CHECK_INS, float("nan"))
    state = {s.group: s.blocked_for for s in limiter.state()}
    assert state == {Group.DEFAULT: MAX_BLOCK, Group.CHECK_INS: MAX_BLOCK}
    assert MAX_BLOCK == MAX_RETRY_AFTER
