"""Clocks: the only place the daemon reads time or sleeps.

Everything else takes ``now`` as an argument. Production uses :class:`SystemClock`;
tests and replay use :class:`ManualClock`, which moves only when told to.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time in unix seconds (used for query timestamps and decisions)."""

    def monotonic(self) -> float:
        """A clock for measuring intervals and deadlines."""

    def sleep(self, seconds: float, wakeup: threading.Event | None = None) -> bool:
        """Sleep up to ``seconds``; return True early if ``wakeup`` is set."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, wakeup: threading.Event | None = None) -> bool:
        if wakeup is None:
            time.sleep(max(0.0, seconds))
            return False
        return wakeup.wait(max(0.0, seconds))


class ManualClock:
    """A clock that advances only through :meth:`advance` or :meth:`sleep`.

    ``sleep`` advances the clock instead of blocking, so a loop driven by a ManualClock
    runs as fast as the CPU allows while seeing exactly the timestamps it would see live.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        with self._lock:
            self._now = float(when)

    def sleep(self, seconds: float, wakeup: threading.Event | None = None) -> bool:
        if wakeup is not None and wakeup.is_set():
            return True
        self.advance(max(0.0, seconds))
        return False
