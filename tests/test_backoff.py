"""The reconnect backoff, driven by calling it: nothing here sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.readers.backoff import Backoff


def test_doubles_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0)
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.failures == 9


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 30.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert [backoff.next_delay(), backoff.next_delay()] == [0.5, 1.0]


def test_other_factor() -> None:
    backoff = Backoff(1.0, 10.0, 3.0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 3.0, 9.0, 10.0]


def test_factor_one_is_a_constant_delay() -> None:
    backoff = Backoff(2.0, 2.0, 1.0)
    assert [backoff.next_delay() for _ in range(3)] == [2.0, 2.0, 2.0]


def test_jitter_only_shortens_and_stays_within_its_fraction() -> None:
    draws = iter([0.0, 1.0, 0.5])
    backoff = Backoff(1.0, 8.0, jitter=0.2, rng=lambda: next(draws))
    assert [backoff.next_delay() for _ in range(3)] == pytest.approx([1.0, 1.6, 3.6])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0.0, 1.0), {}, "initial"),
        ((2.0, 1.0), {}, "initial"),
        ((1.0, 2.0, 0.5), {}, "factor"),
        ((1.0, 2.0), {"jitter": 1.5}, "jitter"),
    ],
)
def test_rejects_nonsense(args: tuple[float, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(*args, **kwargs)
