"""Shared set-up for the simulator's tests: a demo space on a frozen business clock,
served on loopback, and a small HTTP caller that returns (status, JSON, headers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from gateway.sim import SimSpace, demo_space, run_sim
from gateway.sim.seed import ADMIN_TOKEN

MORNING = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # a Monday


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]
    raw: bytes


@dataclass
class Sim:
    space: SimSpace
    url: str
    http: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = ADMIN_TOKEN,
        json_body: object = None,
        data: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.url + path, json=json_body, data=data, params=params, headers=sent
        ) as resp:
            raw = await resp.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            return Answer(resp.status, body, resp.headers, raw)


@asynccontextmanager
async def serve(space: SimSpace | None = None) -> AsyncIterator[Sim]:
    if space is None:
        space = demo_space()
        space.set_time(MORNING)
    async with run_sim(space) as url, aiohttp.ClientSession() as http:
        yield Sim(space, url, http)
