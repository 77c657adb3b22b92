"""How long a replica takes to become ready, learnt from what the pipeline sees each tick.

The histogram keep-alive brings a replica back before the request it expects; it must
start that replica one start-up time early. The pipeline sees, every tick, the replicas
before the tick (``current``), the replicas it sets and the ready count — in the daemon
(the scale subresource) and in replay (the simulated workload) alike — so it can time the
start-up itself instead of asking the user for it:

* a tick that finds ``current == 0`` (and no ready replica) and sets replicas > 0 starts
  the clock at ``now`` (a tick that finds 0 and sets 0 stops it: a scale write that did
  not land is retried from the next tick that finds zero replicas, and timed from there);
* the first later tick that sees ``ready > 0`` stops it: the start-up is ``now − start``,
  at most one tick interval longer than the real one (ticks see readiness late, never
  early), so a pre-warm timed by it is ready by the time it is meant to be.

The lead is the longest of the last :data:`KEEP` start-ups: a cold start costs a whole
``coldStartCost`` while an early replica costs only the seconds it is early, so the
estimate errs long; a one-off slow start (an image pulled to a new node) ages out after
:data:`KEEP` more. Until the first start-up is seen, :data:`DEFAULT_LEAD` (60 s; the
histogram keep-alive uses at most half the time to the warm run it pre-warms for, so the
replica goes and comes back and that start-up is timed).

Pure: no I/O, no clock reads; the clock is a value passed in and returned.
"""

from __future__ import annotations

from dataclasses import dataclass

# Before any start-up was seen: generous, as a replica late by a second costs a whole cold
# start and one early by a second costs a second (the keep-alive caps it at half the time
# to the warm run, so that the first pre-warm does get timed).
DEFAULT_LEAD = 60.0
KEEP = 5              # start-ups remembered


@dataclass(frozen=True)
class StartupClock:
    started: float | None = None     # the tick that scaled up from zero, until ready
    seen: tuple[float, ...] = ()     # the last KEEP start-ups, oldest first

    def lead(self, default: float = DEFAULT_LEAD) -> float:
        return max(self.seen) if self.seen else default


def observe_ready(clock: StartupClock, now: float, ready: int | None) -> StartupClock:
    """Stop the clock at the first tick that sees a ready replica."""
    if clock.started is None or not ready:
        return clock
    return StartupClock(None, (clock.seen + (now - clock.started,))[-KEEP:])


def observe_scale(clock: StartupClock, now: float, current: int, replicas: int,
                  ready: int | None = 0) -> StartupClock:
    """Start (or restart) the clock when a tick that found zero replicas sets some. Not
    when that tick still read a ready replica (a status that has not caught up with the
    scale to zero yet): the next tick's ready count would time nothing."""
    if current != 0:
        return clock
    started = now if replicas > 0 and not ready else None
    return clock if started == clock.started else StartupClock(started, clock.seen)
