"""Adaptive scale to zero: a warm schedule read off the workload's idle-time histogram.

Pure: no I/O, no clock reads, no logging. The histogram, the idle clock and the schedule are
values passed in and returned, as in :mod:`scaler.decide.zero.grace`, which this replaces
when a policy has ``scaleToZero.keepAlive: histogram``.

The histogram (as in Shahrad et al., "Serverless in the Wild", USENIX ATC 2020, §4)
=================================================================================
Per workload, a histogram of *idle times* with 1-minute bins over a 4 h range (240 bins);
idle times of 4 h or more count as out-of-bounds, not binned. An idle time is the length of
a run of zero wants: from the first tick at which the clamped decider count is 0 (after a
non-zero count) to the first tick at which it is non-zero again. (The decider wants 0 only
once the stable window has emptied, so this is the request gap minus about one stable
window; the schedule is timed from the same point, so the offset cancels.)

Why not the paper's two percentiles
===================================
The paper keeps one window per idle period, from the 5th percentile of the idle times (less
10 %) to the 99th (plus 10 %). On real functions the idle times are often several modes (a
queue drained every 1, 3 and 8 minutes) or a mode and a long tail: one window must cover the
tail — hours warm for a few stragglers — or cut it and go cold. Measured on 97 real
functions (benchmarks/README.md) it wasted more than a fixed 10-minute keep-alive. The
cost-optimal rule for a renewal process is decided per minute instead, against the price
of a cold start.

The rule (:func:`warm_schedule`)
================================
G = ``scaleToZero.coldStartCost``: what a cold start is worth in replica-seconds, which is
the fixed keep-alive the schedule must beat (a fixed G keep-alive pays up to G to avoid one).
With n idle periods recorded, for bin b (minutes since the idle period began): c_b ended in
it, S_b = n − Σ_{b' < b} c_{b'} lasted at least b minutes. Keeping a replica through bin b
costs about 60·(S_b − c_b) + 30·c_b replica-seconds (those still idle pay the whole minute,
those ending in it half) and saves c_b cold starts, so

    bin b is warm  iff  G · c_b > 60 · (S_b − c_b) + 30 · c_b.

* Evidence: inside G (b < G/60) a bin goes cold only when at least 10 idle periods reached
  it — unless idle periods shorter than G are unlikely: with k of the n shorter than G,
  p = (k + 1)/(n + 2) (a uniform prior), thin evidence keeps G warm only while p > 1/2.
  (A workload whose every gap so far was hours long stops paying G after each call.)
* Fewer than 2 idle periods recorded: the fixed G keep-alive (the paper, too, falls back to
  a generous keep-alive, not to a short one).
* The warm bins, merged into runs [a, b), are the schedule. A run starting at 0 keeps the
  replica that is there (a zero want never scales up from zero); a later run brings the
  policy's initial replicas (at least one) up ``lead`` — the workload's start-up time,
  ``scaleToZero.prewarmLead`` or learnt by :mod:`scaler.decide.zero.startup` — before a,
  so they are ready at a, and lets them go at b.
* Per-workload guard: each finished idle period is scored against the fixed G — ``extra``
  counts those that ended cold although shorter than G, ``saved`` those that ended warm
  although at least G long (idle periods do not depend on the keep-alive: they are the
  decider's zero wants). While extra − saved >= 2, G is forced warm, so a workload never
  falls more than 2 idle periods behind the fixed keep-alive on cold starts. (A cold idle
  period can show as 2–3 cold-start episodes when requests trickle in during the start-up.)

The step function (:func:`keepalive_step`)
==========================================
Called once per tick with a valid decision, with the decider's count already clamped to
min/max (``count``) and the current replicas; returns the replicas to set and the new state.
Ticks with an invalid decision (no data) must not call it: they change nothing and leave
the idle clock alone (design.md, replay semantics §3).

* ``count > 0`` ends any idle period: if it followed a use (a non-zero count seen since the
  state was created), its length is recorded and scored. The result is ``count``.
* ``count == 0`` at the first such tick starts an idle period at z = now and fixes its
  schedule from the histogram, and its pre-warm lead, as they are then. Then, with
  elapsed = now − z: inside a run starting at 0, ``min(current, 1)``; inside
  [a − lead, b) of a later run, the pre-warm replicas; otherwise 0. (Until a start-up has
  been timed the lead is a guess, at most a / 2: the replica then goes and comes back and
  the start-up is timed, where a guess reaching back to 0 would keep it up for good.)

An idle period still in progress is never recorded (censored), nor is the idle time before
the first use (that is not a gap between invocations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from scaler.decide.zero.startup import (DEFAULT_LEAD, StartupClock, observe_ready,
                                        observe_scale)
from scaler.policy import Policy

BIN_SECONDS = 60.0
RANGE_SECONDS = 4 * 3600.0


@dataclass(frozen=True)
class ScheduleRules:
    """How much evidence the schedule needs; defaults as in the module docstring."""

    min_idles: int = 2         # below this, the fixed keep-alive
    min_survivors: int = 10    # idle periods that must reach a bin inside G to turn it cold
    slack: int = 2             # idle periods the workload may fall behind the fixed G


DEFAULT_RULES = ScheduleRules()


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


@dataclass(frozen=True)
class WarmSchedule:
    """When to keep replicas during one idle period: [start, end) seconds since it began.
    A run starting at 0 keeps the replica that is there; a later one pre-warms."""

    runs: tuple[tuple[float, float], ...]
    learnt: bool    # False: the fixed keep-alive (too few idle periods, or the guard)
    reason: str

    @property
    def keepalive(self) -> float:
        """When the last replica goes for good (0: at once)."""
        return self.runs[-1][1] if self.runs else 0.0

    @property
    def prewarm(self) -> float | None:
        """When the first pre-warm run starts, if there is one."""
        return next((a for a, _ in self.runs if a > 0), None)

    def warm_at(self, elapsed: float) -> bool:
        """Whether an idle period ending ``elapsed`` seconds in found a ready replica (a
        pre-warm run counts from its start, when the replica is meant to be ready)."""
        return any(a <= elapsed < b for a, b in self.runs)


def fixed(cold_start_cost: float, reason: str) -> WarmSchedule:
    return WarmSchedule(((0.0, float(cold_start_cost)),), False, "fixed keep-alive: " + reason)


def warm_schedule(hist: IdleHistogram, *, cold_start_cost: float, guard: bool = False,
                  rules: ScheduleRules = DEFAULT_RULES) -> WarmSchedule:
    """The warm schedule for the next idle period. ``guard``: the first ``cold_start_cost``
    seconds stay warm whatever the histogram says (the workload has fallen behind the
    fixed keep-alive)."""
    n = hist.total
    g = float(cold_start_cost)
    if n < rules.min_idles:
        return fixed(g, f"{n} idle periods < {rules.min_idles}")
    size = hist.bin_seconds
    inside = math.ceil(g / size)   # bins within the fixed keep-alive
    # Thin evidence keeps the keep-alive warm only while an idle period shorter than it is
    # likely: (k + 1) / (n + 2) of them, each worth g, against g for each of the others.
    short = sum(hist.counts[:inside])
    p_short = (short + 1) / (n + 2)
    thin_keeps = p_short * g > (1 - p_short) * g
    runs: list[tuple[float, float]] = []
    survivors = n
    for b, c in enumerate(hist.counts):
        warm = g * c > size * (survivors - c) + 0.5 * size * c
        if b < inside and (guard or (survivors < rules.min_survivors and thin_keeps)):
            warm = True
        if warm:
            if runs and runs[-1][1] == b * size:
                runs[-1] = (runs[-1][0], (b + 1) * size)
            else:
                runs.append((b * size, (b + 1) * size))
        survivors -= c
    why = f"{n} idle periods, {len(runs)} warm run{'s' if len(runs) != 1 else ''}"
    return WarmSchedule(tuple(runs), True, why + (" (guard: keep-alive forced)" if guard else ""))


@dataclass(frozen=True)
class KeepAliveState:
    hist: IdleHistogram = field(default_factory=IdleHistogram)
    idle_since: float | None = None              # z: first tick of the current zero run
    schedule: WarmSchedule | None = None         # fixed at z for this idle period
    used: bool = False                           # a non-zero count has been seen
    extra: int = 0     # idle periods that ended cold although shorter than the fixed G
    saved: int = 0     # idle periods that ended warm although at least G long
    startup: StartupClock = StartupClock()       # start-ups seen: the learnt pre-warm lead
    lead: float = 0.0  # the pre-warm lead, fixed at z with the schedule (a start-up timed
                       # during the idle period must not cancel the pre-warm it timed)
    lead_guessed: bool = False   # the default lead, no start-up timed yet


def keepalive_step(state: KeepAliveState, now: float, count: int, current: int, *,
                   cold_start_cost: float, prewarm_replicas: int = 1,
                   lead: float | None = 0.0, ready: int | None = None,
                   default_lead: float = DEFAULT_LEAD,
                   rules: ScheduleRules = DEFAULT_RULES) -> tuple[int, KeepAliveState]:
    """Replicas to set at ``now`` for the clamped decider ``count``; see the module docstring.

    ``lead`` None: the pre-warm lead is learnt from the start-ups this state has timed
    (``ready``, the ready count the tick saw, stops the clock), ``default_lead`` until one
    was; a number: that lead, always."""
    clock = observe_ready(state.startup, now, ready)
    guessed = False
    if lead is None:
        lead, guessed = clock.lead(default_lead), not clock.seen
    replicas, state = _step(state, now, count, current, cold_start_cost, prewarm_replicas,
                            lead, guessed, rules)
    clock = observe_scale(clock, now, current, replicas, ready)
    if clock is not state.startup:
        state = replace(state, startup=clock)
    return replicas, state


def _step(state: KeepAliveState, now: float, count: int, current: int, cold_start_cost: float,
          prewarm_replicas: int, lead: float, guessed: bool,
          rules: ScheduleRules) -> tuple[int, KeepAliveState]:
    if count > 0:
        if state.idle_since is None:
            return count, state if state.used else replace(state, used=True)
        hist, extra, saved = state.hist, state.extra, state.saved
        if state.used:
            idle = now - state.idle_since
            hist = hist.record(idle)
            warm = state.schedule.warm_at(idle)
            if not warm and idle < cold_start_cost:
                extra += 1
            elif warm and idle >= cold_start_cost:
                saved += 1
        return count, KeepAliveState(hist, None, None, True, extra, saved, state.startup)
    if state.idle_since is None:
        guard = state.extra - state.saved >= rules.slack
        schedule = warm_schedule(state.hist, cold_start_cost=cold_start_cost, guard=guard,
                                 rules=rules)
        state = replace(state, idle_since=now, schedule=schedule, lead=lead,
                        lead_guessed=guessed)
    elapsed = now - state.idle_since
    for a, b in state.schedule.runs:
        if a == 0.0:
            if elapsed < b:
                return min(current, 1), state
        # A guessed lead stops halfway to the run: the replica goes and comes back, and
        # that start-up is timed (a guess reaching back to 0 would keep the replica up
        # through every idle period and never time one).
        lead = min(state.lead, a / 2) if state.lead_guessed else state.lead
        if a - lead <= elapsed < b:
            return prewarm_replicas, state
    return 0, state


def idle_plan(state: KeepAliveState) -> tuple[float, float] | None:
    """(first pre-warm time or NaN, scale-to-zero time) of the idle period in progress, for
    logs."""
    if state.idle_since is None:
        return None
    s = state.schedule
    z = state.idle_since
    return (math.nan if s.prewarm is None else z + s.prewarm, z + s.keepalive)


class HistogramKeepAlive:
    """The :class:`~scaler.decide.zero.ScaleToZero` of ``keepAlive: histogram``.

    Pre-warm brings back the policy's initial replicas (at least one), early by the
    workload's start-up time — ``scaleToZero.prewarmLead``, or (``lead`` None) the
    start-ups the pipeline has timed — so they are ready when the request is expected;
    ``coldStartCost`` prices a cold start and is the fallback keep-alive.
    """

    def __init__(self, cold_start_cost: float, prewarm_replicas: int = 1,
                 lead: float | None = None, rules: ScheduleRules = DEFAULT_RULES) -> None:
        self.cold_start_cost = cold_start_cost
        self.prewarm_replicas = prewarm_replicas
        self.lead = lead
        self.rules = rules
        self.state = KeepAliveState()

    @classmethod
    def for_policy(cls, policy: Policy) -> HistogramKeepAlive:
        return cls(policy.cold_start_cost, max(1, policy.initial_replicas), policy.prewarm_lead)

    def replicas(self, count: int, current: int, now: float, ready: int | None = None) -> int:
        replicas, self.state = keepalive_step(
            self.state, now, count, current, cold_start_cost=self.cold_start_cost,
            prewarm_replicas=self.prewarm_replicas, lead=self.lead, ready=ready,
            rules=self.rules)
        return replicas

    def settled(self, now: float, replicas: int) -> bool:
        # Busy (no idle clock), or idle past the schedule's end with the replicas gone.
        state = self.state
        if state.idle_since is None:
            return True
        return replicas == 0 and now - state.idle_since >= state.schedule.keepalive

    def remaining(self, now: float) -> float | None:
        state = self.state
        if state.idle_since is None:
            return None
        return max(0.0, state.schedule.keepalive - (now - state.idle_since))
