"""What has gone wrong with one policy's target, and how calmly the loop takes it.

The loop asks three things of it, and keeps the answers out of its own flow:

* a failure (the target cannot be read or written): say it once, not every tick; for a
  failure that will not fix itself (forbidden, no such object, a kind without a scale
  subresource) warn the target's owners once with a Warning Event and back off — the
  target is tried again after one tick, then two, four... up to a minute — and say so when
  it works again;
* a 409: a few in a row mean someone else keeps changing the target (an HPA, a person with
  kubectl): warn once per storm, naming them when managedFields do;
* success: the storm and the failure are over.

Pure: times are arguments (``clock.monotonic()`` values), nothing is logged here.
"""

from __future__ import annotations

from dataclasses import dataclass

# Failures of one target that retrying every tick cannot fix; the others (timeouts,
# throttling, 5xx, an unreachable API server) end by themselves.
PERMANENT = frozenset({"forbidden", "not_found", "no_scale_subresource", "unknown_kind",
                       "unauthorized"})
MAX_BACKOFF = 60.0
# 409s in a row before the loop calls it a storm: one or two are the normal race with a
# controller's status write; three in a row is a fight.
STORM = 3


@dataclass
class Failure:
    """What the loop should do about a failure it was just told of."""

    first: bool        # a new failure (or a new reason): log it
    permanent: bool    # will not fix itself: backing off
    warn: bool         # tell the target's owners (a Warning Event), once per episode
    retry_in: float    # seconds until the target is tried again (0: next tick)


@dataclass
class TargetFaults:
    error: str | None = None          # reason of the current failure, None when healthy
    retry_at: float | None = None     # monotonic time before which the target is left alone
    backoff: float = 0.0
    warned: bool = False
    conflicts: int = 0                # 409s in a row
    storm_reported: bool = False

    def waiting(self, now: float) -> float:
        """Seconds left before the target may be tried again (0: try it now)."""
        if self.retry_at is None:
            return 0.0
        return max(0.0, self.retry_at - now)

    def failed(self, reason: str, now: float, tick: float) -> Failure:
        first = reason != self.error
        permanent = reason in PERMANENT
        if first:
            self.error, self.warned, self.backoff = reason, False, 0.0
        retry_in = 0.0
        if permanent:
            self.backoff = min(MAX_BACKOFF, max(tick, 2 * self.backoff))
            retry_in = self.backoff
            self.retry_at = now + retry_in
        else:
            self.retry_at = None
        warn = permanent and not self.warned
        self.warned = self.warned or warn
        return Failure(first, permanent, warn, retry_in)

    def succeeded(self) -> str | None:
        """The target answered: the failure (if any, returned) is over."""
        was, self.error = self.error, None
        self.retry_at, self.backoff, self.warned = None, 0.0, False
        return was

    def conflict(self) -> bool:
        """Count a 409; True exactly once per storm, when it reaches STORM in a row."""
        self.conflicts += 1
        if self.conflicts >= STORM and not self.storm_reported:
            self.storm_reported = True
            return True
        return False

    def wrote(self) -> None:
        self.conflicts, self.storm_reported = 0, False
