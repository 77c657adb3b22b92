"""Knative's 1-second bucketed window averages, incremental and batched.

:class:`BucketWindow` is a port of Knative's ``TimedFloat64Buckets`` (linear) and
``WeightedFloat64Buckets`` (weighted-exponential) from
``pkg/autoscaler/aggregation/bucketing.go``, including its floating-point behaviour:
the window total is a running sum that values enter and leave one by one, averages are
rounded to 6 decimals with Go's ``math.Round``, and the weighted multipliers are built by
repeated multiplication. Gaps between writes count as zeros; trailing silence and a
partial first window are left out of the divisor; a window whose last write is more than
a window ago is empty.

``scaler.decide.windows_batch`` computes the same averages for every tick of a whole recording
at once with array operations, for replay; this module stays free of numpy so the daemon
does not load it.

Pure: no I/O, no clock; times are unix seconds passed in.
"""

from __future__ import annotations

import math

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
