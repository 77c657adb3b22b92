"""The forecast for every tick of a recording at once (replay's fast path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scaler.decide.predict.advice import new_core
from scaler.policy import PredictionPolicy


@dataclass(frozen=True)
class ForecastSeries:
    """Per-tick advice for a replay: NaN where the Advice field was None."""

    point: np.ndarray
    upper: np.ndarray
    active: np.ndarray       # bool
    coverage: np.ndarray | None = None   # seasonal-level: the band's coverage (NaN: none)


def floor_series(series: ForecastSeries, target_value: float) -> np.ndarray:
    """:func:`replica_floor` for every tick of a :class:`ForecastSeries` (int64)."""
    upper = np.where(series.active, series.upper, 0.0)
    return np.ceil(upper / target_value).astype(np.int64)


def forecast_series(spec: PredictionPolicy, times, values, ticks,
                    target_value: float | None = None, shape: Any = None) -> ForecastSeries:
    """Advice at every tick of a recording, exactly as a :class:`Forecaster` fed every
    sample with time <= tick would give at that tick. ``times`` must be non-decreasing;
    ``target_value`` is the decider's (seasonal-level needs it); ``shape``: seasonal-level's
    fixed sizes (:class:`~scaler.decide.predict.seasonal.Shape`), for benchmarks."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    ticks = np.asarray(ticks, dtype=np.float64)
    if times.shape != values.shape or times.ndim != 1:
        raise ValueError("times and values must be 1-D arrays of the same length")
    ok = np.isfinite(times) & np.isfinite(values) & (values >= 0)
    t, v = times[ok], values[ok]
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise ValueError("times must be non-decreasing")
    n_ticks = ticks.size
    point = np.full(n_ticks, np.nan)
    upper = np.full(n_ticks, np.nan)
    active = np.zeros(n_ticks, dtype=bool)
    coverage = np.full(n_ticks, np.nan)
    if t.size == 0:
        return ForecastSeries(point, upper, active, coverage)
    k = np.floor(t / spec.grid).astype(np.int64)
    change = np.flatnonzero(k[1:] != k[:-1]) + 1
    first = np.concatenate(([0], change))
    group = np.zeros(k.size, dtype=np.int64)
    group[change] = 1
    np.cumsum(group, out=group)
    means = np.bincount(group, weights=v) / _seconds_per_bucket(t, group)
    buckets = k[first].tolist()
    means_l = means.tolist()
    # Event i: the first sample of bucket i + 1 arrives and bucket i becomes final.
    n_events = len(buckets) - 1
    ev_time = t[first[1:]]
    ev_point = np.full(n_events, np.nan)
    ev_upper = np.full(n_events, np.nan)
    ev_ready = np.zeros(n_events, dtype=bool)
    ev_end = np.full(n_events, np.inf)   # inf: no history (never stale, never active)
    ev_coverage = np.full(n_events, np.nan)
    core = new_core(spec, target_value, shape)
    for i in range(n_events):
        core.complete(buckets[i], means_l[i], buckets[i + 1])
        if core.last is None:
            continue
        a = core.advice
        if a.point is not None:
            ev_point[i] = a.point
        if a.upper is not None:
            ev_upper[i] = a.upper
        ev_ready[i] = a.active
        ev_end[i] = core.end
        if a.coverage is not None:
            ev_coverage[i] = a.coverage
    idx = np.searchsorted(ev_time, ticks, side="right") - 1
    seen = idx >= 0
    j = idx[seen]
    point[seen] = ev_point[j]
    upper[seen] = ev_upper[j]
    fresh = (ticks[seen] - ev_end[j]) < spec.stale_seconds
    active[seen] = ev_ready[j] & fresh
    coverage[seen] = ev_coverage[j]
    return ForecastSeries(point, upper, active, coverage)


def _seconds_per_bucket(t: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Seconds with samples in each group (t sorted): runs of equal floor(t) per group."""
    sec = np.floor(t)
    new = np.ones(t.size, dtype=bool)
    new[1:] = (sec[1:] != sec[:-1]) | (group[1:] != group[:-1])
    return np.bincount(group, weights=new)
