"""Replay: run a recording through the production decision code and a simulated workload.

Two engines give identical results (a property test holds them to it):

* :func:`replay_per_tick` — the reference. Feeds samples into a
  :class:`~scaler.scaling.PolicyScaler` tick by tick, exactly as the daemon's loop does.
* :func:`replay` — the fast one. Computes both windows for the whole recording with
  :class:`~scaler.windows_batch.BatchWindows`, then walks the ticks calling the very same
  :func:`scaler.kpa.decide` and :func:`scaler.scaling.replicas_for` (and reads the forecast
  floor from the same forecaster code, batched). The only shortcut is
  skipping ticks that provably change nothing: the previous tick was a fixed point (valid,
  no scaling, every replica ready, not panicking, a flat scale-down-delay window) and this
  tick's raw stable count equals the previous one while its panic count stays under the
  threshold. For such a tick ``decide`` would return the same count and the same state.

Replay semantics (design.md, "Replay semantics, precisely"): ticks fall on multiples of
tickInterval from the first sample to the last; at tick T every sample with timestamp
<= T is in the windows; the decider is built at the first tick with initialReplicas
ready; no data in the stable window changes nothing that tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from scaler import kpa, scaling
from scaler.actuators.simulated import SimulatedWorkload
from scaler.policy import Policy
from scaler.scaling import PolicyScaler
from scaler.windows_batch import BatchWindows

Progress = Callable[[float], None]


@dataclass
class ReplayResult:
    """Per-tick arrays of one replay, plus what the report needs to integrate by second."""

    policy: Policy
    startup_delay: float
    times: np.ndarray          # the recording's sample times
    values: np.ndarray         # and values
    ticks: np.ndarray          # int64 unix seconds
    stable: np.ndarray         # float64, NaN where there was no data
    panic: np.ndarray          # float64, NaN where there was no data
    desired: np.ndarray        # int64 replicas after each tick's decision
    ready: np.ndarray          # int64 ready replicas the decider saw
    in_panic: np.ndarray       # bool
    ebc: np.ndarray            # float64 excess burst capacity, NaN where invalid
    lifetimes: list[tuple[float, float]]   # every replica's (ready_at, removed_at)
    forecast: np.ndarray | None = None     # upper forecast per tick (NaN: none), if predicting
    forecast_point: np.ndarray | None = None
    floor: np.ndarray | None = None        # int64 replica floor per tick (act mode)
    cache: dict = field(default_factory=dict, repr=False, compare=False)   # for reports

    @property
    def end(self) -> float:
        return float(self.ticks[-1] + self.policy.tick_interval) if len(self.ticks) else 0.0


def tick_times(times: np.ndarray, tick_interval: float) -> np.ndarray:
    """T = k × tickInterval for k from ceil(first / tick) to floor(last / tick)."""
    if not len(times):
        return np.zeros(0, dtype=np.int64)
    step = int(tick_interval)
    first = math.ceil(float(times[0]) / step)
    last = math.floor(float(times[-1]) / step)
    return np.arange(first, last + 1, dtype=np.int64) * step


def replay_per_tick(policy: Policy, times: np.ndarray, values: np.ndarray,
                    startup_delay: float = 0.0) -> ReplayResult:
    """The reference engine: the daemon's per-tick pipeline over a recording."""
    ticks = tick_times(times, policy.tick_interval)
    n = len(ticks)
    scaler = PolicyScaler(policy)
    workload = SimulatedWorkload(policy.initial_replicas, startup_delay)
    out = _Arrays(n)
    times_l, values_l = times.tolist(), values.tolist()
    j = 0
    for i, t in enumerate(ticks.tolist()):
        while j < len(times_l) and times_l[j] <= t:
            scaler.record(times_l[j], values_l[j])
            j += 1
        ready = workload.ready(t)
        result = scaler.tick(t, ready, workload.replicas)
        workload.scale(t, result.replicas)
        out.set(i, result.replicas, ready, result.in_panic, result.stable, result.panic,
                result.decision.excess_burst_capacity if result.decision.valid else math.nan)
        if result.advice is not None:
            out.set_forecast(i, result.advice, result.floor)
    return out.result(policy, startup_delay, times, values, ticks, workload)


