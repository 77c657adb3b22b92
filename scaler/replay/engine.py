"""Replay: run a recording through the production decision code and a simulated workload.

Two engines give identical results (property tests hold them to it, and to the daemon's
own loop run on a recording):

* :func:`replay_per_tick` — the reference. Feeds samples into a
  :class:`~scaler.decide.pipeline.PolicyScaler` tick by tick, exactly as the daemon's
  loop does.
* :func:`replay` — the fast one. Computes both windows (and the forecast) for the whole
  recording at once with the array forms in ``scaler.decide``, then walks the ticks with
  the very same :class:`~scaler.decide.pipeline.Decider`. Its one shortcut: after a tick
  the decider itself calls steady (:meth:`~scaler.decide.pipeline.Decider.steady`), it
  skips the following ticks whose raw counts and forecast floor say they repeat it, and
  hands the decider the time it skipped to (:meth:`~scaler.decide.pipeline.Decider.fast_forward`).

Replay semantics (design.md, "Replay semantics, precisely"): the recording's rows are
first spread over the seconds they hold at its resolution, and the seconds no row holds
are unknown (:mod:`scaler.sources.recording.seconds`); ticks fall on multiples of
tickInterval from the first sample to the last; at tick T every sample with timestamp
<= T is in the windows and every unknown second <= T marked; the decider is built at the
first tick with initialReplicas ready; no data in the stable window changes nothing
that tick.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from scaler.actuators.simulated import SimulatedWorkload
from scaler.decide import kpa_batch
from scaler.decide.pipeline import Decider, PolicyScaler
from scaler.decide.windows_batch import BatchWindows
from scaler.policy import Policy
from scaler.sources.recording.seconds import Seconds, per_second

Progress = Callable[[float], None]

# Replica counts per tick: int32 holds any count replay simulates (at most 100,000) in
# half the memory of int64 (a 28-day replay at 2 s ticks: 1.2 million ticks per column).
TICK_INT = np.int32
# Ticks the fast engine turns into Python lists at a time.
LOOP_BLOCK = 1 << 15


@dataclass
class ReplayResult:
    """Per-tick arrays of one replay, plus what the report needs to integrate by second."""

    policy: Policy
    startup_delay: float
    times: np.ndarray          # the samples the windows got: the rows and the seconds they hold
    values: np.ndarray         # and their values
    ticks: np.ndarray          # int64 unix seconds
    stable: np.ndarray         # float64, NaN where there was no data
    panic: np.ndarray          # float64, NaN where there was no data
    desired: np.ndarray        # int32 replicas after each tick's decision
    ready: np.ndarray          # int32 ready replicas the decider saw
    in_panic: np.ndarray       # bool
    ebc: np.ndarray            # float64 excess burst capacity, NaN where invalid
    lifetimes: list[tuple[float, float]]   # every replica's (ready_at, removed_at)
    forecast: np.ndarray | None = None     # upper forecast per tick (NaN: none), if predicting
    forecast_point: np.ndarray | None = None
    floor: np.ndarray | None = None        # int64 replica floor per tick (act mode)
    unknown: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    resolution: float = 1.0                # seconds each row of the recording held
    rows: int = 0                          # rows in the recording
    cache: dict = field(default_factory=dict, repr=False, compare=False)   # for reports
    schedule_floor: np.ndarray | None = None   # int64 floor of the open schedule windows

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
                    startup_delay: float = 0.0, *, resolution: float | None = None
                    ) -> ReplayResult:
    """The reference engine: the daemon's per-tick pipeline over a recording (rows at
    ``resolution`` seconds; None: detected)."""
    series = per_second(times, values, resolution)
    ticks = tick_times(series.times, policy.tick_interval)
    n = len(ticks)
    scaler = PolicyScaler(policy)
    workload = SimulatedWorkload(policy.initial_replicas, startup_delay)
    out = _Arrays(n)
    times_l, values_l = series.times.tolist(), series.values.tolist()
    unknown_l = series.unknown.tolist()
    j = k = 0
    for i, t in enumerate(ticks.tolist()):
        j2, k2 = bisect_right(times_l, t, j), bisect_right(unknown_l, t, k)
        scaler.observe(zip(times_l[j:j2], values_l[j:j2]), unknown_l[k:k2])
        j, k = j2, k2
        ready = workload.ready(t)
        result = scaler.tick(t, ready, workload.replicas)
        workload.scale(t, result.replicas)
        out.set(i, result.replicas, ready, result.in_panic, result.stable, result.panic,
                result.decision.excess_burst_capacity if result.decision.valid else math.nan)
        if result.advice is not None:
            out.set_forecast(i, result.advice, result.floor)
    return out.result(policy, startup_delay, series, ticks, workload, len(times))


def replay(policy: Policy, times: np.ndarray, values: np.ndarray, startup_delay: float = 0.0,
           progress: Progress | None = None, *, resolution: float | None = None,
           seconds: Seconds | None = None, windows: tuple | None = None,
           forecast: tuple | None = None) -> ReplayResult:
    """The fast engine; same results as :func:`replay_per_tick`. ``seconds``,
    ``windows`` and ``forecast``, when given, are what :func:`per_second`,
    :func:`_windows` and :func:`_forecast` return for this recording and this policy's
    ticks: ``scaler tune`` computes them once for the variants that share them."""
    series = seconds or per_second(times, values, resolution)
    ticks = tick_times(series.times, policy.tick_interval)
    n = len(ticks)
    decider = Decider(policy)
    stable, panic, empty = windows or _windows(policy, series, ticks)
    # With no panic data the decider reads the stable average in its place.
    blind = np.isnan(panic)
    panic_read = panic if np.array_equal(blind, empty) else np.where(blind, stable, panic)
    shared_forecast, forecast = forecast, None
    forecast_point = floor = None
    if policy.prediction.enabled:
        forecast, forecast_point, floor = shared_forecast or _forecast(
            policy, decider, series.times, series.values, ticks)
    loop_floor = floor   # the floor per tick the decider is given (None: none)
    scheduled = None
    if policy.schedules:    # the schedules' floor joins the forecast's, as in the pipeline
        from scaler.decide.schedules import floor_series

        scheduled = floor_series(policy.schedules, ticks)
        loop_floor = scheduled if floor is None else np.maximum(floor, scheduled)
    if progress:
        progress(0.2)

    workload = SimulatedWorkload(policy.initial_replicas, startup_delay)
    desired = np.empty(n, dtype=TICK_INT)
    ready_out = np.empty(n, dtype=TICK_INT)
    panic_out = np.zeros(n, dtype=bool)
    t0 = int(ticks[0]) if n else 0
    step = int(policy.tick_interval)
    # While skipping, ticks from skip_from on repeat the steady tick skip_from - 1: the
    # decider's raw stable count stays skip_stable, its raw panic count under skip_panic
    # (kpa.Steady) and the forecast floor at skip_floor.
    skipping = False
    skip_from = skip_panic = skip_floor = 0
    skip_stable = 0.0
    replicas = workload.replicas
    ready = 0
    report_every = max(1, n // 50)
    for b0 in range(0, n, LOOP_BLOCK):
        b1 = min(n, b0 + LOOP_BLOCK)
        # Python lists index ~10x faster than arrays in the loop; one block of ticks at a
        # time keeps them (a Python object per tick and column) to a few MB. NaN (no data)
        # never compares equal, so a tick without data always takes the full path.
        dspc_l = kpa_batch.raw_counts(decider.spec, stable[b0:b1]).tolist()
        dppc_l = kpa_batch.raw_counts(decider.spec, panic_read[b0:b1]).tolist()
        floor_l = loop_floor[b0:b1].tolist() if loop_floor is not None else None
        stable_l, panic_l, empty_l = (stable[b0:b1].tolist(), panic[b0:b1].tolist(),
                                      empty[b0:b1].tolist())
        for i in range(b0, b1):
            j = i - b0
            if skipping:
                if (dspc_l[j] == skip_stable and dppc_l[j] < skip_panic
                        and (floor_l is None or floor_l[j] == skip_floor)):
                    continue
                desired[skip_from:i] = replicas
                ready_out[skip_from:i] = ready
                decider.fast_forward(t0 + (i - 1) * step)
                skipping = False
            t = t0 + i * step
            current = workload.replicas
            ready = workload.ready(t)
            floor_i = 0 if floor_l is None else floor_l[j]
            p = panic_l[j]   # NaN: the panic window alone has no data
            _, replicas = decider.step(t, ready, current, None if empty_l[j] else stable_l[j],
                                       None if p != p else p, floor_i)
            workload.scale(t, replicas)
            desired[i] = replicas
            ready_out[i] = ready
            panic_out[i] = decider.in_panic
            steady = decider.steady(t)
            if steady is not None:
                skipping = True
                skip_from = i + 1
                skip_stable, skip_panic = steady.raw_stable, steady.panic_limit
                skip_floor = floor_i
            if progress and i % report_every == 0:
                progress(0.2 + 0.6 * i / n)
    if skipping:
        desired[skip_from:] = replicas
        ready_out[skip_from:] = ready

    ebc = kpa_batch.excess_burst_capacity(decider.spec, ready_out, panic_read)
    return ReplayResult(policy, startup_delay, series.times, series.values, ticks, stable,
                        panic, desired, ready_out, panic_out, ebc,
                        workload.all_lifetimes(_end(ticks, policy)), forecast, forecast_point,
                        floor, series.unknown, series.resolution, len(times),
                        schedule_floor=scheduled)


def _windows(policy: Policy, series: Seconds,
             ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stable, panic, no stable data) for every tick: the averages NaN where the stable
    window has no data, and the panic average NaN too where the panic window alone has
    none."""
    windows = BatchWindows(series.times, series.values, ticks, series.unknown)
    # One window after the other: side by side on two threads they were a few percent
    # faster but held both windows' temporaries at once (a 28-day recording: +100 MiB).
    stable, empty = windows.averages(policy.stable_window, policy.window_algorithm)
    stable[empty] = np.nan
    panic, panic_empty = windows.averages(policy.panic_window, policy.window_algorithm)
    del windows
    panic[empty | panic_empty] = np.nan
    return stable, panic, empty


