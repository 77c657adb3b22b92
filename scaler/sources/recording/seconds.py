"""A recording, second by second: its resolution, the seconds each row holds, the gaps.

A recording is a series of rows at some resolution: one per second from a 1 s scrape,
one per 15 s from ``scaler record --step 15s`` or a dashboard export. The windows keep
1 s buckets, so before a replay (or the daemon's loop run on a recording) every row is
spread over the seconds it stands for, and every second that no row stands for is
*unknown* — never zero load.

* The resolution is the most common interval between rows (to the millisecond), unless
  given: rows every 15 s → 15 s; one row only → 1 s.
* A row at time t holds its value over [t, t + resolution): besides its own 1 s bucket
  (floor(t), as always) it fills every later whole second s whose bucket [s, s + 1) lies
  inside that span, up to the next row's bucket. Each filled second is a sample at time s,
  so at tick T the windows see exactly what a 1 s recording of the held value would show.
* A second from the first row's bucket to the last filled one that no row fills is
  unknown.

A dense 1 s recording — a row in every second — fills nothing and has no unknown second:
it replays exactly as Knative's 1 s stream would. Rows at 1772409600 and 1772409615 at a
15 s resolution: the first fills 1772409601..1772409614. At a 1 s resolution instead,
those 14 seconds are unknown.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Seconds:
    """A recording spread over whole seconds: the samples the windows get, in time order
    (the rows and the seconds they fill), the unknown seconds (ascending), and the
    resolution that was used."""

    times: np.ndarray      # float64
    values: np.ndarray     # float64
    unknown: np.ndarray    # int64 whole unix seconds
    resolution: float


def detect_resolution(times: np.ndarray) -> float:
    """The most common interval between consecutive rows at different times, in seconds to
    the millisecond (the smallest of equally common ones); 1 s with fewer than two
    distinct times. Rows every 15 s with one late row → 15.0."""
    return _resolution(np.diff(np.asarray(times, dtype=np.float64)))


def _resolution(intervals: np.ndarray) -> float:
    if not len(intervals):
        return 1.0
    first = intervals[0]
    if first > 0 and (intervals == first).all():   # the usual recording: one interval
        return round(float(first) * 1000.0) / 1000.0
    ms = np.rint(intervals * 1000.0).astype(np.int64)
    ms = ms[ms > 0]
    if not len(ms):
        return 1.0
    values, counts = np.unique(ms, return_counts=True)
    return int(values[np.argmax(counts)]) / 1000.0


def per_second(times: np.ndarray, values: np.ndarray, resolution: float | None = None) -> Seconds:
    """Spread rows (ascending ``times``) over the seconds they hold, at ``resolution``
    seconds (None: detected), and list the seconds no row holds."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    intervals = np.diff(times)
    if resolution is None:
        resolution = _resolution(intervals)
    if not resolution > 0:
        raise ValueError(f"resolution must be positive, not {resolution}")
    none = np.zeros(0, dtype=np.int64)
    if not len(intervals) or intervals.max() <= 1.0:
        # Rows at most a second apart fall in the same or the next bucket (the usual
        # recording): nothing to fill, nothing unknown.
        return Seconds(times, values, none, resolution)
    bucket = np.floor(times).astype(np.int64)
    step = np.diff(bucket)
    # The last whole second each row fills: its span's last full bucket, and never the
    # next row's bucket or beyond.
    until = np.floor(times + resolution).astype(np.int64) - 1
    until[:-1] = np.minimum(until[:-1], bucket[1:] - 1)
    fills = np.maximum(until - bucket, 0)
    if fills.any():
        total = int(fills.sum())
        # Each row, then the seconds it fills: row i moves down by the fills before it.
        row_at = np.arange(len(times)) + np.concatenate(([0], np.cumsum(fills)[:-1]))
        out_t = np.empty(len(times) + total, dtype=np.float64)
        out_v = np.empty(len(times) + total, dtype=np.float64)
        out_t[row_at] = times
        out_v[row_at] = values
        filled = np.ones(len(out_t), dtype=bool)
        filled[row_at] = False
        owner = np.repeat(np.arange(len(times)), fills)
        # The k-th second a row fills is its bucket + k + 1.
        rank = np.arange(total) - np.repeat(np.cumsum(fills) - fills, fills)
        out_t[filled] = (bucket[owner] + rank + 1).astype(np.float64)
        out_v[filled] = values[owner]
        times, values = out_t, out_v
        bucket = np.floor(times).astype(np.int64)
        step = np.diff(bucket)
    gap = np.flatnonzero(step > 1)
    if not len(gap):
        return Seconds(times, values, none, resolution)
    size = step[gap] - 1
    start = np.repeat(bucket[gap] + 1, size)
    rank = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    return Seconds(times, values, start + rank, resolution)
