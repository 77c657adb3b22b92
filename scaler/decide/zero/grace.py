"""The fixed grace period: the last replica goes once the decider has wanted 0 that long.

Knative leaves this to its reconciler, not its decider; so do we. The rules, for the
decider's count already clamped to min/max replicas:

* a count of 0 starts the scale-to-zero clock at the first tick of the current run of
  zero counts (any non-zero count resets it); the workload keeps ``min(current, 1)``
  replicas until the clock has run for the grace period, then goes to 0. So a zero want
  never scales up from 0, and the last replica goes only after the grace period:
  zeros from 160 s with a 30 s grace keep one replica up to 188 s and none from 190 s.

Pure: ``now`` is an argument and the clock's state is a value passed in and returned;
:class:`FixedGrace` holds that value for one policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaler.policy import Policy


@dataclass(frozen=True)
class ZeroState:
    zero_since: float | None = None   # first tick of the current run of zero counts


def grace_step(state: ZeroState, now: float, count: int, current: int, *,
               grace_period: float) -> tuple[int, ZeroState]:
    """The replicas to set at ``now`` for the clamped decider ``count``, and the new state."""
    if count > 0:
        return count, ZeroState(None)
    since = now if state.zero_since is None else state.zero_since
    if now - since >= grace_period:
        return 0, ZeroState(since)
    return min(current, 1), ZeroState(since)


class FixedGrace:
    """The :class:`~scaler.decide.zero.ScaleToZero` of ``keepAlive: fixed``."""

    def __init__(self, grace_period: float) -> None:
        self.grace_period = grace_period
        self.state = ZeroState()

    @classmethod
    def for_policy(cls, policy: Policy) -> FixedGrace:
        return cls(policy.scale_to_zero_grace_period)

    def replicas(self, count: int, current: int, now: float, ready: int | None = None) -> int:
        replicas, self.state = grace_step(self.state, now, count, current,
                                          grace_period=self.grace_period)
        return replicas

    def settled(self, now: float, replicas: int) -> bool:
        # No clock running (a non-zero count), or it has run out: the last replica is gone.
        return self.state.zero_since is None or replicas == 0

    def remaining(self, now: float) -> float | None:
        if self.state.zero_since is None:
            return None
        return max(0.0, self.grace_period - (now - self.state.zero_since))
