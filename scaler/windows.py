"""Knative's 1-second bucketed window averages, incremental and batched.

:class:`BucketWindow` is a port of Knative's ``TimedFloat64Buckets`` (linear) and
``WeightedFloat64Buckets`` (weighted-exponential) from
``pkg/autoscaler/aggregation/bucketing.go``, including its floating-point behaviour:
the window total is a running sum that values enter and leave one by one, averages are
rounded to 6 decimals with Go's ``math.Round``, and the weighted multipliers are built by
repeated multiplication. Gaps between writes count as zeros; trailing silence and a
partial first window are left out of the divisor; a window whose last write is more than
a window ago is empty.

:func:`batch_averages` computes the same averages for every tick of a whole recording at
once with array operations. It replays the very same sequence of floating-point
additions and subtractions (``np.add.accumulate`` is strictly sequential), so its
results are identical to feeding a :class:`BucketWindow` sample by sample — a property
test holds it to that.

Pure: no I/O, no clock; times are unix seconds passed in.
"""

from __future__ import annotations

import math

import numpy as np

LINEAR = "linear"
WEIGHTED = "weighted-exponential"

# Weighted-exponential constants (bucketing.go): the weights of the buckets in the window
# must sum to at least 0.9999, and never decay slower than 0.2 per bucket.
_WEIGHT_PRECISION_COMPLEMENT = 0.0001   # Go folds the constant 1 - 0.9999 exactly
_MIN_EXPONENT = 0.2


def round6(x: float) -> float:
    """Knative's roundToNDigits(6, x): Go's math.Round (halves away from zero) at 1e-6."""
    y = x * 1e6
    t = math.trunc(y)
    if abs(y - t) >= 0.5:
        t += math.copysign(1.0, y)
    return t / 1e6


def smoothing_coefficient(buckets: int) -> float:
    """The weighted-exponential decay: 6 buckets → 0.78456…, 60 and more → 0.2."""
    return max(1 - math.pow(_WEIGHT_PRECISION_COMPLEMENT, 1 / buckets), _MIN_EXPONENT)


def go_pow_int(x: float, n: int) -> float:
    """Go's math.Pow(x, n) for a whole n ≥ 0, step for step (repeated squaring on a
    normalised mantissa), so results match Go to the last bit where C's pow may not."""
    if n == 0 or x == 1:
        return 1.0
    if n == 1:
        return x
    a1, ae = 1.0, 0
    x1, xe = math.frexp(x)
    i = n
    while i:
        if xe < -(1 << 12) or (1 << 12) < xe:
            ae += xe
            break
        if i & 1:
            a1 *= x1
            ae += xe
        x1 *= x1
        xe <<= 1
        if x1 < 0.5:
            x1 += x1
            xe -= 1
        i >>= 1
    return math.ldexp(a1, ae)


class BucketWindow:
    """A window of 1 s buckets over the last ``window`` seconds (Knative's bucket ring)."""

    def __init__(self, window: int, algorithm: str = LINEAR) -> None:
        if window < 1 or window != int(window):
            raise ValueError(f"window must be a whole number of seconds >= 1, got {window}")
        if algorithm not in (LINEAR, WEIGHTED):
            raise ValueError(f"unknown window algorithm {algorithm!r}")
        self.window = int(window)
        self.algorithm = algorithm
        self._buckets = [0.0] * self.window
        self._first: int | None = None   # first bucket of the current run of data
        self._last: int | None = None    # last bucket written; None = never (Go's zero time)
        self._total = 0.0
        self._coeff = smoothing_coefficient(self.window)

    @property
    def last_write(self) -> int | None:
        return self._last

    def record(self, t: float, value: float) -> None:
        """Add ``value`` to the bucket of time ``t``; zero any buckets skipped since the last write."""
        n = self.window
        bt = math.floor(t)
        if bt != self._last:
            if self._last is not None and not bt + n > self._last:
                return   # older than a whole window: nothing it could still affect
            if self._first is None or self._first > bt:
                self._first = bt
            if self._last is None or bt > self._last:
                if self._last is None or bt - self._last >= n:
                    # A whole window of silence: start over, a partial window again.
                    self._first = bt
                    self._buckets = [0.0] * n
                    self._total = 0.0
                else:
                    for i in range(self._last + 1, bt + 1):
                        j = i % n
                        self._total -= self._buckets[j]
                        self._buckets[j] = 0.0
                self._last = bt
        self._buckets[bt % n] += value
        self._total += value

    def is_empty(self, now: float) -> bool:
        return self._last is None or math.floor(now) - self._last > self.window

    def average(self, now: float) -> float:
        """The window average at ``now`` (0 when the last write is a window or more ago)."""
        if self._last is None:
            return 0.0
        now_b = math.floor(now)
        d = now_b - self._last
        n = self.window
        if self.algorithm == WEIGHTED:
            return self._weighted(now_b, d)
        assert self._first is not None
        if d <= 0:
            buckets = min(float(self._last - self._first) + 1, float(n))
            return round6(self._total / buckets)
        if d < n:
            ret = self._total
            for i in range(self._last + 1, now_b + 1):
                ret -= self._buckets[i % n]
            buckets = min(float(self._last - self._first) + 1, float(n - d))
            return round6(ret / buckets)
        return 0.0

    def _weighted(self, now_b: int, d: int) -> float:
        n = self.window
        if d > n:
            return 0.0
        m = self._coeff
        multiplier = m
        count = n
        if d > 0:
            multiplier *= go_pow_int(1 - m, d)
            count -= d
        assert self._last is not None
        start = self._last + n
        ret = 0.0
        for i in range(count):
            ret += self._buckets[(start - i) % n] * multiplier
            multiplier *= 1 - m
        return ret


