"""Knative's 1-second bucketed window averages, incremental — and what unknown seconds do to them.

:class:`BucketWindow` is a port of Knative's ``TimedFloat64Buckets`` (linear) and
``WeightedFloat64Buckets`` (weighted-exponential) from
``pkg/autoscaler/aggregation/bucketing.go``, including its floating-point behaviour:
the window total is a running sum that values enter and leave one by one, averages are
rounded to 6 decimals with Go's ``math.Round`` (which keeps the sign of -0.0), the
weighted coefficient is the very float Go's ``math.Pow`` gives, and the weighted
multipliers are built by repeated multiplication. Gaps between writes count as zeros;
trailing silence and a partial first window are left out of the divisor; a window whose
last write is more than a window ago is empty.

On top of Knative, a window knows which seconds are *unknown* (:meth:`BucketWindow.mark_unknown`):
a second the metric source could not answer for — a failed scrape, a stale series, a
coarse recording's gap. An unknown second is never a zero load:

* with no unknown second in the window, every number is Knative's, bit for bit;
* otherwise the average is over the known seconds only: linear divides Knative's total by
  the known seconds of Knative's divisor span; weighted-exponential rescales Knative's sum
  by the full window's weight over the weight of the known seconds of the current run
  (so a constant load reads as Knative's full window of it);
* a window whose span (from the current run's first write, at most a window back, to now)
  is more than half unknown, or holds no known second in its divisor, has no data;
* an outage — a run of at least half a window of unknown seconds — that outnumbers the
  known seconds before it in the window ends the run: the next write starts a fresh
  partial window, as Knative does after a whole window of silence, so decisions resume
  with the first clean second instead of waiting for the outage to leave the window.

``scaler.decide.windows_batch`` computes the same values for every tick of a whole
recording at once with array operations, for replay; this module stays free of numpy so
the daemon does not load it.

Pure: no I/O, no clock; times are unix seconds passed in.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_left, bisect_right

LINEAR = "linear"
WEIGHTED = "weighted-exponential"

# The weighted-exponential coefficient Knative computes, max(1 - Pow(0.0001, 1/n), 0.2),
# exactly as Go's math.Pow gives it on amd64 (knative/serving 98e5ef90, Go 1.19): for 3,
# 5, 6, 11, 23, 25, 27, 31, 34 and 35 buckets it differs from C's pow by 1 to 4 ulps, and
# that can flip a decision at an integer boundary. From 42 buckets on it is the 0.2 floor.
_GO_COEFFICIENTS = tuple(float.fromhex(h) for h in (
    "0x1.fff2e48e8a71ep-01", "0x1.fae147ae147aep-01", "0x1.e83c2d3b29cp-01",
    "0x1.ccccccccccccdp-01", "0x1.aeda7cea25322p-01", "0x1.91b164c4fd313p-01",
    "0x1.76a55ea2d4d4ep-01", "0x1.5e1764edbdb78p-01", "0x1.47ff2a61354fp-01",
    "0x1.342b4c0456da6p-01", "0x1.225e0f651c875p-01", "0x1.1259c44fa1806p-01",
    "0x1.03e5af817ed46p-01", "0x1.ed9f2dd0e590ep-02", "0x1.d5d7a7d79085ap-02",
    "0x1.c029987c78fc4p-02", "0x1.ac5470e8ff2d6p-02", "0x1.9a20ccf9a6fcp-02",
    "0x1.895f1628af6c4p-02", "0x1.79e651612571p-02", "0x1.6b931928b3aep-02",
    "0x1.5e46c0b49361p-02", "0x1.51e69ace24b4p-02", "0x1.465b5f317cceep-02",
    "0x1.3b90a9762c476p-02", "0x1.31748d3187e76p-02", "0x1.27f73ba9a9826p-02",
    "0x1.1f0ab80c3dbfcp-02", "0x1.16a297a46649p-02", "0x1.0eb3cbfe2917ep-02",
    "0x1.073475458629p-02", "0x1.001bbb7dd44ccp-02", "0x1.f2c35adc3c7cp-03",
    "0x1.e5fe48a6c07a8p-03", "0x1.d9db5727d3cc8p-03", "0x1.ce4ed7a33b78p-03",
    "0x1.c34e31a9a83p-03", "0x1.b8cfc3c10b5acp-03", "0x1.aecac826245d8p-03",
    "0x1.a5373d0c8ef3p-03", "0x1.9c0dcfdbc3fbcp-03",
))
_MIN_EXPONENT = 0.2   # bucketing.go: the weights never decay slower than 0.2 per bucket


def round6(x: float) -> float:
    """Knative's roundToNDigits(6, x): Go's math.Round (halves away from zero) at 1e-6.
    Like Go it keeps the sign of zero (-0.0000001 → -0.0) and passes ±Inf and NaN through."""
    y = x * 1e6
    try:
        t = float(math.trunc(y))
    except (OverflowError, ValueError):   # ±Inf, NaN: Go's Round returns them as they are
        return y / 1e6
    if abs(y - t) >= 0.5:
        t += math.copysign(1.0, y)
    return math.copysign(t, y) / 1e6


def smoothing_coefficient(buckets: int) -> float:
    """The weighted-exponential decay for a window of ``buckets`` seconds, as Knative's Go
    code computes it: 6 buckets → 0.7845565309968116 (C's pow: …8117), 42 and more → 0.2."""
    if 1 <= buckets <= len(_GO_COEFFICIENTS):
        return _GO_COEFFICIENTS[buckets - 1]
    return _MIN_EXPONENT


@functools.lru_cache(maxsize=32)
def weight_table(buckets: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(weights, prefix sums) of the weighted window: the weight of the second ``j``
    seconds old is m·(1−m)^j (repeated multiplication), and ``prefix[k]`` the sum of the
    ``k`` newest weights, added newest first. Used only to rescale a window that holds
    unknown seconds; both engines read this one table, so they agree to the bit."""
    m = smoothing_coefficient(buckets)
    weights = [m]
    for _ in range(buckets - 1):
        weights.append(weights[-1] * (1 - m))
    prefix = [0.0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    return tuple(weights), tuple(prefix)


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
    """A window of 1 s buckets over the last ``window`` seconds (Knative's bucket ring),
    plus the seconds in it that are unknown."""

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
        # Unknown seconds, ascending; none more than a window older than the newest second
        # seen. Nearly always empty, and then every number is Knative's.
        self._unknown: list[int] = []
        # The second each slot was last written for: a known second stays known.
        self._written: list[int | None] = [None] * self.window

    @property
    def last_write(self) -> int | None:
        return self._last

    def mark_unknown(self, second: float) -> None:
        """Second ``second`` (a whole unix second) has no known value.

        Sources hand marks and samples over in time order (a mark before any later
        second's samples). A second that holds a sample is known: a mark for it is ignored,
        and a sample for a marked second (a value that came another way, such as an
        activator's poke) makes it known."""
        s = math.floor(second)
        if self._written[s % self.window] == s:
            return
        unknown = self._unknown
        if unknown and s <= unknown[-1]:
            i = bisect_left(unknown, s)
            if i < len(unknown) and unknown[i] == s:
                return
            unknown.insert(i, s)
        else:
            unknown.append(s)
        newest = s if self._last is None else max(s, self._last)
        if unknown[0] < newest - self.window:
            del unknown[:bisect_left(unknown, newest - self.window)]

    def _count_unknown(self, lo: int, hi: int) -> int:
        """Unknown seconds in [lo, hi]."""
        unknown = self._unknown
        return bisect_right(unknown, hi) - bisect_left(unknown, lo)

    def record(self, t: float, value: float) -> None:
        """Add ``value`` to the bucket of time ``t``; zero any buckets skipped since the last write."""
        n = self.window
        bt = math.floor(t)
        if bt != self._last:
            last = self._last
            if last is not None and not bt + n > last:
                return   # older than a whole window: nothing it could still affect
            if self._first is None or self._first > bt:
                self._first = bt
            if last is None or bt > last:
                if last is None or bt - last >= n or (self._unknown and self._outage_ends(bt)):
                    # A whole window of silence, or an outage that outweighs what came
                    # before it: start over, a partial window again.
                    self._first = bt
                    self._buckets = [0.0] * n
                    self._total = 0.0
                else:
                    for i in range(last + 1, bt + 1):
                        j = i % n
                        self._total -= self._buckets[j]
                        self._buckets[j] = 0.0
                self._last = bt
        self._buckets[bt % n] += value
        self._total += value
        self._written[bt % n] = bt
        if self._unknown and bt <= self._unknown[-1]:
            i = bisect_left(self._unknown, bt)
            if i < len(self._unknown) and self._unknown[i] == bt:
                del self._unknown[i]

    def _outage_ends(self, bt: int) -> bool:
        """Whether the unknown seconds just before ``bt`` (since the last write) are an
        outage — at least half a window long — that outnumbers the known seconds of the
        window before it: then ``bt`` starts a new run. Shorter runs are a flaky source,
        judged by the share of unknown seconds instead."""
        assert self._last is not None and self._first is not None
        run = self._count_unknown(self._last + 1, bt - 1)
        if 2 * run < self.window:
            return False
        lo = max(self._first, bt - self.window)
        known = (bt - lo) - self._count_unknown(lo, bt - 1)
        return run > known

    def is_empty(self, now: float) -> bool:
        """Knative's IsEmpty: nothing written, or the last write more than a window ago."""
        return self._last is None or math.floor(now) - self._last > self.window

    def average(self, now: float) -> float:
        """The window average at ``now``; 0 where there is no data (Knative returns 0 for
        an empty window) — :meth:`value` tells the two apart."""
        v = self.value(now)
        return 0.0 if v is None else v

    def value(self, now: float) -> float | None:
        """The window average at ``now``, or None when the window has no data: empty as
        Knative says, or too unknown to trust (see the module docstring)."""
        last = self._last
        if last is None:
            return None
        now_b = math.floor(now)
        d = now_b - last
        n = self.window
        if d > n:
            return None
        unknown = self._unknown
        if unknown and unknown[-1] > now_b - n and self._count_unknown(now_b - n + 1, now_b):
            return self._known_value(now_b, d)
        if self.algorithm == WEIGHTED:
            return self._weighted(now_b, d)
        if d >= n:
            return 0.0
        ret, divisor = self._linear(now_b, d)
        return round6(ret / divisor)

    def _linear(self, now_b: int, d: int) -> tuple[float, float]:
        """Knative's linear total and divisor at ``now_b``, ``d`` seconds after the last
        write (0 <= d < window)."""
        n = self.window
        assert self._first is not None and self._last is not None
        if d <= 0:
            return self._total, min(float(self._last - self._first) + 1, float(n))
        ret = self._total
        for i in range(self._last + 1, now_b + 1):
            ret -= self._buckets[i % n]
        return ret, min(float(self._last - self._first) + 1, float(n - d))

    def _known_value(self, now_b: int, d: int) -> float | None:
        """The average over known seconds, when the window holds unknown ones."""
        n = self.window
        first, last = self._first, self._last
        assert first is not None and last is not None
        lo = max(first, now_b - n + 1)
        if 2 * self._count_unknown(lo, now_b) > now_b - lo + 1:
            return None   # mostly unknown
        if self.algorithm == WEIGHTED:
            weights, prefix = weight_table(n)
            unknown_weight = 0.0
            unknown = self._unknown
            for k in range(bisect_right(unknown, now_b) - 1, bisect_left(unknown, lo) - 1, -1):
                unknown_weight += weights[now_b - unknown[k]]   # newest first
            known_weight = prefix[max(0, min(n, now_b - first + 1))] - unknown_weight
            if not known_weight > 0:
                return None
            return self._weighted(now_b, d) * prefix[n] / known_weight
        if d >= n:
            return 0.0
        ret, divisor = self._linear(now_b, d)
        known = divisor - self._count_unknown(max(first, max(now_b, last) - n + 1), last)
        if not known > 0:
            return None
        return round6(ret / known)

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
