"""Forecast quality for the replay report (reference/predictive.md §4.3 item 7)."""

from __future__ import annotations

import math

import numpy as np

from scaler.policy import PredictionPolicy


def realised(spec: PredictionPolicy, times, values, ticks) -> np.ndarray:
    """What each tick's forecast aims at: the mean load of the grid bucket holding
    ``tick + horizon`` (NaN when that bucket has no valid sample)."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(times) & np.isfinite(values) & (values >= 0)
    k = np.floor(times[ok] / spec.grid).astype(np.int64)
    target = np.floor((np.asarray(ticks, dtype=np.float64) + spec.horizon) / spec.grid)
    out = np.full(target.size, np.nan)
    if k.size == 0:
        return out
    uniq, inverse = np.unique(k, return_inverse=True)
    seconds = np.unique(np.stack([inverse, np.floor(times[ok]).astype(np.int64)]), axis=1)
    means = (np.bincount(inverse, weights=values[ok])
             / np.bincount(seconds[0], minlength=uniq.size))
    pos = np.searchsorted(uniq, target.astype(np.int64))
    hit = (pos < uniq.size) & (uniq[np.minimum(pos, uniq.size - 1)] == target)
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
