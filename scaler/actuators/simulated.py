"""Replay's workload: replicas that take a start-up delay to become ready.

Added replicas are ready ``startup_delay`` seconds after the tick that added them and
count for ticks at or after that time. Removals are immediate and take the replicas that
would be ready latest first — not-yet-ready before ready, newest first — which is the
ReplicaSet controller's own victim order. Every replica's life is kept so a report can
integrate ready capacity second by second.
"""

from __future__ import annotations

from bisect import bisect_right

# Each simulated replica is a Python float; beyond this a replay would exhaust memory.
MAX_REPLICAS = 100_000


class TooManyReplicas(ValueError):
    pass


class SimulatedWorkload:
    def __init__(self, replicas: int, startup_delay: float = 0.0) -> None:
        if startup_delay < 0:
            raise ValueError(f"startup delay must be >= 0, got {startup_delay}")
        self.startup_delay = float(startup_delay)
        # Ready times, ascending (replicas are added in time order with one delay), so the
        # newest replica is always last.
        self._ready_at: list[float] = [float("-inf")] * replicas
        self.lifetimes: list[tuple[float, float]] = []   # (ready_at, removed_at) of removed

    @property
    def replicas(self) -> int:
        return len(self._ready_at)

    def ready(self, now: float) -> int:
        return bisect_right(self._ready_at, now)

    def all_ready(self, now: float) -> bool:
        return not self._ready_at or self._ready_at[-1] <= now

    def scale(self, now: float, replicas: int) -> None:
        if replicas > MAX_REPLICAS:
            raise TooManyReplicas(
                f"at {now:.0f} the policy asks for {replicas:,} replicas; replay simulates at "
                f"most {MAX_REPLICAS:,} (is the recording's unit the policy's? e.g. a "
                "per-second rate against a per-replica target in the same unit)")
        ready_at = self._ready_at
        while len(ready_at) < replicas:
            ready_at.append(now + self.startup_delay)
        while len(ready_at) > replicas:
            self.lifetimes.append((ready_at.pop(), now))

    def all_lifetimes(self, end: float) -> list[tuple[float, float]]:
        """Every replica's (ready_at, removed_at), those still running removed at ``end``."""
        return self.lifetimes + [(r, end) for r in self._ready_at]