# --------------------------------------------------------------------------------------
# Batched: every tick of a recording at once.


def _running_bucket_sums(buckets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each sample, the sum of its bucket's samples up to and including it, added
    left to right from 0.0 exactly as ``buckets[i] += v`` does one record at a time."""
    n = len(values)
    run_start = np.ones(n, dtype=bool)
    run_start[1:] = buckets[1:] != buckets[:-1]
    start_pos = np.flatnonzero(run_start)
    rank = np.arange(n) - np.repeat(start_pos, np.diff(np.append(start_pos, n)))
    sums = values.copy()
    if not n:
        return sums
    # Samples sharing a bucket are rare; add them in order, one rank at a time.
    for r in range(1, int(rank.max(initial=0)) + 1):
        pos = np.flatnonzero(rank == r)
        sums[pos] = sums[pos - 1] + values[pos]
    return sums


class BatchWindows:
    """Precomputed bucket structure of a recording, shared by the stable and panic windows.

    ``times``/``values`` are the samples (ascending times); ``ticks`` the decision times
    (whole seconds, ascending). At tick T every sample with time <= T has been recorded.
    """

    def __init__(self, times: np.ndarray, values: np.ndarray, ticks: np.ndarray) -> None:
        times = np.asarray(times, dtype=np.float64)
        self.values = np.asarray(values, dtype=np.float64)
        self.ticks = np.asarray(ticks, dtype=np.int64)
        ns = len(self.values)
        self.sample_bucket = np.floor(times).astype(np.int64)
        starts = np.ones(ns, dtype=bool)
        starts[1:] = self.sample_bucket[1:] != self.sample_bucket[:-1]
        self.sample_pos = np.cumsum(starts) - 1          # index of each sample's bucket
        self.bucket_first_sample = np.flatnonzero(starts)
        self.bucket = self.sample_bucket[self.bucket_first_sample]   # written buckets
        self.running = _running_bucket_sums(self.sample_bucket, self.values)
        self.bucket_sum = self.running[np.append(self.bucket_first_sample[1:], ns) - 1] if ns else self.running
        # One sample in every second, no gaps: the common shape of a recording, whose
        # update sequence is a simple interleave (see _dense_running_totals).
        self.dense = bool(ns) and len(self.bucket) == ns and int(self.bucket[-1] - self.bucket[0]) == ns - 1
        # Samples recorded by each tick; the newest of them and its bucket.
        self.recorded = np.searchsorted(times, self.ticks, "right")
        self.last_sample = np.maximum(self.recorded - 1, 0)
        self.last = self.sample_bucket[self.last_sample] if ns else np.zeros(len(ticks), np.int64)

    def averages(self, window: int, algorithm: str) -> tuple[np.ndarray, np.ndarray]:
        """(average per tick, empty per tick) for a window of ``window`` seconds."""
        n = int(window)
        ticks = self.ticks
        avg = np.zeros(len(ticks), dtype=np.float64)
        has = self.recorded > 0
        if not len(self.values):
            return avg, np.ones(len(ticks), dtype=bool)
        last_sample, last = self.last_sample, self.last
        d = ticks - last
        empty = ~has | (d > n)

        bucket = self.bucket
        # A run (segment) restarts whenever a write comes a whole window after the last.
        restart = np.ones(len(bucket), dtype=bool)
        restart[1:] = np.diff(bucket) >= n
        segment = np.cumsum(restart) - 1
        segment_start = bucket[restart]
        first = segment_start[segment[self.sample_pos[last_sample]]]

        live = has & (d < n)
        if algorithm == LINEAR:
            total = self._running_totals(n, segment, restart)[last_sample]
            ret = total
            gap = live & (d > 0)
            if gap.any():
                # Buckets that fell out of the window since the last write are still in
                # their slots; Knative subtracts them one by one, oldest first.
                idx = np.flatnonzero(gap)
                lo_b = np.maximum(first[idx], last[idx] + 1 - n)
                hi_b = ticks[idx] - n
                lo = np.searchsorted(bucket, lo_b, "left")
                hi = np.searchsorted(bucket, hi_b, "right")
                count = np.maximum(hi - lo, 0)
                sub = ret[idx]
                for r in range(int(count.max(initial=0))):
                    m = count > r
                    sub[m] = sub[m] - self.bucket_sum[lo[m] + r]
                ret[idx] = sub
            divisor = np.minimum((last - first).astype(np.float64) + 1.0,
                                 (n - np.maximum(d, 0)).astype(np.float64))
            with np.errstate(divide="ignore", invalid="ignore"):
                raw = ret / divisor
            avg = np.where(live, _round6(raw), 0.0)
            return avg, empty
        return self._weighted(n, live, d, last, last_sample, first), empty

    def _running_totals(self, n: int, segment: np.ndarray, restart: np.ndarray) -> np.ndarray:
        """Knative's windowTotal after each sample, via the exact sequence of its updates."""
        bucket, bucket_sum = self.bucket, self.bucket_sum
        nb = len(bucket)
        ns = len(self.values)
        if self.dense:
            return _dense_running_totals(self.values, n)
        # Bucket w leaves the total when the write position first reaches w + n within
        # the same run; the subtraction happens before that bucket's first value is added,
        # in the order of w. leave_at is non-decreasing in w, so the subtractions are
        # already grouped by the bucket they precede.
        leave_at = np.searchsorted(bucket, bucket + n, "left")
        leaves = leave_at < nb
        leaves[leaves] = segment[leave_at[leaves]] == segment[leaves]
        sub_at = leave_at[leaves]
        subs_before = np.bincount(sub_at, minlength=nb)
        samples_in = np.diff(np.append(self.bucket_first_sample, ns))
        # Op stream: per bucket, its subtractions then its samples.
        offset = np.concatenate(([0], np.cumsum(subs_before + samples_in)[:-1]))
        ops = np.empty(len(sub_at) + ns, dtype=np.float64)
        if len(sub_at):
            first_sub = np.concatenate(([0], np.cumsum(subs_before)[:-1]))
            rank = np.arange(len(sub_at)) - first_sub[sub_at]
            ops[offset[sub_at] + rank] = -bucket_sum[leaves]
        sample_op = (offset + subs_before)[self.sample_pos] + (
            np.arange(ns) - self.bucket_first_sample[self.sample_pos])
        ops[sample_op] = self.values
        # Each run starts from an exact 0.0; accumulate runs one after the other.
        bounds = np.append(offset[restart], len(ops))
        if len(bounds) == 2:
            np.add.accumulate(ops, out=ops)
        else:
            for a, b in zip(bounds[:-1], bounds[1:]):
                np.add.accumulate(ops[a:b], out=ops[a:b])
        return ops[sample_op]

    def _weighted(self, n: int, live: np.ndarray, d: np.ndarray, last: np.ndarray,
                  last_sample: np.ndarray, first: np.ndarray) -> np.ndarray:
        m = smoothing_coefficient(n)
        decay = 1 - m
        avg = np.zeros(len(self.ticks), dtype=np.float64)
        bucket, bucket_sum = self.bucket, self.bucket_sum
        # The newest bucket may still be filling at the tick: use its running sum.
        newest = self.running[last_sample]
        for dz in np.unique(d[live]):
            dz = int(dz)
            idx = np.flatnonzero(live & (d == dz))
            count = n - dz
            mult = np.empty(count, dtype=np.float64)
            mult[0] = m * go_pow_int(decay, dz) if dz > 0 else m
            for i in range(1, count):
                mult[i] = mult[i - 1] * decay
            ret = newest[idx] * mult[0]
            # Older buckets, newest first; zero buckets add exactly nothing, so skip them.
            lo_b = np.maximum(first[idx], last[idx] - count + 1)
            lo = np.searchsorted(bucket, lo_b, "left")
            hi = np.searchsorted(bucket, last[idx], "left")   # excludes the newest bucket
            k = hi - lo
            for r in range(int(k.max(initial=0))):
                sel = k > r
                pos = hi[sel] - 1 - r
                ret[sel] = ret[sel] + bucket_sum[pos] * mult[last[idx][sel] - bucket[pos]]
            avg[idx] = ret
        return avg


def _dense_running_totals(values: np.ndarray, n: int) -> np.ndarray:
    """windowTotal after each sample when there is exactly one sample per second and no
    gap: each new value is added right after the value n seconds older is taken out —
    the same operations, in the same order, as the general op stream."""
    ns = len(values)
    out = ns - n if ns > n else 0
    ops = np.empty(ns + out, dtype=np.float64)
    ops[: min(n, ns)] = values[:n]
    if out:
        ops[n::2] = -values[:out]
        ops[n + 1::2] = values[n:]
    np.add.accumulate(ops, out=ops)
    return np.concatenate((ops[: min(n, ns)], ops[n + 1::2])) if out else ops


def _round6(x: np.ndarray) -> np.ndarray:
    """Vectorised :func:`round6`."""
    with np.errstate(invalid="ignore"):
        y = x * 1e6
        t = np.trunc(y)
        t = np.where(np.abs(y - t) >= 0.5, t + np.copysign(1.0, y), t)
    return t / 1e6
