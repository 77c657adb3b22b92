"""Knative's KPA decider, as a pure function.

A port of ``Scale()`` in knative/serving ``pkg/autoscaler/scaling/autoscaler.go`` that
reproduces its results bit for bit: the same IEEE-754 double arithmetic, the same
``ceil``/``floor`` points, Go's ``math.Min``/``Max`` and float64 → int32 conversion (so
+Inf, 1e308 or NaN give what Go gives instead of raising), the panic ratchet and the
scale-down-delay max window with 2 s buckets. Knative keeps this state inside the
autoscaler object and reads the clock in its constructor; here the state is a value
passed in and returned, and ``now`` is always an argument, so replay and production run
exactly the same code.

The numbers, once, at the production defaults (target 100 per pod at 70 % utilization,
so the decider aims for 70 per pod; panic at 200 %; max scale up 1000, down 2):

* 3 ready pods, stable average 210 → ceil(210 / 70) = 3 pods: hold 3. Stable 211 →
  ceil(3.01) = 4 pods: one more.
* 3 ready pods, stable 30 → ceil(30 / 70) = 1, but no tick may drop below
  floor(3 / 2) = 1 pod: 1. At 10 ready pods and stable 30 it is floor(10 / 2) = 5, then
  2, then 1 on the following ticks.
* 3 ready pods, panic average 420 → ceil(420 / 70) = 6 pods = 6 / 3 = 200 % of what is
  ready: panic. While panicking the count only rises, and panic ends one stable window
  (60 s) after the last tick that was over the threshold.

The decider knows nothing about min/max/initial replicas or scale-to-zero timing —
those belong to ``scaler.decide.zero``, as they belong to Knative's reconciler.

Replay's fast engine decides only on the ticks that can change something: :func:`steady`
says when a tick is a fixed point that later ticks repeat exactly, and
:func:`fast_forward` moves its state over the repeated ticks. The array forms of the raw
counts and of the excess burst capacity are in ``scaler.decide.kpa_batch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

# The scale-down-delay window keeps one bucket per decider tick; Knative fixes it at its
# 2 s tick whatever the real tick is (max.NewTimeWindow(delay, tickInterval)).
DELAY_BUCKET_SECONDS = 2

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_INF = math.inf


@dataclass(frozen=True)
class DeciderSpec:
    """Knative's DeciderSpec. Durations in seconds; panic_threshold as a ratio (2.0 = 200 %)."""

    target_value: float            # per-pod load the decider aims for (TotalValue × utilization)
    total_value: float             # per-pod capacity, used for excess burst capacity
    target_burst_capacity: float   # -1: activator always in path; 0: only at zero; > 0: headroom
    panic_threshold: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    stable_window: float           # panic ends one stable window after the last over-threshold tick
    scale_down_delay: float        # read only by initial_state(): Knative sizes the window once
    activation_scale: int          # minimum non-zero count; 0 or 1 = off
    reachable: bool = True         # unreachable revisions skip scale-down rate and delay window


@dataclass(frozen=True)
class DeciderState:
    """What the decider remembers between ticks.

    ``delay_window`` is the scale-down-delay "descending maxima" deque as
    ``((bucket_index, value), ...)`` oldest first; ``delay_buckets`` its capacity, fixed at
    construction (0 = no window). Keeping the capacity here, not in the spec, reproduces
    Knative: a later spec change never creates, removes or resizes the window.
    """

    panic_time: float | None = None   # when panic started or was last extended; None = calm
    max_panic_pods: int = 0           # ratchet: the count never drops while panicking
    delay_buckets: int = 0
    delay_window: tuple[tuple[int, int], ...] = ()

    @property
    def in_panic(self) -> bool:
        return self.panic_time is not None


@dataclass(frozen=True)
class Decision:
    valid: bool
    desired_pods: int = 0
    excess_burst_capacity: int = 0
    in_panic: bool = False


INVALID = Decision(valid=False)


def go_int32(x: float) -> int:
    """Go's int32(float64) on amd64: truncation, and 0x80000000 for values out of range or NaN.
    3.9 → 3, -3.9 → -3, 2**31 → -2147483648."""
    if x != x or not (_INT32_MIN <= x < _INT32_MAX + 1):
        return _INT32_MIN
    return int(x)


def go_ceil(x: float) -> float:
    """Go's math.Ceil: 3.01 → 4.0, and ±Inf or NaN as they are (Python's ceil raises)."""
    try:
        return float(math.ceil(x))
    except (OverflowError, ValueError):
        return x


def go_floor(x: float) -> float:
    """Go's math.Floor: 1.5 → 1.0, and ±Inf or NaN as they are."""
    try:
        return float(math.floor(x))
    except (OverflowError, ValueError):
        return x


def go_max(x: float, y: float) -> float:
    """Go's math.Max: +Inf wins over NaN, NaN over any other number, +0 over -0."""
    if x > y:
        return x
    if x < y:
        return y
    if x == y:
        return y if x == 0 and math.copysign(1.0, x) < 0 else x
    return _INF if _INF in (x, y) else math.nan


