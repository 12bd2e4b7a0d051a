from __future__ import annotations

import pytest

from extractor.policy.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("rate", "burst", "steps", "expected"),
    [
        # (advance seconds, wanted) -> granted
        (100, 200, [(0, 500), (1, 500), (0.5, 10)], [200, 100, 10]),
        (1, 1, [(0, 5), (0.5, 1), (0.5, 1)], [1, 0, 1]),
        (10, 5, [(100, 50)], [5]),  # never more than the burst after idling
    ],
)
def test_grant(rate: float, burst: int, steps: list, expected: list[int]) -> None:
    clock = Clock()
    bucket = TokenBucket(rate, burst, clock)
    got = []
    for advance, wanted in steps:
        clock.now += advance
        got.append(bucket.grant(wanted))
    assert got == expected


def test_reserve_spreads_excess_into_the_future() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 200, clock)
    assert bucket.reserve(200) == 0.0
    assert bucket.reserve(100) == pytest.approx(1.0)
    assert bucket.reserve(100) == pytest.approx(2.0)
    clock.now += 2.0
    assert bucket.wait_time(1) == pytest.approx(0.01)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_rejects_bad_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_refund_gives_back_reserved_and_granted_tokens_up_to_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 200, clock)
    assert bucket.reserve(500) == pytest.approx(3.0)
    bucket.refund(500)  # that work failed: as if it had never reserved
    assert bucket.reserve(300) == pytest.approx(1.0)
    bucket.refund(10_000)  # never above the burst
    assert bucket.grant(1000) == 200
    bucket.refund(50)
    assert bucket.grant(1000) == 50
