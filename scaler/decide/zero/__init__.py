"""Scale to zero: from the decider's count, clamped to min/max, to the replicas to set.

Knative's decider never times the way to zero; its reconciler does, and so does this
package. Enters: the clamped count, the current replicas, ``now``. Leaves: the replicas
to set. Each strategy is one module with one class behind :class:`ScaleToZero`:

* ``grace``     — ``keepAlive: fixed``: the last replica goes after the grace period;
* ``histogram`` — ``keepAlive: histogram``: a warm schedule read off the workload's
  idle-time histogram (the histogram of Serverless in the Wild), priced by
  ``coldStartCost``: keep or pre-warm a replica minute by minute where a request is
  likely enough to pay for it.

May import: ``scaler.policy`` and the standard library. Pure: no I/O, no clock reads
(``now`` is an argument), no logging.

A new strategy: a module here with a class that has :class:`ScaleToZero`'s methods, a
``state`` attribute (handed over across policy reloads) and a ``for_policy(policy)``
constructor; its name in :data:`STRATEGIES` and in ``scaler.policy.model.KEEP_ALIVE``
(the values ``spec.scaleToZero.keepAlive`` allows); tests beside tests/test_keepalive.py;
a row in the README's policy table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from scaler.decide.zero.grace import FixedGrace
from scaler.decide.zero.histogram import HistogramKeepAlive
from scaler.policy import Policy


class ScaleToZero(Protocol):
    """One policy's way to zero and back; it holds its own clock (a state value)."""

    def replicas(self, count: int, current: int, now: float, ready: int | None = None) -> int:
        """The replicas to set at ``now`` for the decider's ``count`` (already within
        min/max); ``ready``: the ready replicas the tick saw (a strategy may time
        start-ups with it). Called only on ticks with a valid decision: a tick without
        data changes nothing and leaves the clock alone."""

    def settled(self, now: float, replicas: int) -> bool:
        """True when every later tick with the same count answers ``replicas`` again,
        whatever the time: no clock is running towards a change. Replay's fast engine
        skips ticks only while this holds."""

    def remaining(self, now: float) -> float | None:
        """Seconds until the last replica goes, or None when no clock is running."""


STRATEGIES: dict[str, Callable[[Policy], ScaleToZero]] = {
    "fixed": FixedGrace.for_policy,
    "histogram": HistogramKeepAlive.for_policy,
}


def for_policy(policy: Policy, previous: ScaleToZero | None = None) -> ScaleToZero:
    """The policy's strategy (``spec.scaleToZero.keepAlive``). A ``previous`` strategy of
    the same kind hands over its state — a running clock, a learnt histogram — as the
    windows survive a policy reload."""
    strategy = STRATEGIES[policy.keep_alive](policy)
    if type(strategy) is type(previous):
        strategy.state = previous.state   # type: ignore[attr-defined]
    return strategy
