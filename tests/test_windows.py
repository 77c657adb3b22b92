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
    weight_table,
)
from scaler.decide import windows_batch
from scaler.decide.windows_batch import BatchWindows, _round6

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


@pytest.mark.parametrize("x", [-0.0, -1e-7, -4.999e-7, -1e-300])
def test_round6_keeps_the_sign_of_zero_in_both_engines(x: float) -> None:
    """Go's math.Round(-0.1) is -0, and -0 / 1e6 stays -0: a running total that drifts a
    hair below zero averages to -0.0, in the incremental and the batched rounding alike."""
    got = round6(x)
    assert got == 0.0 and math.copysign(1.0, got) == -1.0
    batched = _round6(np.array([x]))[0]
    assert batched == 0.0 and math.copysign(1.0, batched) == -1.0


@pytest.mark.parametrize("x", [math.inf, -math.inf, 1e308, -1e308, 1.8e302])
def test_round6_of_extremes_is_gos_not_an_error(x: float) -> None:
    """Go's Round passes ±Inf through; x·1e6 beyond a float's range is ±Inf in Go too."""
    want = (x * 1e6) / 1e6
    assert round6(x) == want
    with np.errstate(over="ignore"):
        assert _round6(np.array([x]))[0] == want
    assert math.isnan(round6(math.nan))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_round6_keeps_the_sign_and_matches_the_batched_form(x: float) -> None:
    got = round6(x)
    with np.errstate(over="ignore"):
        batched = float(_round6(np.array([x]))[0])
    assert math.copysign(1.0, got) == math.copysign(1.0, batched) == math.copysign(1.0, x)
    assert got == batched


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


# Knative's coefficient as its Go code returns it (knative-coefficients.md: Go 1.19, amd64,
# knative/serving 98e5ef90), and whether CPython's C pow gives the same bits.
GO_COEFFICIENTS = [
    (1, "0x1.fff2e48e8a71ep-01", True), (2, "0x1.fae147ae147aep-01", True),
    (3, "0x1.e83c2d3b29cp-01", False), (4, "0x1.ccccccccccccdp-01", True),
    (5, "0x1.aeda7cea25322p-01", False), (6, "0x1.91b164c4fd313p-01", False),
    (7, "0x1.76a55ea2d4d4ep-01", True), (8, "0x1.5e1764edbdb78p-01", True),
    (9, "0x1.47ff2a61354fp-01", True), (10, "0x1.342b4c0456da6p-01", True),
    (11, "0x1.225e0f651c875p-01", False), (12, "0x1.1259c44fa1806p-01", True),
    (13, "0x1.03e5af817ed46p-01", True), (14, "0x1.ed9f2dd0e590ep-02", True),
    (15, "0x1.d5d7a7d79085ap-02", True), (16, "0x1.c029987c78fc4p-02", True),
    (17, "0x1.ac5470e8ff2d6p-02", True), (18, "0x1.9a20ccf9a6fcp-02", True),
    (19, "0x1.895f1628af6c4p-02", True), (20, "0x1.79e651612571p-02", True),
    (21, "0x1.6b931928b3aep-02", True), (22, "0x1.5e46c0b49361p-02", True),
    (23, "0x1.51e69ace24b4p-02", False), (24, "0x1.465b5f317cceep-02", True),
    (25, "0x1.3b90a9762c476p-02", False), (26, "0x1.31748d3187e76p-02", True),
    (27, "0x1.27f73ba9a9826p-02", False), (28, "0x1.1f0ab80c3dbfcp-02", True),
    (29, "0x1.16a297a46649p-02", True), (30, "0x1.0eb3cbfe2917ep-02", True),
    (31, "0x1.073475458629p-02", False), (32, "0x1.001bbb7dd44ccp-02", True),
    (33, "0x1.f2c35adc3c7cp-03", True), (34, "0x1.e5fe48a6c07a8p-03", False),
    (35, "0x1.d9db5727d3cc8p-03", False), (36, "0x1.ce4ed7a33b78p-03", True),
    (37, "0x1.c34e31a9a83p-03", True), (38, "0x1.b8cfc3c10b5acp-03", True),
    (39, "0x1.aecac826245d8p-03", True), (40, "0x1.a5373d0c8ef3p-03", True),
    (41, "0x1.9c0dcfdbc3fbcp-03", True), (42, "0x1.999999999999ap-03", True),
]


