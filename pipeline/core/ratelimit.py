"""A token bucket that holds one token: calls are spaced at least ``1/rate`` seconds apart, never
bursting, which is what a site's operator reads as a polite client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``acquire()`` blocks until the next call may go out. Thread-safe; the clock is monotonic."""

    def __init__(self, rate: float, *, slack: float = 0.03, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        """``slack``: calls are spaced ``(1 + slack) / rate`` apart, so that the jitter of connection
        set-up and the network cannot make the server see more than ``rate`` (measured: without it
        a local server saw 1.007 x the rate)."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate}")
        self.interval = (1.0 + slack) / rate
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")  # earliest time the next token is available
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        with self._lock:  # reserve a slot, then sleep outside the lock
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        woke = self._clock()
        if woke > slot:  # overslept (a busy machine): the next call keeps its distance from this one
            with self._lock:
                self._next = max(self._next, woke + self.interval)
        return max(woke - now, 0.0)