def _forecast(policy: Policy, decider: Decider, times: np.ndarray, values: np.ndarray,
              ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper forecast, point forecast, replica floor) for every tick."""
    from scaler.decide import predict

    series = predict.forecast_series(policy.prediction, times, values, ticks,
                                     decider.spec.target_value)
    # The per-tick engine records NaN for ticks where the forecaster gives no advice.
    if policy.prediction.mode == "act":
        floor = predict.floor_series(series, decider.spec.target_value)
    else:
        floor = np.zeros(len(ticks), dtype=np.int64)
    return series.upper, series.point, floor


def _end(ticks: np.ndarray, policy: Policy) -> float:
    return float(ticks[-1] + policy.tick_interval) if len(ticks) else 0.0


class _Arrays:
    """Per-tick outputs of the reference engine."""

    def __init__(self, n: int) -> None:
        self.desired = np.empty(n, dtype=TICK_INT)
        self.ready = np.empty(n, dtype=TICK_INT)
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
            if panic is not None:
                self.panic[i] = panic
        self.ebc[i] = ebc

    def result(self, policy: Policy, startup_delay: float, series: Seconds, ticks: np.ndarray,
               workload: SimulatedWorkload, rows: int) -> ReplayResult:
        return ReplayResult(policy, startup_delay, series.times, series.values, ticks,
                            self.stable, self.panic, self.desired, self.ready, self.in_panic,
                            self.ebc, workload.all_lifetimes(_end(ticks, policy)),
                            self.forecast, self.forecast_point, self.floor, series.unknown,
                            series.resolution, rows)
