"""Adaptive scale to zero: the hybrid histogram policy of Serverless in the Wild.

Pure: no I/O, no clock reads, no logging. The histogram and the idle clock are values
passed in and returned, as in :mod:`scaler.decide.zero.grace`, which this replaces when a
policy has
``scaleToZero.keepAlive: histogram``.

The histogram (Shahrad et al., USENIX ATC 2020, §4; reference/predictive.md §2.1)
================================================================================
Per workload, a histogram of *idle times* with 1-minute bins over a 4 h range (240 bins);
idle times of 4 h or more are counted as out-of-bounds (OOB), not binned. Here an idle time
is the length of a run of zero wants: from the first tick at which the clamped decider count
is 0 (after a non-zero count) to the first tick at which it is non-zero again. (The decider
wants 0 only once the stable window has emptied, so this is the request gap minus about one
stable window; pre-warm is timed from the same point, so the offset cancels.)

:func:`windows` turns the histogram into two windows, both measured from the start z of an
idle period:

* head = the bin holding the 5th percentile of the in-range idle times, tail = the bin
  holding the 99th (the smallest bin whose cumulative share reaches the percentile);
* pre-warm  = head's lower edge × (1 − 10 %), minus ``lead`` (the workload's start-up time,
  so the replica is ready when the request is expected), or 0 if that is not positive;
* keep-alive = tail's upper edge × (1 + 10 %). Upper edge because every idle time in the
  tail bin, up to its end, must be covered; lower edge for the head for the same reason.
  So all idle times 10 min (bin [10, 11) min) give pre-warm 9 min and keep-alive 12.1 min.

Those are the formulas of the osukhoroslov/dslab reimplementation
(crates/dslab-faas/src/extra/hybrid_histogram.rs: head 0.05, tail 0.99, histogram margin
0.10, ``head × bin × (1 − margin)``, ``(tail + 1) × bin × (1 + margin)``).

The histogram is *representative* — otherwise pre-warm is 0 and keep-alive is
``fallback_grace``, which is exactly the fixed scale-to-zero grace of
:mod:`scaler.decide.zero.grace` —
only when all of these hold (thresholds: ``HistogramPolicy``):

1. at least ``min_idles`` = 10 idle periods were recorded (ours; the summaries of the paper
   we could read give no number, and dslab has no minimum);
2. the OOB share is below ``max_oob_share`` = 0.5 (dslab's ``oob_thr`` 0.5: an OOB share of
   at least 0.5 is its "out of bounds" pattern, for which the paper predicts the next idle
   time with ARIMA; we fall back instead);
3. the coefficient of variation of the 240 bin counts is at least ``min_cv`` = 2.0 (dslab's
   ``cv_thr`` 2.0; below it the idle times are spread too evenly for percentiles to
   predict anything, the paper's "pattern uncertain"). The CV uses the sample standard
   deviation over all bins, as dslab does. All idle times in one bin give CV ≈ 15.5; spread
   evenly over 48 bins, CV = 2.0.

(The paper's own fallback keeps the application alive for the whole 4 h range; the product
requirement here is the policy's fixed grace period.)

The step function
=================
:func:`keepalive_step` is called once per tick with a valid decision, with the decider's count
already clamped to min/max replicas (``count``) and the current replica count; it returns the
replicas to set and the new state. Ticks with an invalid decision (no data) must not call it:
they change nothing and leave the idle clock untouched (design.md, replay semantics §3).

* ``count > 0`` ends any idle period: if that period followed a use (a non-zero count seen
  earlier since the state was created), its length ``now − z`` is recorded into the
  histogram. The result is ``count``.
* ``count == 0`` at the first such tick starts an idle period at z = now and fixes its
  windows from the histogram as it is then (they do not change during the period). Then,
  with elapsed = now − z:

  - elapsed >= keep-alive: 0;
  - pre-warm > 0: 0 while elapsed < pre-warm (the replicas go at once), then
    ``prewarm_replicas`` (:class:`HistogramKeepAlive` passes the policy's initial
    replicas, at least 1) while pre-warm <= elapsed < keep-alive — scaled up with no
    demand, so the next expected request finds a warm replica;
  - pre-warm == 0: ``min(current, 1)`` while elapsed < keep-alive — keep one warm replica
    and never scale up from 0 for a zero want — exactly
    :func:`scaler.decide.zero.grace.grace_step` with ``grace_period`` = keep-alive.

  An idle period still in progress is never recorded (censored), and neither is the idle
  time before the first use (that is not a gap between invocations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from scaler.policy import Policy

BIN_SECONDS = 60.0
RANGE_SECONDS = 4 * 3600.0
HEAD = 0.05
TAIL = 0.99
MARGIN = 0.10


@dataclass(frozen=True)
class HistogramPolicy:
    """When a histogram is trusted; defaults as discussed in the module docstring."""

    min_idles: int = 10
    max_oob_share: float = 0.5
    min_cv: float = 2.0
    head: float = HEAD
    tail: float = TAIL
    margin: float = MARGIN


DEFAULT_POLICY = HistogramPolicy()


@dataclass(frozen=True)
class IdleHistogram:
    """Idle times in ``bin_seconds`` bins over [0, range_seconds); longer ones count as OOB.

    Immutable: :meth:`record` returns a new histogram.
    """

    bin_seconds: float = BIN_SECONDS
    range_seconds: float = RANGE_SECONDS
    counts: tuple[int, ...] = ()
    oob: int = 0

    def __post_init__(self) -> None:
        n = self.bins
        if not self.counts:
            object.__setattr__(self, "counts", (0,) * n)
        elif len(self.counts) != n:
            raise ValueError(f"counts must have {n} bins, got {len(self.counts)}")

    @property
    def bins(self) -> int:
        return round(self.range_seconds / self.bin_seconds)

    @property
    def in_range(self) -> int:
        return sum(self.counts)

    @property
    def total(self) -> int:
        return self.in_range + self.oob

    def record(self, idle_seconds: float) -> IdleHistogram:
        """The histogram with one more idle time (negative counts as 0)."""
        i = math.floor(max(0.0, idle_seconds) / self.bin_seconds)
        if i >= self.bins:
            return replace(self, oob=self.oob + 1)
        counts = list(self.counts)
        counts[i] += 1
        return replace(self, counts=tuple(counts))

    def percentile_bin(self, p: float) -> int:
        """The smallest bin whose cumulative share of the in-range idle times reaches p."""
        total = self.in_range
        prefix = 0
        for i, c in enumerate(self.counts):
            prefix += c
            if total and prefix / total >= p:
                return i
        return self.bins - 1

    def cv(self) -> float:
        """Coefficient of variation of the bin counts (sample standard deviation)."""
        n = self.bins
        mean = self.in_range / n
        if mean == 0 or n < 2:
            return 0.0
        var = sum((c - mean) ** 2 for c in self.counts) / (n - 1)
        return math.sqrt(var) / mean


@dataclass(frozen=True)
class KeepAliveWindows:
    prewarm: float         # seconds after idle start to bring replicas back; 0 = keep one warm
    keepalive: float       # seconds after idle start when the last replica goes
    representative: bool   # False: the fixed grace (prewarm 0, keepalive = fallback_grace)
    reason: str


def windows(hist: IdleHistogram, *, fallback_grace: float, lead: float = 0.0,
            policy: HistogramPolicy = DEFAULT_POLICY) -> KeepAliveWindows:
    """Pre-warm and keep-alive windows from the histogram, or the fixed grace period."""
    total = hist.total
    if total < policy.min_idles:
        return _fixed(fallback_grace, f"too few idle periods: {total} < {policy.min_idles}")
    share = hist.oob / total
    if share >= policy.max_oob_share:
        return _fixed(fallback_grace,
                      f"too many idle times over {hist.range_seconds / 3600:g} h: "
                      f"{share:.0%} >= {policy.max_oob_share:.0%}")
    cv = hist.cv()
    if cv < policy.min_cv:
        return _fixed(fallback_grace,
                      f"idle times too spread: bin-count CV {cv:.2f} < {policy.min_cv:g}")
    head = hist.percentile_bin(policy.head)
    tail = hist.percentile_bin(policy.tail)
    # rounded to the microsecond, so 10 min × 1.1 is 660 s and not 660.0000000000001 s
    prewarm = max(0.0, round(head * hist.bin_seconds * (1.0 - policy.margin) - lead, 6))
    keepalive = round((tail + 1) * hist.bin_seconds * (1.0 + policy.margin), 6)
    return KeepAliveWindows(prewarm, keepalive, True,
                            f"histogram of {total} idle periods: head bin {head}, tail bin {tail}")


def _fixed(grace: float, reason: str) -> KeepAliveWindows:
    return KeepAliveWindows(0.0, float(grace), False, "fixed grace: " + reason)


@dataclass(frozen=True)
class KeepAliveState:
    hist: IdleHistogram = field(default_factory=IdleHistogram)
    idle_since: float | None = None              # z: first tick of the current zero run
    windows: KeepAliveWindows | None = None      # fixed at z for this idle period
    used: bool = False                           # a non-zero count has been seen


def keepalive_step(
    state: KeepAliveState,
    now: float,
    count: int,
    current: int,
    *,
    fallback_grace: float,
    prewarm_replicas: int = 1,
    lead: float = 0.0,
    policy: HistogramPolicy = DEFAULT_POLICY,
) -> tuple[int, KeepAliveState]:
    """Replicas to set at ``now`` for the clamped decider ``count``; see the module docstring."""
    if count > 0:
        hist = state.hist
        if state.idle_since is not None and state.used:
            hist = hist.record(now - state.idle_since)
        return count, KeepAliveState(hist=hist, idle_since=None, windows=None, used=True)
    if state.idle_since is None:
        w = windows(state.hist, fallback_grace=fallback_grace, lead=lead, policy=policy)
        state = replace(state, idle_since=now, windows=w)
    w = state.windows
    elapsed = now - state.idle_since
    if elapsed >= w.keepalive:
        return 0, state
    if w.prewarm > 0:
        return (prewarm_replicas if elapsed >= w.prewarm else 0), state
    return min(current, 1), state


def schedule(state: KeepAliveState) -> tuple[float, float] | None:
    """(pre-warm time or NaN, scale-to-zero time) of the idle period in progress, for logs."""
    if state.idle_since is None:
        return None
    w = state.windows
    z = state.idle_since
    return (z + w.prewarm if w.prewarm > 0 else math.nan, z + w.keepalive)


class HistogramKeepAlive:
    """The :class:`~scaler.decide.zero.ScaleToZero` of ``keepAlive: histogram``.

    Pre-warm brings back the policy's initial replicas (at least one), early by the
    forecast horizon — the workload's start-up time — so they are ready when the request
    is expected; an untrusted histogram falls back to the policy's grace period.
    """

    def __init__(self, fallback_grace: float, prewarm_replicas: int = 1, lead: float = 0.0,
                 thresholds: HistogramPolicy = DEFAULT_POLICY) -> None:
        self.fallback_grace = fallback_grace
        self.prewarm_replicas = prewarm_replicas
        self.lead = lead
        self.thresholds = thresholds
        self.state = KeepAliveState()

    @classmethod
    def for_policy(cls, policy: Policy) -> HistogramKeepAlive:
        return cls(policy.scale_to_zero_grace_period, max(1, policy.initial_replicas),
                   policy.prediction.horizon)

    def replicas(self, count: int, current: int, now: float) -> int:
        replicas, self.state = keepalive_step(
            self.state, now, count, current, fallback_grace=self.fallback_grace,
            prewarm_replicas=self.prewarm_replicas, lead=self.lead, policy=self.thresholds)
        return replicas

    def settled(self, now: float, replicas: int) -> bool:
        # Busy (no idle clock), or idle past the keep-alive with the replicas gone.
        state = self.state
        if state.idle_since is None:
            return True
        return replicas == 0 and now - state.idle_since >= state.windows.keepalive

    def remaining(self, now: float) -> float | None:
        state = self.state
        if state.idle_since is None:
            return None
        return max(0.0, state.windows.keepalive - (now - state.idle_since))
