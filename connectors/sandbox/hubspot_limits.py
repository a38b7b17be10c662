"""HubSpot's API rate limits, enforced by the sandbox when a test asks for them.

Off by default (`app.state.rate_limits is None`: requests are only counted for the informational
X-HubSpot-RateLimit-* headers), so the rest of the suite runs at full speed. A test turns them on
with `sandbox.counters["hubspot"].app.state.rate_limits = HubSpotRateLimits(...)` and reads
`.rejected` / `.accepted` afterwards. Windows slide, as HubSpot's TEN_SECONDLY_ROLLING one does;
`interval_ms` scales the 10-second window down for tests.

Answers follow /work/shared/reference/crm-api-facts.md ("Rate limits"): 429 with
`{"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType":
"RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}` (DAILY for the daily quota) and the headers
X-HubSpot-RateLimit-Max, -Remaining, -Interval-Milliseconds, -Daily, -Daily-Remaining, plus
Retry-After (whole seconds until the window has room; none for the daily quota). The search
limit (about 5 per second per account) answers the same shape with policyName SECONDLY: the
reference does not document its body, so that name is the sandbox's assumption. A refused request
does not take a slot.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SEARCH_PATH_SUFFIX = "/search"


@dataclass
class HubSpotRateLimits:
    """The limits one HubSpot face enforces; None switches a limit off."""

    per_interval: int = 190
    interval_ms: int = 10_000
    search_per_second: int | None = 5
    daily: int | None = None
    clock: Callable[[], float] = time.monotonic
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # policyName -> 429s answered
    _window: deque[float] = field(default_factory=deque, repr=False)
    _searches: deque[float] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def _slide(window: deque[float], now: float, seconds: float) -> None:
        while window and window[0] <= now - seconds:
            window.popleft()

    def check(self, method: str, path: str) -> tuple[tuple[int, dict[str, Any]] | None, dict[str, str]]:
        """Admit or refuse one request: (None or (429, body), the X-HubSpot-RateLimit-* headers)."""
        is_search = method.upper() == "POST" and path.rstrip("/").endswith(SEARCH_PATH_SUFFIX)
        interval = self.interval_ms / 1000
        with self._lock:
            now = self.clock()
            self._slide(self._window, now, interval)
            self._slide(self._searches, now, 1.0)
            refused: tuple[str, float | None] | None = None
            if self.daily is not None and self.accepted >= self.daily:
                refused = ("DAILY", None)
            elif len(self._window) >= self.per_interval:
                refused = ("TEN_SECONDLY_ROLLING", self._window[0] + interval - now)
            elif is_search and self.search_per_second is not None and len(self._searches) >= self.search_per_second:
                refused = ("SECONDLY", self._searches[0] + 1.0 - now)
            if refused is None:
                self.accepted += 1
                self._window.append(now)
                if is_search:
                    self._searches.append(now)
            else:
                self.rejected[refused[0]] += 1
            headers = {"X-HubSpot-RateLimit-Max": str(self.per_interval),
                       "X-HubSpot-RateLimit-Remaining": str(max(self.per_interval - len(self._window), 0)),
                       "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms)}
            if self.daily is not None:
                headers["X-HubSpot-RateLimit-Daily"] = str(self.daily)
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(self.daily - self.accepted, 0))
        if refused is None:
            return None, headers
        policy, wait = refused
        if wait is not None:
            headers["Retry-After"] = str(max(math.ceil(wait), 1))
        body = {"status": "error", "message": f"You have reached your {policy.lower()} limit.",
                "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()), "policyName": policy}
        return (429, body), headers
