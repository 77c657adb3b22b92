"""Forecast quality for the replay report (reference/predictive.md §4.3 item 7)."""

from __future__ import annotations

import math

import numpy as np

from scaler.policy import PredictionPolicy


def realised(spec: PredictionPolicy, times, values, ticks) -> np.ndarray:
    """What each tick's forecast aims at: the mean load of the grid bucket holding
    ``tick + horizon`` (NaN when that bucket has no valid sample).

    ``times`` are in time order (a recording), so buckets and seconds are runs: counted with
    a difference and ``np.bincount`` in one pass instead of sorting the samples."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(times) & np.isfinite(values) & (values >= 0)
    # A recording's samples are all valid: then no copies (a 28-day one: 19 MB each).
    t, v = (times, values) if ok.all() else (times[ok], values[ok])
    del ok
    target = np.floor((np.asarray(ticks, dtype=np.float64) + spec.horizon) / spec.grid)
    out = np.full(target.size, np.nan)
    if t.size == 0:
        return out
    idx = np.floor(t / spec.grid).astype(np.int64)
    k0 = int(idx[0])
    idx -= k0
    n = int(idx[-1]) + 1
    new = np.ones(t.size, dtype=bool)
    second = np.floor(t)
    np.not_equal(second[1:], second[:-1], out=new[1:])
    del second
    new[1:] |= idx[1:] != idx[:-1]
    seconds = np.bincount(idx, weights=new, minlength=n)
    sums = np.bincount(idx, weights=v, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(seconds > 0, sums / np.maximum(seconds, 1), np.nan)
    pos = target.astype(np.int64) - k0
    hit = (pos >= 0) & (pos < n)
    out[hit] = means[pos[hit]]
    return out


def quality(point, actual, upper=None) -> dict:
    """MAE and MAPE of ``point`` against ``actual``, and coverage: the share of ticks where
    the forecast (``upper`` when given, else ``point``) was at or above the actual.

    Ticks where either side is NaN are left out; MAPE also leaves out actual == 0.
    """
    point = np.asarray(point, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    cover = point if upper is None else np.asarray(upper, dtype=np.float64)
    both = np.isfinite(point) & np.isfinite(actual)
    err = np.abs(point[both] - actual[both])
    pos = actual[both] > 0
    with_cover = np.isfinite(cover) & np.isfinite(actual)
    return {
        "n": int(both.sum()),
        "mae": float(err.mean()) if err.size else math.nan,
        "mape": float((err[pos] / actual[both][pos]).mean()) if pos.any() else math.nan,
        "coverage": (float((cover[with_cover] >= actual[with_cover]).mean())
                     if with_cover.any() else math.nan),
    }
