"""connectors.ratelimit on a fake clock: never more than N request starts in any window."""

from __future__ import annotations

import random
import threading
import time

import pytest

from connectors.ratelimit import CompositeLimiter, SlidingWindowLimiter, with_margin


class FakeClock:
    """Monotonic seconds that move only when someone sleeps (or a test advances them)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def max_in_window(starts: list[float], window: float) -> int:
    """The most starts in any half-open window [t, t + window)."""
    starts = sorted(starts)
    return max((sum(1 for other in starts[i:] if other < start + window) for i, start in enumerate(starts)),
               default=0)


def test_margin() -> None:
    assert [with_margin(n) for n in (190, 100, 250, 20, 5, 1)] == [171, 90, 225, 18, 4, 1]


def test_a_burst_waits_for_the_oldest_start_to_leave_the_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 10, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(7):
        limiter.acquire()
        starts.append(clock.now)
    assert starts == [1000.0] * 3 + [1010.0] * 3 + [1020.0]
    assert limiter.waited == pytest.approx(20.0)


@pytest.mark.parametrize("seed", range(5))
def test_never_more_than_n_in_any_window(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, 2.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(200):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.1, 0.5, 3.0])  # bursts and pauses
        limiter.acquire()
        starts.append(clock.now)
    assert max_in_window(starts, 2.0) == 5
    quiet = SlidingWindowLimiter(5, 2.0, clock=clock, sleep=clock.sleep)
    clock.sleeps.clear()
    for _ in range(5):  # room in the window: no wait at all
        assert quiet.acquire() == 0.0
    assert not clock.sleeps


def test_composite_keeps_every_limit() -> None:
    clock = FakeClock()
    overall = SlidingWindowLimiter(19, 10, clock=clock, sleep=clock.sleep)
    search = CompositeLimiter([overall, SlidingWindowLimiter(4, 1, clock=clock, sleep=clock.sleep)])
    rng = random.Random(3)
    all_starts, search_starts = [], []
    for _ in range(300):
        clock.now += rng.choice([0.0, 0.0, 0.05, 0.3])
        if rng.random() < 0.5:
            search.acquire()
            search_starts.append(clock.now)
        else:
            overall.acquire()
        all_starts.append(clock.now)
    assert max_in_window(all_starts, 10) == 19
    assert max_in_window(search_starts, 1) == 4
    assert overall.in_window() <= 19


def test_composite_records_all_windows_at_the_moment_of_sending() -> None:
    """A slot free in one window is not taken while another window makes the request wait."""
    clock = FakeClock()
    fast = SlidingWindowLimiter(1, 1, clock=clock, sleep=clock.sleep)
    slow = SlidingWindowLimiter(10, 100, clock=clock, sleep=clock.sleep)
    both = CompositeLimiter([slow, fast])
    both.acquire()
    both.acquire()  # waits 1 s for `fast`; `slow` records the start after the wait
    assert list(slow._starts) == [1000.0, 1001.0]


def test_observed_server_usage_slows_down_early() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, 10, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.observe_used(9)  # another client used 8 more of the server's window
    assert limiter.in_window() == 9
    limiter.acquire()
    assert limiter.acquire() == pytest.approx(10.0)
    assert limiter.in_window() == 1  # the window slid past the first ten
    limiter.observe_used(1)  # no more than we know of: nothing changes
    assert limiter.in_window() == 1


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 1)
    with pytest.raises(ValueError):
        SlidingWindowLimiter(1, 0)
    with pytest.raises(ValueError):
        CompositeLimiter([])


def test_threads_share_one_budget() -> None:
    """Real threads and the real clock: the starts each limiter records never exceed its limits."""
    overall = SlidingWindowLimiter(12, 0.3)
    search = CompositeLimiter([overall, SlidingWindowLimiter(3, 0.1)])
    starts: dict[str, list[float]] = {"all": [], "search": []}
    for name, limiter in (("all", overall), ("search", search.limiters[1])):
        original = limiter.record

        def record(now: float, original=original, name=name) -> None:  # type: ignore[no-untyped-def]
            starts[name].append(now)  # called with the limiter's lock held: exact starts
            original(now)

        limiter.record = record  # type: ignore[method-assign]

    def worker(index: int) -> None:
        for call in range(6):
            (search if (index + call) % 2 else overall).acquire()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(6)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(starts["all"]) == 36 and len(starts["search"]) == 18
    assert max_in_window(starts["all"], 0.3) <= 12
    assert max_in_window(starts["search"], 0.1) <= 3
    assert time.monotonic() - began < 10