@pytest.mark.parametrize("nb, go_hex, c_pow_same", [
    pytest.param(*case, id=f"{case[0]}-buckets{'' if case[2] else '-differs-from-C-pow'}")
    for case in GO_COEFFICIENTS])
def test_smoothing_coefficient_is_gos_to_the_bit(nb: int, go_hex: str, c_pow_same: bool) -> None:
    go = float.fromhex(go_hex)
    assert smoothing_coefficient(nb) == go
    assert (max(1 - math.pow(0.0001, 1 / nb), 0.2) == go) is c_pow_same


@pytest.mark.parametrize("nb", [42, 43, 60, 61, 600, 3600])
def test_smoothing_coefficient_from_42_buckets_is_the_floor(nb: int) -> None:
    assert smoothing_coefficient(nb) == 0.2 == float.fromhex("0x1.999999999999ap-03")


def test_go_coefficient_decides_like_knative_at_an_integer_boundary() -> None:
    """knative-coefficients.md: a 6 s weighted panic window, target 1 at 100 %, one sample
    of 3.8238162343615647. With Go's coefficient the panic average is exactly 3.0 and
    Knative wants 3 pods; C's pow would give 3.0000000000000004 and 4 pods."""
    from scaler.kpa import DeciderSpec, DeciderState, decide

    w = filled(6, [(0, 3.8238162343615647)], WEIGHTED)
    assert w.value(T0) == 3.0
    assert 3.8238162343615647 * (1 - math.pow(0.0001, 1 / 6)) == 3.0000000000000004
    batch, _ = BatchWindows(np.array([T0 + 0.0]), np.array([3.8238162343615647]),
                            np.array([T0])).averages(6, WEIGHTED)
    assert batch.tolist() == [3.0]
    spec = DeciderSpec(target_value=1.0, total_value=1.0, target_burst_capacity=0.0,
                       panic_threshold=10.0, max_scale_up_rate=1000.0, max_scale_down_rate=2.0,
                       stable_window=60.0, scale_down_delay=0.0, activation_scale=0)
    decision, _ = decide(spec, DeciderState(), T0, 1, 3.0, w.value(T0))
    assert decision.desired_pods == 3


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


# --------------------------------------------------------------------------------------
# Unknown seconds: never zero load, Knative's numbers when there are none


def observed(window: int, events: list[tuple[float, float | None]],
             algorithm: str = LINEAR) -> BucketWindow:
    """A window fed ``(offset, value)`` samples and ``(offset, None)`` unknown seconds,
    in the order given (time order, as sources hand them over)."""
    w = BucketWindow(window, algorithm)
    for dt, v in events:
        if v is None:
            w.mark_unknown(T0 + dt)
        else:
            w.record(T0 + dt, v)
    return w


def steady(load: float, seconds: range) -> list[tuple[float, float | None]]:
    return [(s, load) for s in seconds]


def gone(seconds: range) -> list[tuple[float, float | None]]:
    return [(s, None) for s in seconds]


