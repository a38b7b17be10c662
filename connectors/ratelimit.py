"""Client-side rate limiting shared by the connectors: sliding windows, alone or combined.

`SlidingWindowLimiter(n, seconds)` lets at most n requests start in any `seconds`-long window:
it remembers when each of the last n requests started and, when the window is full, waits until
the oldest one leaves it. `CompositeLimiter` applies several windows at once (e.g. 171 per 10 s
overall AND 4 per second for one endpoint) and takes a slot from all of them at the same moment,
so no window ever records a request earlier than it was really sent.

Both are thread-safe. The clock (monotonic seconds) and the sleep are injectable, so tests run
them on a fake clock without waiting. `CallCount` counts a source's requests for streams that the
flow extracts in parallel threads: in total, and per thread (what one stream's extraction cost).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def with_margin(limit: int, fraction: float = 0.9) -> int:
    """A published limit minus a safety margin: 90% of it, and at least one request below it
    (190 -> 171, 100 -> 90, 250 -> 225, 20 -> 18, 5 -> 4), never less than 1."""
    return max(1, min(int(limit * fraction), limit - 1))


class SlidingWindowLimiter:
    """At most `max_calls` request starts in any window of `window` seconds (thread-safe)."""

    def __init__(self, max_calls: int, window: float, *, name: str = "",
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if max_calls < 1 or window <= 0:
            raise ValueError(f"a rate limit needs max_calls >= 1 and window > 0, got {max_calls}/{window}")
        self.max_calls, self.window, self.name = max_calls, float(window), name
        self.clock, self.sleep = clock, sleep
        self.lock = threading.Lock()
        self._starts: deque[float] = deque()
        self.waited = 0.0  # seconds spent waiting for a slot, for logs and tests

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter({self.max_calls}/{self.window:g}s{', ' + self.name if self.name else ''})"

    # The two steps below run with `lock` held (by acquire or by a CompositeLimiter).
    def delay(self, now: float) -> float:
        """Seconds until a request may start (0: now)."""
        starts = self._starts
        while starts and starts[0] <= now - self.window:
            starts.popleft()
        if len(starts) < self.max_calls:
            return 0.0
        return max(starts[0] + self.window - now, 1e-6)

    def record(self, now: float) -> None:
        self._starts.append(now)

    def in_window(self) -> int:
        """Requests started within the last window."""
        with self.lock:
            self.delay(self.clock())
            return len(self._starts)

    def acquire(self) -> float:
        """Wait for a slot and take it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                now = self.clock()
                pause = self.delay(now)
                if not pause:
                    self.record(now)
                    self.waited += waited
                    return waited
            self.sleep(pause)
            waited += pause

    def observe_used(self, used: int) -> None:
        """The server says `used` requests already count in its window (other clients of the same
        account included): if that is more than this limiter knows of, count the difference as
        started now, so the limiter slows down before the server answers 429."""
        with self.lock:
            now = self.clock()
            self.delay(now)
            for _ in range(min(used, self.max_calls) - len(self._starts)):
                self.record(now)


class CompositeLimiter:
    """Several sliding windows at once: a request starts only when every one has room."""

    def __init__(self, limiters: Sequence[SlidingWindowLimiter], *, clock: Clock | None = None,
                 sleep: Sleep | None = None) -> None:
        if not limiters:
            raise ValueError("a CompositeLimiter needs at least one limiter")
        self.limiters = tuple(limiters)
        self.clock = clock or self.limiters[0].clock
        self.sleep = sleep or self.limiters[0].sleep
        self.waited = 0.0

    def __repr__(self) -> str:
        return f"CompositeLimiter({', '.join(map(repr, self.limiters))})"

    def acquire(self) -> float:
        """Wait until all windows have room, then take a slot in each at the same instant."""
        ordered = sorted(set(self.limiters), key=id)  # one lock order for every composite: no deadlock
        waited = 0.0
        while True:
            with ExitStack() as stack:
                for limiter in ordered:
                    stack.enter_context(limiter.lock)
                now = self.clock()
                pause = max(limiter.delay(now) for limiter in ordered)
                if not pause:
                    for limiter in ordered:
                        limiter.record(now)
                    self.waited += waited
                    return waited
            self.sleep(pause)
            waited += pause


class CallCount:
    """Requests sent, in total and by the calling thread (thread-safe: one source's streams may be
    extracted in parallel threads, and each stream reports the calls it made itself)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._local = threading.local()

    @property
    def count(self) -> int:
        """Every request counted so far, by any thread."""
        return self._total

    def add(self, calls: int = 1) -> None:
        with self._lock:
            self._total += calls
        self._local.count = getattr(self._local, "count", 0) + calls

    def in_this_thread(self) -> int:
        """The requests counted by the calling thread."""
        return getattr(self._local, "count", 0)
