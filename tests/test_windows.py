"""scaler.decide.windows: Knative's 1 s bucketed window averages (reference/knative-kpa.md §7.2, §7.3).

Expected values are worked out by hand from the reference; the arithmetic is next to each
case. The batched path is held to exact equality with the incremental one.
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.decide.windows import (
    LINEAR,
    WEIGHTED,
    BucketWindow,
    go_pow_int,
    round6,
    smoothing_coefficient,
)

from scaler.decide.windows_batch import BatchWindows

T0 = 1_700_000_000  # a whole second; offsets below are relative to it


def filled(window: int, records: list[tuple[float, float]], algorithm: str = LINEAR) -> BucketWindow:
    w = BucketWindow(window, algorithm)
    for dt, v in records:
        w.record(T0 + dt, v)
    return w


# --------------------------------------------------------------------------------------
# Linear (§7.2)

LINEAR_CASES = [
    # (window, [(offset, value)], query offset) → (average, is_empty)
    pytest.param(60, [(0, 1.0)], 0, 1.0, False, id="first-write-averages-itself-not-1/60"),
    pytest.param(
        60, [(0, 3.0), (1, 3.0), (2, 3.0)], 2, 3.0, False,
        id="partial-first-window-divides-by-buckets-since-first",
    ),
    pytest.param(
        # buckets 10, 0, 0, 20 → 30/4
        60, [(0, 10.0), (3, 20.0)], 3, 7.5, False, id="gap-between-writes-counts-as-zero",
    ),
    pytest.param(
        # divisor min(1, 60 − 55) = 1
        60, [(0, 50.0)], 55, 50.0, False, id="trailing-silence-excluded",
    ),
    pytest.param(
        # buckets 0..9 hold 1..10; at 12 the window is 3..12: 4..10 over 7 buckets = 49/7
        10, [(i, float(i + 1)) for i in range(10)], 12, 7.0, False,
        id="trailing-silence-drops-buckets-leaving-window",
    ),
    pytest.param(
        # buckets 0..7 hold 1..8, window 5 → buckets 3..7: (4+5+6+7+8)/5
        5, [(i, float(i + 1)) for i in range(8)], 7, 6.0, False,
        id="full-window-divides-by-n",
    ),
    pytest.param(
        60, [(0, 50.0)], 60, 0.0, False, id="exactly-one-window-later-zero-not-empty",
    ),
    pytest.param(60, [(0, 50.0)], 61, 0.0, True, id="one-second-more-is-empty"),
    pytest.param(
        # now is truncated to the second: 60.9 → 60
        60, [(0, 50.0)], 60.9, 0.0, False, id="query-time-truncated",
    ),
    pytest.param(60, [], 0, 0.0, True, id="never-written-is-empty"),
    pytest.param(
        60, [(0.1, 1.5), (0.5, 2.5), (0.99, 3.0)], 0.999, 7.0, False,
        id="same-bucket-samples-summed",
    ),
    pytest.param(
        # bucket 0 = 7, bucket 1 = 1 → 8/2
        60, [(0.1, 1.5), (0.5, 2.5), (0.99, 3.0), (1.0, 1.0)], 1, 4.0, False,
        id="same-bucket-then-next-bucket",
    ),
    pytest.param(
        # 10 − 0 ≥ window: start over, a partial window of one bucket
        10, [(0, 5.0), (10, 7.0)], 10, 7.0, False, id="write-a-window-after-last-resets",
    ),
    pytest.param(
        # 9 − 0 < window: buckets 0..9 = 5, 0×8, 7 → 12/10
        10, [(0, 5.0), (9, 7.0)], 9, 1.2, False, id="write-under-a-window-after-last-keeps",
    ),
    pytest.param(
        # late write at 2 after 5: first = 2, buckets 2..5 = 6, 0, 0, 4 → 10/4
        10, [(5, 4.0), (2, 6.0)], 5, 2.5, False, id="late-write-within-window-added",
    ),
    pytest.param(
        # late write into the newest bucket is just added
        10, [(5, 4.0), (4, 0.0), (5.5, 2.0)], 5, 3.0, False, id="late-write-then-same-bucket",
    ),
    pytest.param(
        # 10 + 10 is not after 20: dropped
        10, [(20, 4.0), (10, 100.0)], 20, 4.0, False, id="write-a-window-older-dropped",
    ),
    pytest.param(
        # 11 + 10 > 20: kept, first = 11, (100 + 4)/10
        10, [(20, 4.0), (11, 100.0)], 20, 10.4, False, id="write-just-inside-window-kept",
    ),
    pytest.param(
        # 1/3 = 0.333333…
        3, [(0, 1.0), (1, 0.0), (2, 0.0)], 2, 0.333333, False, id="rounded-to-6-decimals",
    ),
    pytest.param(
        # 7e-6 / 2 = 3.5e-6; ×1e6 = 3.5 exactly → Go's Round gives 4 (Python's round, 3)
        2, [(0, 0.000007), (1, 0.0)], 1, 0.000004, False, id="rounded-half-away-from-zero",
    ),
    pytest.param(
        # 1e-7 / 1 rounds to 0 at 6 decimals
        60, [(0, 0.0000001)], 0, 0.0, False, id="tiny-average-rounds-to-zero",
    ),
]


@pytest.mark.parametrize("window, records, at, average, empty", LINEAR_CASES)
def test_linear(
    window: int, records: list[tuple[float, float]], at: float, average: float, empty: bool
) -> None:
    w = filled(window, records)
    assert w.average(T0 + at) == average
    assert w.is_empty(T0 + at) is empty


def test_linear_reset_after_silence_forgets_old_buckets() -> None:
    """After a whole window of silence the old values do not come back into the total."""
    w = filled(5, [(0, 100.0), (1, 100.0), (2, 100.0), (20, 1.0), (21, 3.0)])
    assert w.average(T0 + 21) == 2.0             # (1 + 3)/2
    assert w.average(T0 + 24) == 2.0             # trailing silence: still (1 + 3)/2
    assert w.average(T0 + 25) == 3.0             # bucket 20 left the window: 3/1
    assert w.average(T0 + 26) == 0.0             # 26 − 21 = window: 0, not empty
    assert not w.is_empty(T0 + 26)
    assert w.is_empty(T0 + 27)


# --------------------------------------------------------------------------------------
# Rounding: Go's math.Round(x·1e6)/1e6, halves away from zero


def go_round6(x: float) -> float:
    """The reference formula with exact decimal arithmetic on the float product."""
    return float(Decimal(x * 1e6).quantize(Decimal(1), rounding=ROUND_HALF_UP)) / 1e6


@pytest.mark.parametrize(
    "x, want, python_round_differs",
    [
        # 0.0000025 × 1e6 = 2.5 exactly → 3; the double nearest 0.0000025 is slightly
        # above it, so Python's round(x, 6) also gives 0.000003 here
        pytest.param(0.0000025, 0.000003, False, id="2.5e-6"),
        pytest.param(0.0000035, 0.000004, True, id="3.5e-6-python-gives-3e-6"),
        pytest.param(0.0000005, 0.000001, True, id="0.5e-6-python-gives-0"),
        pytest.param(0.1234565, 0.123457, True, id="0.1234565-python-gives-0.123456"),
        pytest.param(-0.0000035, -0.000004, True, id="minus-3.5e-6-away-from-zero"),
        pytest.param(1 / 3, 0.333333, False, id="one-third"),
        pytest.param(2 / 3, 0.666667, False, id="two-thirds"),
        pytest.param(0.0, 0.0, False, id="zero"),
        pytest.param(0.0000004999, 0.0, False, id="just-under-half-ulp"),
        pytest.param(105.0, 105.0, False, id="integer"),
    ],
)
def test_round6(x: float, want: float, python_round_differs: bool) -> None:
    assert round6(x) == want
    assert go_round6(x) == want
    assert (round(x, 6) != want) is python_round_differs


@given(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        # exact halves at the 6th decimal, where banker's rounding would differ
        st.integers(-10**9, 10**9).map(lambda k: (k + 0.5) / 1e6),
    )
)
def test_round6_is_go_math_round(x: float) -> None:
    assert round6(x) == go_round6(x)


# --------------------------------------------------------------------------------------
# Weighted-exponential (§7.3)


def coefficient(nb: int) -> float:
    """§7.3: m = max(1 − (1 − 0.9999)^(1/nb), 0.2)."""
    return max(1 - 0.0001 ** (1 / nb), 0.2)


@pytest.mark.parametrize(
    "nb, m5",
    [
        pytest.param(5, 0.84151, id="5"),
        pytest.param(6, 0.78456, id="6-default-panic-window"),
        pytest.param(40, 0.20567, id="40"),
        pytest.param(60, 0.2, id="60-default-stable-window"),
        pytest.param(61, 0.2, id="61"),
        pytest.param(3600, 0.2, id="3600"),
    ],
)
def test_smoothing_coefficient(nb: int, m5: float) -> None:
    assert round(smoothing_coefficient(nb), 5) == m5
    assert abs(smoothing_coefficient(nb) - m5) < 5e-6


def test_smoothing_coefficient_floor_is_exactly_0_2() -> None:
    """1 − 10^(−4/nb) falls below 0.2 once 10^(−4/nb) > 0.8, i.e. nb > 4/log10(1.25) ≈ 41.3."""
    assert smoothing_coefficient(60) == 0.2
    assert smoothing_coefficient(42) == 0.2
    assert smoothing_coefficient(41) > 0.2


def test_weighted_single_first_write_is_m_times_value() -> None:
    """Unlike linear (→ 10), the weighted average of one bucket is m·value."""
    assert filled(60, [(0, 10.0)], WEIGHTED).average(T0) == 2.0   # 10 × 0.2
    assert filled(6, [(0, 10.0)], WEIGHTED).average(T0) == pytest.approx(
        10 * coefficient(6), rel=1e-15
    )


@pytest.mark.parametrize("window", [6, 10, 60, 120])
def test_weighted_constant_series_is_constant_times_weight_sum(window: int) -> None:
    """A constant c over a full window: Σ m(1−m)^i for i < n = 1 − (1−m)^n, no normalisation.
    For n < 60 that is 0.9999 by construction of m."""
    m = coefficient(window)
    w = filled(window, [(i, 10.0) for i in range(3 * window)], WEIGHTED)
    got = w.average(T0 + 3 * window - 1)
    assert got == pytest.approx(10 * (1 - (1 - m) ** window), rel=1e-12)
    assert got < 10.0
    if window < 60:
        assert got == pytest.approx(9.999, rel=1e-12)


def test_weighted_partial_window() -> None:
    """10 buckets of 10 into a 60 s window: 10·(1 − 0.8^10)."""
    w = filled(60, [(i, 10.0) for i in range(10)], WEIGHTED)
    assert w.average(T0 + 9) == pytest.approx(10 * (1 - 0.8**10), rel=1e-12)


def test_weighted_gap_counts_as_zero_bucket() -> None:
    """1 at 0 and 1 at 2 (window 6): newest first, 1·m + 0·m(1−m) + 1·m(1−m)²."""
    m = coefficient(6)
    w = filled(6, [(0, 1.0), (2, 1.0)], WEIGHTED)
    assert w.average(T0 + 2) == pytest.approx(m + m * (1 - m) ** 2, rel=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 30, 55, 59])
def test_weighted_trailing_silence_single_bucket(k: int) -> None:
    """One bucket of 50, queried k s later: 50·m·(1−m)^k."""
    w = filled(60, [(0, 50.0)], WEIGHTED)
    assert w.average(T0 + k) == pytest.approx(50 * 0.2 * 0.8**k, rel=1e-12)


@pytest.mark.parametrize("window, k", [(6, 1), (6, 2), (6, 5), (60, 7), (60, 59)])
def test_weighted_trailing_silence_uses_n_minus_k_buckets(window: int, k: int) -> None:
    """Constant c, queried k s after the last write: the multiplier starts at m(1−m)^k and
    only n − k buckets count: c·(1−m)^k·(1 − (1−m)^(n−k))."""
    m = coefficient(window)
    last = 3 * window - 1
    w = filled(window, [(i, 10.0) for i in range(last + 1)], WEIGHTED)
    want = 10 * (1 - m) ** k * (1 - (1 - m) ** (window - k))
    assert w.average(T0 + last + k) == pytest.approx(want, rel=1e-12)


def test_weighted_emptiness() -> None:
    w = filled(60, [(0, 50.0)], WEIGHTED)
    assert w.average(T0 + 60) == 0.0          # n − k = 0 buckets
    assert not w.is_empty(T0 + 60)
    assert w.average(T0 + 61) == 0.0
    assert w.is_empty(T0 + 61)
    assert BucketWindow(6, WEIGHTED).average(T0) == 0.0
    assert BucketWindow(6, WEIGHTED).is_empty(T0)


def test_weighted_no_six_digit_rounding() -> None:
    """§7.3: the weighted average is not rounded (linear would give 0)."""
    assert filled(60, [(0, 0.0000001)], WEIGHTED).average(T0) == 0.0000001 * 0.2


# --------------------------------------------------------------------------------------
# go_pow_int


@pytest.mark.parametrize(
    "x, n, want",
    [
        pytest.param(2.0, 10, 1024.0, id="2^10"),
        pytest.param(0.5, 3, 0.125, id="0.5^3"),
        pytest.param(3.0, 5, 243.0, id="3^5"),
        pytest.param(1.5, 2, 2.25, id="1.5^2"),
        pytest.param(0.25, 4, 1 / 256, id="0.25^4"),
        pytest.param(10.0, 15, 1e15, id="10^15"),
        pytest.param(-2.0, 3, -8.0, id="minus-2^3"),
        pytest.param(0.8, 0, 1.0, id="x^0"),
        pytest.param(0.8, 1, 0.8, id="x^1"),
        pytest.param(1.0, 1000, 1.0, id="1^n"),
        pytest.param(0.8, 2, 0.8 * 0.8, id="0.8^2-one-rounding"),
    ],
)
def test_go_pow_int_exact(x: float, n: int, want: float) -> None:
    assert go_pow_int(x, n) == want
    assert go_pow_int(x, n) == x**n


def test_go_pow_int_close_to_pow() -> None:
    """Go's Pow squares a normalised mantissa, one rounding per multiplication, so it is
    within 1 ulp of a correctly rounded pow for n ≤ 3 only; beyond, the squarings' errors
    compound (an early error doubles with each later squaring), bounded by about 2n ulps."""
    rng = random.Random(20240611)
    for _ in range(20000):
        x = rng.choice([rng.uniform(0.05, 1.0), rng.uniform(1.0, 3.0)])
        n = rng.randint(0, 200)
        got, ref = go_pow_int(x, n), math.pow(x, n)
        ulps = abs(got - ref) / math.ulp(ref)
        assert ulps <= (1 if n <= 3 else 2 * n + 1), (x, n, got, ref)


# --------------------------------------------------------------------------------------
# BatchWindows ≡ feeding BucketWindow sample by sample


@st.composite
def recordings(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    window = draw(st.integers(1, 120))
    n = draw(st.integers(1, 40))
    t = float(T0 + draw(st.integers(0, 5))) + draw(st.integers(0, 3)) / 4
    times, values = [], []
    for _ in range(n):
        times.append(t)
        values.append(draw(st.integers(0, 10**6)) / 1000)   # up to 3 decimals
        step = draw(st.one_of(
            st.integers(0, 3).map(lambda q: q / 4),                 # same second
            st.integers(1, 4).map(float),                           # next few seconds
            st.integers(1, 3 * window).map(float),                  # gaps up to 3 windows
            st.integers(1, 12 * window).map(lambda q: q / 4),
        ))
        t += step
    k = draw(st.integers(1, 5))
    lo, hi = math.floor(times[0]), math.ceil(times[-1])
    first_tick = (lo // k - draw(st.integers(0, 2))) * k
    last_tick = hi + draw(st.integers(0, 2 * window + 2))
    ticks = np.arange(first_tick, last_tick + 1, k, dtype=np.int64)
    return window, np.array(times, dtype=np.float64), np.array(values), ticks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings())
def test_batch_windows_equal_incremental(
    rec: tuple[int, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    window, times, values, ticks = rec
    batch = BatchWindows(times, values, ticks)
    # one BatchWindows serves both windows of a policy: query it twice per algorithm
    for w in (window, max(1, window // 10)):
        for algorithm in (LINEAR, WEIGHTED):
            avg, empty = batch.averages(w, algorithm)
            assert not np.isnan(avg).any()
            ref = BucketWindow(w, algorithm)
            i = 0
            want_avg, want_empty = [], []
            for tick in ticks.tolist():
                while i < len(times) and times[i] <= tick:
                    ref.record(float(times[i]), float(values[i]))
                    i += 1
                want_avg.append(ref.average(float(tick)))
                want_empty.append(ref.is_empty(float(tick)))
            assert avg.tolist() == want_avg, (algorithm, w)
            assert empty.tolist() == want_empty, (algorithm, w)


@pytest.mark.parametrize("algorithm", [LINEAR, WEIGHTED])
def test_batch_windows_no_samples(algorithm: str) -> None:
    """An empty recording: every tick is empty with average 0, as a fresh BucketWindow."""
    ticks = np.arange(T0, T0 + 10, 2, dtype=np.int64)
    batch = BatchWindows(np.array([], dtype=np.float64), np.array([], dtype=np.float64), ticks)
    avg, empty = batch.averages(60, algorithm)
    assert avg.tolist() == [0.0] * 5
    assert empty.tolist() == [True] * 5