UNKNOWN_CASES = [
    # (window, events, query offset) → value (None: no data)
    pytest.param(6, steady(50.0, range(0, 3)) + gone(range(3, 6)), 5, 50.0,
                 id="trailing-unknown-half-the-window-is-the-known-average"),
    pytest.param(6, steady(50.0, range(0, 2)) + gone(range(2, 6)), 5, None,
                 id="trailing-unknown-more-than-half-is-no-data"),
    pytest.param(6, steady(50.0, range(0, 6)) + gone(range(6, 9)) + steady(50.0, range(9, 12)),
                 11, 50.0, id="gap-of-3-in-6-after-a-full-window-stays-50"),
    pytest.param(6, [(0, 10.0), (1, None), (2, None), (3, 20.0)], 3, 15.0,
                 id="unknown-gap-is-not-zero-30/2-not-30/4"),
    pytest.param(6, [(0, 10.0), (3, 20.0)], 3, 7.5,
                 id="unmarked-gap-is-knatives-zero-30/4"),
    pytest.param(4, [(0, 10.0), (1, None), (2, None), (3, 20.0)], 3, 20.0,
                 id="gap-of-half-a-window-outnumbering-what-came-before-restarts"),
    pytest.param(6, [(0, 50.0), (1, None), (2, 50.0), (3, None), (4, None), (5, 50.0)], 5,
                 50.0, id="flaky-half-known-is-the-known-average"),
    pytest.param(10, [(t, None if t % 3 else 50.0) for t in range(10)], 9, None,
                 id="flaky-mostly-unknown-is-no-data"),
    pytest.param(60, steady(50.0, range(0, 60)) + gone(range(60, 90)) + [(90, 30.0)], 90,
                 round6((29 * 50.0 + 30.0) / 30), id="outage-of-half-a-window-keeps-the-run"),
    pytest.param(60, steady(50.0, range(0, 60)) + gone(range(60, 100)) + [(100, 30.0)], 100,
                 30.0, id="outage-over-half-a-window-restarts-with-the-first-clean-second"),
    pytest.param(60, steady(50.0, range(0, 60)) + gone(range(60, 95)), 94, None,
                 id="during-a-long-outage-no-data"),
    pytest.param(60, steady(50.0, range(0, 15)) + gone(range(15, 35)) + [(35, 40.0)], 35,
                 None, id="young-window-short-outage-mostly-unknown-until-known-again"),
    pytest.param(60, steady(50.0, range(0, 15)) + gone(range(15, 35)) + steady(40.0, range(35, 40)),
                 39, round6((15 * 50.0 + 5 * 40.0) / 20), id="young-window-resumes-at-half"),
    pytest.param(60, gone(range(0, 40)) + steady(50.0, range(40, 45)), 44, 50.0,
                 id="unknown-before-the-first-write-is-not-in-the-span"),
    pytest.param(6, [(0, 50.0), (1, None)], 1, 50.0, id="one-unknown-in-two-is-half"),
]


@pytest.mark.parametrize("window, events, at, want", UNKNOWN_CASES)
def test_unknown_seconds_linear(window: int, events, at: float, want: float | None) -> None:
    w = observed(window, events)
    assert w.value(T0 + at) == want
    assert w.average(T0 + at) == (0.0 if want is None else want)
    _assert_batch_agrees(window, events, at, LINEAR)


def _assert_batch_agrees(window: int, events, at: float, algorithm: str) -> None:
    times = np.array([T0 + t for t, v in events if v is not None], dtype=np.float64)
    values = np.array([v for _, v in events if v is not None], dtype=np.float64)
    unknown = np.array([T0 + t for t, v in events if v is None], dtype=np.int64)
    avg, empty = BatchWindows(times, values, np.array([T0 + at], dtype=np.int64),
                              unknown).averages(window, algorithm)
    ref = observed(window, events, algorithm).value(T0 + at)
    assert bool(empty[0]) is (ref is None)
    assert avg[0] == (0.0 if ref is None else ref)


def test_no_unknown_second_means_knatives_numbers_bit_for_bit() -> None:
    """An unknown second outside the window changes nothing."""
    for algorithm in (LINEAR, WEIGHTED):
        plain = filled(10, [(i, 3.7 * i) for i in range(30)], algorithm)
        marked = observed(10, gone(range(-5, 0)) + [(i, 3.7 * i) for i in range(30)], algorithm)
        for at in range(29, 41):
            assert marked.value(T0 + at) == plain.value(T0 + at)
            assert marked.average(T0 + at) == plain.average(T0 + at)


@pytest.mark.parametrize("window", [6, 10, 60])
def test_weighted_with_unknown_seconds_reads_a_constant_load_as_a_full_window(window: int) -> None:
    """Rescaled by the weight of the known seconds: constant c reads c × Σ weights (what
    Knative shows for a full window of c), whichever seconds are unknown."""
    weights, prefix = weight_table(window)
    events = steady(10.0, range(0, 3 * window))
    full = observed(window, events, WEIGHTED).value(T0 + 3 * window - 1)
    assert full == pytest.approx(10 * prefix[window], rel=1e-12)
    holes = [(t, None if t % 3 == 1 else v) for t, v in events]
    assert observed(window, holes, WEIGHTED).value(T0 + 3 * window - 1) == pytest.approx(
        full, rel=1e-12)


