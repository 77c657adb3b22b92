"""Replay's workload: replicas that take a start-up delay to become ready.

:class:`SimulatedWorkload` is the model replay's engines drive directly, tick by tick;
:class:`SimulatedActuator` puts the same model behind the
:class:`~scaler.actuators.Actuator` protocol, on a clock, so that the daemon's own loop
can run against it.

Added replicas are ready ``startup_delay`` seconds after the tick that added them and
count for ticks at or after that time. Removals are immediate and take the replicas that
would be ready latest first — not-yet-ready before ready, newest first — which is the
ReplicaSet controller's own victim order. Every replica's life is kept so a report can
integrate ready capacity second by second.
"""

from __future__ import annotations

from bisect import bisect_right

from scaler.actuators import Conflict, ScaleStatus
from scaler.clock import Clock
from scaler.policy import ScaleTargetRef

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


class SimulatedActuator:
    """Implements :class:`~scaler.actuators.Actuator` over one simulated workload.

    Time is the clock's: a replica added at ``clock.now()`` is ready ``startup_delay``
    later. Writes carry a resourceVersion like the live actuator's (a stale one is a
    :class:`~scaler.actuators.Conflict`); every scale is kept in ``events``.
    """

    def __init__(self, workload: SimulatedWorkload, clock: Clock) -> None:
        self.workload = workload
        self.clock = clock
        self.version = 1
        self.events: list[tuple[float, int, str]] = []   # (time, replicas, reason)

    def read(self, target: ScaleTargetRef, *, deadline: float | None = None) -> ScaleStatus:
        workload = self.workload
        return ScaleStatus(workload.replicas, workload.ready(self.clock.now()),
                           str(self.version))

    def scale(self, target: ScaleTargetRef, replicas: int, *, resource_version: str,
              reason: str, message: str, deadline: float | None = None) -> bool:
        if resource_version != str(self.version):
            raise Conflict(target)
        now = self.clock.now()
        self.workload.scale(now, replicas)
        self.version += 1
        self.events.append((now, replicas, reason))
        return True

    def warn(self, target: ScaleTargetRef, reason: str, message: str, *,
             deadline: float | None = None) -> bool:
        return False   # a simulated workload has nobody to tell