def go_min(x: float, y: float) -> float:
    """Go's math.Min: -Inf wins over NaN, NaN over any other number, -0 over +0."""
    if x < y:
        return x
    if x > y:
        return y
    if x == y:
        return y if x == 0 and math.copysign(1.0, x) > 0 else x
    return -_INF if -_INF in (x, y) else math.nan


def delay_bucket(now: float) -> int:
    """The scale-down-delay bucket of ``now``: Go's ``int(now.Unix()) / 2`` — whole seconds
    by flooring, then division truncating toward zero. 1001.7 → 500; -3 → -1."""
    seconds = math.floor(now)
    q = abs(seconds) // DELAY_BUCKET_SECONDS
    return q if seconds >= 0 else -q


def initial_state(spec: DeciderSpec, ready_pods: int | None, now: float) -> DeciderState:
    """Knative's New(): a decider that starts with more than one ready pod starts panicking.

    A restarted autoscaler has lost its metric history; starting in panic mode with the
    current count as the ratchet means it cannot scale down until a full stable window of
    fresh data has been seen. 5 ready pods: in panic since ``now``, never below 5 until
    60 s of calm; 1 ready pod: calm. An unknown count (``None``) counts as 0, as in
    Knative. A 30 s scale-down delay keeps ceil(30 / 2) = 15 buckets.
    """
    ready = ready_pods or 0
    buckets = 0
    if spec.scale_down_delay > 0:
        buckets = math.ceil(spec.scale_down_delay / DELAY_BUCKET_SECONDS)
    if ready > 1:
        return DeciderState(panic_time=now, max_panic_pods=ready, delay_buckets=buckets)
    return DeciderState(panic_time=None, max_panic_pods=ready, delay_buckets=buckets)


def decide(
    spec: DeciderSpec,
    state: DeciderState,
    now: float,
    ready_pods: int | None,
    stable: float | None,
    panic: float | None,
) -> tuple[Decision, DeciderState]:
    """One Knative ``Scale()`` tick.

    ``stable``/``panic`` are the window averages of the workload's total load; ``stable``
    None means the stable window holds no data (Knative's ErrNoData) and ``ready_pods``
    None means the ready count could not be read. Either gives an invalid decision and
    leaves the state untouched: the caller keeps the previous scale. ``panic`` None means
    the panic window alone has no data (its seconds are unknown): it is read as the
    stable average — the longer window's view of the same load — never as zero.
    """
    if ready_pods is None or stable is None:
        return INVALID, state
    if panic is None:
        panic = stable

    ready = float(max(1, ready_pods))
    # ceil lets a conservative rate still add one pod; floor lets it still remove one:
    # 3 ready at rate 1.1 may grow to ceil(3.3) = 4, not 3; at rate 2, shrink to
    # floor(1.5) = 1. Zero ready pods count as one, so a scale from zero is possible.
    max_scale_up = go_ceil(spec.max_scale_up_rate * ready)
    max_scale_down = go_floor(ready / spec.max_scale_down_rate) if spec.reachable else 0.0

    # The raw counts: stable 211 at target 70 → ceil(3.014…) = 4. An average of +Inf
    # stays +Inf and is held to max_scale_up below, as in Go.
    dspc = go_ceil(stable / spec.target_value)
    dppc = go_ceil(panic / spec.target_value)

    desired_stable = go_int32(go_min(go_max(dspc, max_scale_down), max_scale_up))
    desired_panic = go_int32(go_min(go_max(dppc, max_scale_down), max_scale_up))

    # Activation scale lifts any non-zero raw count, after the rate clamps (so it may
    # exceed max_scale_up); a zero raw count stays zero so scale-to-zero still works.
    # Activation 3: a raw count of 1 becomes 3, a raw count of 0 stays 0.
    if spec.activation_scale > 1:
        if dspc > 0 and spec.activation_scale > desired_stable:
            desired_stable = spec.activation_scale
        if dppc > 0 and spec.activation_scale > desired_panic:
            desired_panic = spec.activation_scale

    # The panic test uses the unclamped panic count: 6 / 3 ready = 2.0 >= 200 %.
    over_threshold = dppc / ready >= spec.panic_threshold

    panic_time = state.panic_time
    max_panic_pods = state.max_panic_pods
    if over_threshold:
        panic_time = now   # enter, or extend
    elif panic_time is not None and panic_time + spec.stable_window < now:
        # The surge has had a full stable window to show up in the stable average:
        # last over the threshold at 1000 s, a 60 s window → calm again from 1062 s.
        panic_time = None
        max_panic_pods = 0

    desired = desired_stable
    if panic_time is not None:
        # Provision for whichever window sees more, and never scale down while panicking:
        # stable wants 4, panic 6 → 6; then stable 4, panic 5 → still 6.
        if desired < desired_panic:
            desired = desired_panic
        if desired > max_panic_pods:
            max_panic_pods = desired
        desired = max_panic_pods

    delay_window = state.delay_window
    if state.delay_buckets and spec.reachable:
        # The highest count of the trailing delay: 6, 5, 2 within 30 s → still 6.
        delay_window = _delay_record(
            delay_window, state.delay_buckets, delay_bucket(now), desired
        )
        desired = delay_window[0][1]

    new_state = DeciderState(
        panic_time=panic_time,
        max_panic_pods=max_panic_pods,
        delay_buckets=state.delay_buckets,
        delay_window=delay_window,
    )
    decision = Decision(
        valid=True,
        desired_pods=desired,
        excess_burst_capacity=excess_burst_capacity(spec, ready_pods, panic),
        in_panic=panic_time is not None,
    )
    return decision, new_state