def test_weighted_restart_after_an_outage_is_not_a_fifth_of_the_load() -> None:
    """Knative's weighted partial window weighs the seconds before it as zeros: one
    second of 50 in a 60 s window reads 10 (m = 0.2). After an outage those seconds are
    unknown, so the first clean second reads 50 × Σ weights — no scale-down on its account."""
    assert filled(60, [(0, 50.0)], WEIGHTED).value(T0) == 10.0
    events = steady(50.0, range(0, 60)) + gone(range(60, 100)) + [(100, 50.0)]
    value = observed(60, events, WEIGHTED).value(T0 + 100)
    assert value == pytest.approx(50 * weight_table(60)[1][60], rel=1e-12)
    assert value > 49.99
    _assert_batch_agrees(60, events, 100, WEIGHTED)


@pytest.mark.parametrize("window, events, at, want", [
    pytest.param(6, steady(50.0, range(0, 2)) + gone(range(2, 6)), 5, None,
                 id="mostly-unknown"),
    pytest.param(6, gone(range(0, 6)), 5, None, id="never-written"),
    pytest.param(6, steady(50.0, range(0, 6)) + gone(range(6, 12)), 11, None,
                 id="a-window-of-nothing-but-unknown"),
])
def test_unknown_seconds_weighted_no_data(window: int, events, at: float, want) -> None:
    assert observed(window, events, WEIGHTED).value(T0 + at) is want
    _assert_batch_agrees(window, events, at, WEIGHTED)


def test_a_panic_window_of_unknown_seconds_has_no_data_not_zero() -> None:
    """Six unknown seconds after a burst: the 6 s panic window says no data (the decider
    then reads the stable average), where Knative's zeros would say 0."""
    events = steady(700.0, range(0, 60)) + gone(range(60, 66))
    assert observed(6, events).value(T0 + 65) is None
    assert observed(60, events).value(T0 + 65) == 700.0
    assert filled(6, [(t, 700.0) for t in range(60)]).value(T0 + 65) == 0.0


