"""From the decider's count to the replicas to set: min/max clamps and scale to zero.

Knative leaves both to its reconciler, not its decider; so do we. The rules:

* the decider's count is clamped to minReplicas, then to maxReplicas (0 = no maximum);
* a clamped count of 0 starts the scale-to-zero clock at the first tick of the current
  run of zero wants (any non-zero want resets it); the workload keeps ``min(current, 1)``
  replicas until the clock has run for the grace period, then goes to 0. So a zero want
  never scales up from 0, and the last replica goes only after the grace period.

Pure: ``now`` is an argument and the clock's state is a value passed in and returned.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ZeroState:
    zero_since: float | None = None   # first tick of the current run of zero wants


def clamp(count: int, min_replicas: int, max_replicas: int) -> int:
    """Knative's applyBounds: raise to the minimum, then cap at the maximum (0 = none)."""
    if count < min_replicas:
        count = min_replicas
    if max_replicas and count > max_replicas:
        count = max_replicas
    return count


def replicas_to_set(
    want: int,
    current: int,
    now: float,
    state: ZeroState,
    *,
    min_replicas: int,
    max_replicas: int,
    grace_period: float,
) -> tuple[int, ZeroState]:
    """The replica count to apply for the decider's ``want`` at ``now``, and the new state."""
    count = clamp(want, min_replicas, max_replicas)
    if count > 0:
        return count, ZeroState(None)
    since = now if state.zero_since is None else state.zero_since
    if now - since >= grace_period:
        return 0, ZeroState(since)
    return min(current, 1), ZeroState(since)


def grace_remaining(state: ZeroState, now: float, grace_period: float) -> float | None:
    """Seconds left before the last replica goes, or None when the clock is not running."""
    if state.zero_since is None:
        return None
    return max(0.0, grace_period - (now - state.zero_since))