def excess_burst_capacity(spec: DeciderSpec, ready_pods: int, panic: float) -> int:
    """Knative's EBC: the capacity left after the panic average and the burst headroom.

    3 ready pods of 100 with a panic average of 70 and the default headroom of 211:
    floor(3 × 100 − 211 − 70) = 19 ≥ 0, so the activator may leave the request path;
    2 ready pods give floor(200 − 211 − 70) = −81. A headroom of 0 always gives 0,
    and −1 (activator always in path) always −1. Its array form, for replay, is
    ``scaler.decide.kpa_batch.excess_burst_capacity``: the same float operations in the
    same order.
    """
    if spec.target_burst_capacity == 0:
        return 0
    if spec.target_burst_capacity < 0:
        return -1
    total_capacity = float(ready_pods) * spec.total_value
    return go_int32(go_floor(total_capacity - spec.target_burst_capacity - panic))


def panic_limit(ready_pods: int, threshold: float) -> int:
    """The smallest raw panic count that is over the threshold for this many ready pods.

    3 ready pods at 200 %: 6 (6 / 3 = 2.0); 0 or 1 ready pod: 2. ``decide`` tests
    ``dppc / ready >= threshold``; float division is monotone in the count, so that is
    exactly ``dppc >= panic_limit(ready_pods, threshold)``.
    """
    ready = float(max(1, ready_pods))
    q = max(0, math.floor(threshold * ready) - 2)
    while q / ready < threshold:
        q += 1
    return q


class Steady(NamedTuple):
    """A calm tick that every later tick repeats exactly — same count, same state but
    for the delay window's newest bucket — while the ready count stays the same, the
    raw stable count stays ``raw_stable`` and the raw panic count stays below
    ``panic_limit`` (the raw counts: ceil(average / target value))."""

    raw_stable: float
    panic_limit: int


def steady(spec: DeciderSpec, before: DeciderState, after: DeciderState, ready_pods: int,
           stable: float) -> Steady | None:
    """Whether the valid tick that turned ``before`` into ``after`` (with ``ready_pods``
    ready and a ``stable`` average) is a fixed point of :func:`decide`, and on what terms.

    It is when the decider is calm afterwards and its delay window (if any) holds only
    this tick's count, recorded into a bucket that was empty: repeating the tick records
    the same count again, into the same or the next bucket, and the head stays the same.
    With 3 ready pods at the defaults and stable 200: raw stable 3, and panic counts up
    to 5 keep it calm — ``Steady(raw_stable=3, panic_limit=6)``.
    """
    if after.panic_time is not None:
        return None
    if after.delay_buckets and spec.reachable:
        window = after.delay_window
        # A single entry from an earlier record in the same 2 s bucket may be larger
        # than this tick's count: only a bucket this tick opened is certain.
        if len(window) != 1 or (before.delay_window and
                                before.delay_window[-1][0] == window[0][0]):
            return None
    return Steady(go_ceil(stable / spec.target_value),
                  panic_limit(ready_pods, spec.panic_threshold))


def fast_forward(spec: DeciderSpec, state: DeciderState, now: float) -> DeciderState:
    """The state after a :func:`steady` tick's state was repeated at every tick up to and
    including ``now``: the same, with the delay window's one entry in the bucket of
    ``now`` (each repeat replaced it with its own record of the same count)."""
    if not (state.delay_buckets and spec.reachable and state.delay_window):
        return state
    return replace(state, delay_window=((delay_bucket(now), state.delay_window[0][1]),))


def _delay_record(
    window: tuple[tuple[int, int], ...], capacity: int, index: int, value: int
) -> tuple[tuple[int, int], ...]:
    """Record into Knative's max window (aggregation/max/window.go); returns the new deque.

    Entries are kept in index order with strictly descending values, so the head is the
    maximum of the last ``capacity`` buckets: recording 4 into ((7, 6), (8, 5)) at bucket
    9 drops nothing older and gives ((7, 6), (8, 5), (9, 4)); recording 5 there instead
    drops (8, 5), whose value can never be the maximum again.
    """
    entries = list(window)
    # A smaller, older value can never be the maximum again.
    while entries and entries[-1][1] <= value:
        entries.pop()
    # Only the head can be too old, since entries are in index order.
    while entries and index - entries[0][0] >= capacity:
        entries.pop(0)
    if entries and entries[-1][0] == index:
        # Same bucket: the larger value stays (it is larger, or it would have been popped).
        return tuple(entries)
    entries.append((index, value))
    return tuple(entries)