@pytest.mark.parametrize("value", [math.inf, 1e308, 1.8e302])
@pytest.mark.parametrize("algorithm", [LINEAR, WEIGHTED])
def test_extreme_values_never_raise(value: float, algorithm: str) -> None:
    """Go's float arithmetic saturates: +Inf and 1e308 give ±Inf or NaN averages, never an
    error; the batched windows give the same."""
    events = [(0, 1.0), (1, value), (2, value), (3, 1.0), (4, None), (5, 2.0)]
    w = observed(3, events, algorithm)
    got = [w.value(T0 + 5), w.value(T0 + 7)]
    times = np.array([T0 + t for t, v in events if v is not None], dtype=np.float64)
    values = np.array([v for _, v in events if v is not None])
    ticks = np.array([T0 + 5, T0 + 7], dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        avg, empty = BatchWindows(times, values, ticks, np.array([T0 + 4])).averages(
            3, algorithm)
    np.testing.assert_array_equal(avg, [0.0 if g is None else g for g in got])
    assert empty.tolist() == [g is None for g in got]


@st.composite
def gappy_recordings(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, np.ndarray,
                                                np.ndarray]:
    """Samples and unknown seconds in stretches: clean, flaky, long outages (some beyond
    half a window), Knative-style unmarked gaps, several samples in one second."""
    window = draw(st.sampled_from([1, 2, 3, 6, 10, 30, 60]))
    t = T0 + draw(st.integers(0, 3))
    times, values, unknown = [], [], []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["clean", "clean", "flaky", "outage", "silence", "dense"]))
        length = draw(st.integers(1, 2 * window + 3))
        phase = draw(st.sampled_from([0.0, 0.0, 0.25, 0.5]))
        for s in range(t, t + length):
            if kind == "outage" or (kind == "flaky" and draw(st.booleans())):
                unknown.append(s)
            elif kind == "silence":
                pass
            else:
                for k in range(2 if kind == "dense" else 1):
                    times.append(s + phase + 0.25 * k)
                    values.append(draw(st.integers(0, 10**5)) / 100)
        t += length
    assume_any = bool(times)
    k = draw(st.integers(1, 4))
    first = (T0 // k - 1) * k
    ticks = np.arange(first, t + 2 * window + 3, k, dtype=np.int64)
    if not assume_any:
        times, values = [float(t)], [1.0]
    return (window, np.array(times, dtype=np.float64), np.array(values),
            np.array(unknown, dtype=np.int64), ticks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gappy_recordings())
def test_batch_windows_equal_incremental_with_unknown_seconds(rec) -> None:
    window, times, values, unknown, ticks = rec
    batch = BatchWindows(times, values, ticks, unknown)
    for w in (window, max(1, window // 10)):
        for algorithm in (LINEAR, WEIGHTED):
            avg, empty = batch.averages(w, algorithm)
            ref = BucketWindow(w, algorithm)
            i = j = 0
            want_avg, want_empty = [], []
            for tick in ticks.tolist():
                # Time order, an unknown second before any later sample.
                while True:
                    sample = times[i] if i < len(times) and times[i] <= tick else None
                    mark = unknown[j] if j < len(unknown) and unknown[j] <= tick else None
                    if sample is None and mark is None:
                        break
                    if mark is not None and (sample is None or mark < sample):
                        ref.mark_unknown(int(mark))
                        j += 1
                    else:
                        ref.record(float(times[i]), float(values[i]))
                        i += 1
                v = ref.value(float(tick))
                want_avg.append(0.0 if v is None else v)
                want_empty.append(v is None)
            assert avg.tolist() == want_avg, (algorithm, w)
            assert empty.tolist() == want_empty, (algorithm, w)


def test_a_known_second_stays_known() -> None:
    """A value for a second its source called unknown (an activator's poke into a second
    no read had covered) makes it known; a later mark for a written second changes nothing."""
    poked = observed(10, gone(range(0, 5)) + [(4.9, 7.0)])
    assert poked.value(T0 + 4) == 7.0
    marked_after = observed(10, [(0, 3.0), (1, 5.0), (1, None), (2, None)])
    assert marked_after.value(T0 + 2) == 4.0   # (3 + 5) / 2: second 1 is known, 2 is not


@st.composite
def dense_recordings(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One sample every second without a gap (the shape the strided weighted sum serves),
    sometimes off the whole second, with ticks every few seconds, before, through and after."""
    window = draw(st.integers(2, 60))
    n = draw(st.integers(1, 400))
    t0 = T0 + draw(st.integers(0, 5)) + draw(st.sampled_from([0.0, 0.0, 0.25, 0.75]))
    values = np.array(draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n)),
                      dtype=np.float64) / 1000
    times = t0 + np.arange(n, dtype=np.float64)
    k = draw(st.integers(1, 5))
    first_tick = (int(t0) // k - draw(st.integers(0, 2))) * k
    last_tick = int(times[-1]) + draw(st.integers(0, 2 * window + 2))
    ticks = np.arange(first_tick, last_tick + 1, k, dtype=np.int64)
    if draw(st.booleans()):   # uneven steps: stretches of different strides
        ticks = np.unique(np.concatenate((ticks, ticks[::3] + 1)))
    return window, times, values, ticks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense_recordings(), st.sampled_from([1, 4, 32]))
def test_dense_weighted_windows_by_strides_equal_incremental(rec, min_ticks) -> None:
    """The strided weighted sums on dense recordings are Knative's, bit for bit, however
    the stretches of evenly stepping ticks fall."""
    window, times, values, ticks = rec
    batch = BatchWindows(times, values, ticks)
    assert batch.dense
    original = windows_batch.STRIDED_MIN_TICKS
    windows_batch.STRIDED_MIN_TICKS = min_ticks
    try:
        for w in (window, max(1, window // 10)):
            avg, empty = batch.averages(w, WEIGHTED)
            ref = BucketWindow(w, WEIGHTED)
            i = 0
            want_avg, want_empty = [], []
            for tick in ticks.tolist():
                while i < len(times) and times[i] <= tick:
                    ref.record(float(times[i]), float(values[i]))
                    i += 1
                want_avg.append(ref.average(float(tick)))
                want_empty.append(ref.is_empty(float(tick)))
            assert avg.tolist() == want_avg, w
            assert empty.tolist() == want_empty, w
    finally:
        windows_batch.STRIDED_MIN_TICKS = original