def replay(policy: Policy, times: np.ndarray, values: np.ndarray, startup_delay: float = 0.0,
           progress: Progress | None = None) -> ReplayResult:
    """The fast engine; same results as :func:`replay_per_tick`."""
    ticks = tick_times(times, policy.tick_interval)
    n = len(ticks)
    spec = policy.decider_spec()
    windows = BatchWindows(times, values, ticks)
    # numpy releases the GIL in its loops: the two windows are computed side by side.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        panic_job = pool.submit(windows.averages, int(policy.panic_window),
                                policy.window_algorithm)
        stable, empty = windows.averages(int(policy.stable_window), policy.window_algorithm)
        panic, _ = panic_job.result()
    stable = np.where(empty, np.nan, stable)
    panic = np.where(empty, np.nan, panic)
    with np.errstate(invalid="ignore"):
        raw_stable = np.ceil(stable / spec.target_value)   # Knative's dspc, per tick
        raw_panic = np.ceil(panic / spec.target_value)     # and dppc
    forecast = forecast_point = floor = None
    if policy.prediction.enabled:
        from scaler import predict
        from scaler.scaling import prediction_spec

        series = predict.forecast_series(prediction_spec(policy.prediction), times, values,
                                         ticks)
        # The per-tick engine records NaN for ticks where the forecaster gives no advice.
        forecast, forecast_point = series.upper, series.point
        floor = (predict.floor_series(series, spec.target_value)
                 if policy.prediction.mode == "act" else np.zeros(n, dtype=np.int64))
    floor_l = floor.tolist() if floor is not None else None
    if progress:
        progress(0.2)

    workload = SimulatedWorkload(policy.initial_replicas, startup_delay)
    desired = np.empty(n, dtype=np.int64)
    ready_out = np.empty(n, dtype=np.int64)
    panic_out = np.zeros(n, dtype=bool)
    # Python lists index ~10x faster than arrays in the loop; NaN (no data) never compares
    # equal, so a tick without data always takes the full path.
    dspc_l, dppc_l = raw_stable.tolist(), raw_panic.tolist()
    t0 = int(ticks[0]) if n else 0
    step = int(policy.tick_interval)

    dstate = kpa.initial_state(spec, workload.ready(t0), t0) if n else None
    zstate = scaling.initial_zero_state(policy)
    # Fixed-point bookkeeping: while `skipping`, ticks repeat tick `skip_from - 1`.
    skipping = False
    skip_from = 0
    skip_dspc = 0.0
    skip_limit = 0
    skip_floor = 0
    replicas = workload.replicas
    ready = 0
    report_every = max(1, n // 50)
    for i in range(n):
        if skipping:
            if (dspc_l[i] == skip_dspc and dppc_l[i] < skip_limit
                    and (floor_l is None or floor_l[i] == skip_floor)):
                continue
            desired[skip_from:i] = replicas
            ready_out[skip_from:i] = ready
            if dstate.delay_buckets:
                # The skipped ticks each recorded the same count into the delay window;
                # only the newest of those records remains.
                index = kpa.delay_bucket(t0 + (i - 1) * step)
                dstate = replace(dstate, delay_window=((index, dstate.delay_window[0][1]),))
            skipping = False
        t = t0 + i * step
        current = workload.replicas
        ready = workload.ready(t)
        valid = not empty[i]
        window_before = dstate.delay_window
        decision, dstate = kpa.decide(spec, dstate, t, ready,
                                      float(stable[i]) if valid else None,
                                      float(panic[i]) if valid else None)
        replicas = current
        if decision.valid:
            want = decision.desired_pods if floor_l is None else max(decision.desired_pods,
                                                                     floor_l[i])
            replicas, zstate = scaling.replicas_for(policy, want, current, t, zstate)
        workload.scale(t, replicas)
        desired[i] = replicas
        ready_out[i] = ready
        panic_out[i] = dstate.panic_time is not None
        if (decision.valid and replicas == current and ready == current
                and dstate.panic_time is None
                and scaling.settled(policy, zstate, t, replicas)
                and (not dstate.delay_buckets or _flat(window_before, dstate.delay_window))):
            skipping = True
            skip_from = i + 1
            skip_dspc = dspc_l[i]
            skip_floor = floor_l[i] if floor_l is not None else 0
            skip_limit = _panic_limit(float(max(1, ready)), spec.panic_threshold)
        if progress and i % report_every == 0:
            progress(0.2 + 0.6 * i / n)
    if skipping:
        desired[skip_from:] = replicas
        ready_out[skip_from:] = ready

    ebc = _excess_burst_capacity(spec, ready_out, panic)
    return ReplayResult(policy, startup_delay, times, values, ticks, stable, panic, desired,
                        ready_out, panic_out, ebc, workload.all_lifetimes(_end(ticks, policy)),
                        forecast, forecast_point, floor)


def _flat(before: tuple, after: tuple) -> bool:
    """True when the delay window holds only this tick's count, so recording the same
    count again keeps it unchanged. A single entry from an earlier record in the same 2 s
    bucket may be larger than this tick's count; that case is excluded because the
    bucket already had an entry before the tick."""
    return len(after) == 1 and (not before or before[-1][0] != after[0][0])


def _panic_limit(ready: float, threshold: float) -> int:
    """The smallest whole panic count q with q / ready >= threshold (float division is
    monotone in q, so "over threshold" is exactly "dppc >= q")."""
    q = max(0, math.floor(threshold * ready) - 2)
    while q / ready < threshold:
        q += 1
    return q


def _excess_burst_capacity(spec: kpa.DeciderSpec, ready: np.ndarray,
                           panic: np.ndarray) -> np.ndarray:
    """The decider's EBC for every tick, with the same float operations in the same order."""
    if spec.target_burst_capacity == 0:
        ebc = np.zeros(len(ready))
    elif spec.target_burst_capacity > 0:
        ebc = np.floor(ready.astype(np.float64) * spec.total_value
                       - spec.target_burst_capacity - panic)
        out_of_range = ~((ebc >= -(2.0**31)) & (ebc < 2.0**31))
        ebc = np.where(out_of_range & ~np.isnan(panic), -(2.0**31), ebc)
    else:
        ebc = np.full(len(ready), -1.0)
    return np.where(np.isnan(panic), np.nan, ebc)


def _end(ticks: np.ndarray, policy: Policy) -> float:
    return float(ticks[-1] + policy.tick_interval) if len(ticks) else 0.0


class _Arrays:
    """Per-tick outputs of the reference engine."""

    def __init__(self, n: int) -> None:
        self.desired = np.empty(n, dtype=np.int64)
        self.ready = np.empty(n, dtype=np.int64)
        self.in_panic = np.zeros(n, dtype=bool)
        self.stable = np.full(n, np.nan)
        self.panic = np.full(n, np.nan)
        self.ebc = np.full(n, np.nan)
        self.forecast: np.ndarray | None = None
        self.forecast_point: np.ndarray | None = None
        self.floor: np.ndarray | None = None

    def set_forecast(self, i: int, advice, floor: int) -> None:
        if self.forecast is None:
            n = len(self.desired)
            self.forecast, self.forecast_point = np.full(n, np.nan), np.full(n, np.nan)
            self.floor = np.zeros(n, dtype=np.int64)
        if advice.upper is not None:
            self.forecast[i] = advice.upper
        if advice.point is not None:
            self.forecast_point[i] = advice.point
        self.floor[i] = floor

    def set(self, i: int, desired: int, ready: int, in_panic: bool, stable: float | None,
            panic: float | None, ebc: float) -> None:
        self.desired[i] = desired
        self.ready[i] = ready
        self.in_panic[i] = in_panic
        if stable is not None:
            self.stable[i] = stable
            self.panic[i] = panic
        self.ebc[i] = ebc

    def result(self, policy: Policy, startup_delay: float, times: np.ndarray,
               values: np.ndarray, ticks: np.ndarray,
               workload: SimulatedWorkload) -> ReplayResult:
        return ReplayResult(policy, startup_delay, times, values, ticks, self.stable,
                            self.panic, self.desired, self.ready, self.in_panic, self.ebc,
                            workload.all_lifetimes(_end(ticks, policy)),
                            self.forecast, self.forecast_point, self.floor)
