"""Knative's KPA decider, as a pure function.

A port of ``Scale()`` in knative/serving ``pkg/autoscaler/scaling/autoscaler.go`` that
reproduces its results bit for bit: the same IEEE-754 double arithmetic, the same
``ceil``/``floor`` points, Go's float64 → int32 conversion, the panic ratchet and the
scale-down-delay max window with 2 s buckets. Knative keeps this state inside the
autoscaler object and reads the clock in its constructor; here the state is a value
passed in and returned, and ``now`` is always an argument, so replay and production run
exactly the same code.

The decider knows nothing about min/max/initial replicas or scale-to-zero timing —
those belong to ``scaler.zero``, as they belong to Knative's reconciler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The scale-down-delay window keeps one bucket per decider tick; Knative fixes it at its
# 2 s tick whatever the real tick is (max.NewTimeWindow(delay, tickInterval)).
DELAY_BUCKET_SECONDS = 2

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


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


@dataclass(frozen=True)
class Decision:
    valid: bool
    desired_pods: int = 0
    excess_burst_capacity: int = 0
    in_panic: bool = False


INVALID = Decision(valid=False)


def go_int32(x: float) -> int:
    """Go's int32(float64) on amd64: truncation, and 0x80000000 for values out of range or NaN."""
    if x != x or not (_INT32_MIN <= x < _INT32_MAX + 1):
        return _INT32_MIN
    return int(x)


def delay_bucket(now: float) -> int:
    """The scale-down-delay bucket of ``now``: Go's ``int(now.Unix()) / 2`` — whole seconds
    by flooring, then division truncating toward zero."""
    seconds = math.floor(now)
    q = abs(seconds) // DELAY_BUCKET_SECONDS
    return q if seconds >= 0 else -q


def initial_state(spec: DeciderSpec, ready_pods: int | None, now: float) -> DeciderState:
    """Knative's New(): a decider that starts with more than one ready pod starts panicking.

    A restarted autoscaler has lost its metric history; starting in panic mode with the
    current count as the ratchet means it cannot scale down until a full stable window of
    fresh data has been seen. An unknown count (``None``) counts as 0, as in Knative.
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
    leaves the state untouched: the caller keeps the previous scale.
    """
    if ready_pods is None or stable is None:
        return INVALID, state
    if panic is None:
        panic = 0.0

    ready = float(max(1, ready_pods))
    # ceil lets a conservative rate still add one pod; floor lets it still remove one.
    max_scale_up = math.ceil(spec.max_scale_up_rate * ready)
    max_scale_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0

    dspc = math.ceil(stable / spec.target_value)
    dppc = math.ceil(panic / spec.target_value)

    desired_stable = go_int32(min(max(dspc, max_scale_down), max_scale_up))
    desired_panic = go_int32(min(max(dppc, max_scale_down), max_scale_up))

    # Activation scale lifts any non-zero raw count, after the rate clamps (so it may
    # exceed max_scale_up); a zero raw count stays zero so scale-to-zero still works.
    if spec.activation_scale > 1:
        if dspc > 0 and spec.activation_scale > desired_stable:
            desired_stable = spec.activation_scale
        if dppc > 0 and spec.activation_scale > desired_panic:
            desired_panic = spec.activation_scale

    # The panic test uses the unclamped panic count.
    over_threshold = dppc / ready >= spec.panic_threshold

    panic_time = state.panic_time
    max_panic_pods = state.max_panic_pods
    if over_threshold:
        panic_time = now   # enter, or extend
    elif panic_time is not None and panic_time + spec.stable_window < now:
        # The surge has had a full stable window to show up in the stable average.
        panic_time = None
        max_panic_pods = 0

    desired = desired_stable
    if panic_time is not None:
        # Provision for whichever window sees more, and never scale down while panicking.
        if desired < desired_panic:
            desired = desired_panic
        if desired > max_panic_pods:
            max_panic_pods = desired
        desired = max_panic_pods

    delay_window = state.delay_window
    if state.delay_buckets and spec.reachable:
        delay_window = _delay_record(
            delay_window, state.delay_buckets, delay_bucket(now), desired
        )
        desired = delay_window[0][1]

    if spec.target_burst_capacity == 0:
        ebc = 0.0
    elif spec.target_burst_capacity > 0:
        total_capacity = float(ready_pods) * spec.total_value
        ebc = math.floor(total_capacity - spec.target_burst_capacity - panic)
    else:
        ebc = -1.0

    new_state = DeciderState(
        panic_time=panic_time,
        max_panic_pods=max_panic_pods,
        delay_buckets=state.delay_buckets,
        delay_window=delay_window,
    )
    decision = Decision(
        valid=True,
        desired_pods=desired,
        excess_burst_capacity=go_int32(ebc),
        in_panic=panic_time is not None,
    )
    return decision, new_state


def _delay_record(
    window: tuple[tuple[int, int], ...], capacity: int, index: int, value: int
) -> tuple[tuple[int, int], ...]:
    """Record into Knative's max window (aggregation/max/window.go); returns the new deque.

    Entries are kept in index order with strictly descending values, so the head is the
    maximum of the last ``capacity`` buckets.
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
