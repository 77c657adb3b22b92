"""tools/synthetic.py: determinism, the series contract, and the property each shape claims."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

import synthetic
from synthetic import DEFAULT_START, Series

# Each generator at a size that keeps the suite fast but shows its shape.
GENERATORS: dict[str, Callable[..., Series]] = {
    "burst": lambda **kw: synthetic.burst(before=600, after=600, **kw),
    "burst_ramp30": lambda **kw: synthetic.burst(before=600, after=600, ramp=30, **kw),
    "diurnal": lambda **kw: synthetic.diurnal(0.25, **kw),
    "diurnal_weekly": lambda **kw: synthetic.diurnal_weekly(0.25, **kw),
    "sparse_function": lambda **kw: synthetic.sparse_function(6, **kw),
    "stationary_noise": lambda **kw: synthetic.stationary_noise(0.5, **kw),
    "ramp": lambda **kw: synthetic.ramp(up=600, hold=300, down=600, **kw),
}


def zero_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each maximal run of exact zeros."""
    z = np.concatenate([[0], (values == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(z))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def nonzero_runs(values: np.ndarray) -> list[tuple[int, int]]:
    z = np.concatenate([[0], (values != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(z))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


# --------------------------------------------------------------------------------------
# The contract every generator keeps


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_gives_identical_arrays(name: str) -> None:
    ts1, v1 = GENERATORS[name](seed=11)
    ts2, v2 = GENERATORS[name](seed=11)
    assert np.array_equal(ts1, ts2)
    assert np.array_equal(v1, v2)  # bit for bit, not approximately


@pytest.mark.parametrize("name", GENERATORS)
def test_different_seed_gives_different_values(name: str) -> None:
    ts1, v1 = GENERATORS[name](seed=11)
    ts2, v2 = GENERATORS[name](seed=12)
    assert np.array_equal(ts1, ts2)
    assert not np.array_equal(v1, v2)


@pytest.mark.parametrize("name", GENERATORS)
def test_series_contract(name: str) -> None:
    ts, v = GENERATORS[name](seed=3)
    assert ts.dtype == np.int64 and v.dtype == np.float64
    assert ts.shape == v.shape and ts.size > 0
    assert ts[0] == DEFAULT_START
    assert np.all(np.diff(ts) == 1)  # strictly ascending, one row per second
    assert np.all(np.isfinite(v))
    assert v.min() >= 0


@pytest.mark.parametrize("name", GENERATORS)
def test_start_moves_timestamps_only(name: str) -> None:
    ts1, v1 = GENERATORS[name](seed=3)
    # A whole number of weeks later: the diurnal and weekly shapes land on the same clock time.
    ts2, v2 = GENERATORS[name](seed=3, start=DEFAULT_START + 7 * 86_400)
    assert np.array_equal(ts2 - ts1, np.full(ts1.size, 7 * 86_400))
    assert np.array_equal(v1, v2)


def test_fourteen_days_at_one_second_is_fast() -> None:
    synthetic.diurnal_weekly(0.01)  # first-call import and allocation costs are not the point
    t0 = time.perf_counter()
    ts, v = synthetic.diurnal_weekly()
    elapsed = time.perf_counter() - t0
    assert ts.size == v.size == 1_209_600
    assert ts[-1] - ts[0] == 14 * 86_400 - 1
    # About 0.1 s on a developer machine; the bound leaves room for a slow CI runner.
    assert elapsed < 1.0


# --------------------------------------------------------------------------------------
# Building blocks


@pytest.mark.parametrize("service_time", [0.1, 0.5, 1.0, 2.0, 2.7, 30.0])
def test_kernel_holds_littles_law_for_one_request(service_time: float) -> None:
    h = synthetic.in_flight_kernel(service_time)
    assert h.sum() == pytest.approx(service_time, rel=1e-12)
    assert np.all(h >= 0) and np.all(h <= 1)  # never more than one request's worth per second


def test_kernel_known_values() -> None:
    # Arrival uniform in second 0, in flight 0.5 s: 3/4 of the time inside second 0 on average.
    assert synthetic.in_flight_kernel(0.5).tolist() == [0.375, 0.125]
    assert synthetic.in_flight_kernel(1.0).tolist() == [0.5, 0.5]
    assert synthetic.in_flight_kernel(2.0).tolist() == [0.5, 1.0, 0.5]


def test_kernel_rejects_non_positive_service_time() -> None:
    with pytest.raises(ValueError):
        synthetic.in_flight_kernel(0.0)


def test_concurrency_from_arrivals_is_littles_law_in_steady_state() -> None:
    counts = np.full(100, 40)
    c = synthetic.concurrency_from_arrivals(counts, 2.0)
    assert c[2:].tolist() == [80.0] * 98  # λ × s once the pipeline is full
    assert c[:2].tolist() == [20.0, 60.0]  # nothing was in flight before the first second


def test_concurrency_from_single_request_is_the_kernel() -> None:
    counts = np.zeros(6)
    counts[2] = 1
    c = synthetic.concurrency_from_arrivals(counts, 2.0)
    assert c.tolist() == [0.0, 0.0, 0.5, 1.0, 0.5, 0.0]


def test_piecewise_linear() -> None:
    p = synthetic.piecewise_linear([(2, 10.0, 10.0), (4, 10.0, 50.0), (2, 50.0, 50.0)])
    assert p.tolist() == [10, 10, 10, 20, 30, 40, 50, 50]


@pytest.mark.parametrize("segment", [(0, 1.0, 1.0), (1.5, 1.0, 1.0), (3, -1.0, 1.0)])
def test_piecewise_linear_rejects_bad_segments(segment: tuple[int, float, float]) -> None:
    with pytest.raises(ValueError):
        synthetic.piecewise_linear([segment])


def test_from_profile_starts_warm_and_follows_the_profile() -> None:
    _ts, v = synthetic.from_profile(np.full(600, 5_000.0), service_time=0.5, seed=1)
    # No dip at the start: requests "in flight before the recording" are accounted for.
    assert abs(v[0] - 5_000) < 250
    assert v.mean() == pytest.approx(5_000, rel=0.01)


def test_from_profile_rejects_negative_levels() -> None:
    with pytest.raises(ValueError):
        synthetic.from_profile(np.array([1.0, -1.0]))


# --------------------------------------------------------------------------------------
# S2: burst


def test_burst_is_ten_times_the_baseline() -> None:
    before, ramp, duration = 1800, 2, 300
    _ts, v = synthetic.burst(seed=5)
    assert v.size == 1800 + 2 + 300 + 2 + 1800
    baseline = v[:before].mean()
    peak = v[before + ramp : before + ramp + duration].mean()
    after = v[-1700:].mean()
    assert baseline == pytest.approx(171.5, rel=0.02)
    assert peak / baseline == pytest.approx(10.0, rel=0.03)
    assert after == pytest.approx(baseline, rel=0.03)  # back to the baseline, not above it


def test_burst_is_sudden_and_the_ramp_variant_is_not() -> None:
    _, sudden = synthetic.burst(ramp=2, seed=5)
    _, gentle = synthetic.burst(ramp=30, seed=5)
    # Three seconds in (2 s ramp + requests still in flight from the ramp's last second) the
    # sudden one is at the peak; the 30 s one has barely moved.
    assert sudden[1803] > 9 * 171.5
    assert gentle[1803] < 3 * 171.5
    assert gentle[1815] == pytest.approx(171.5 * 5.5, rel=0.1)  # half-way up the 30 s ramp
    assert gentle[1832] > 9 * 171.5


def test_burst_default_levels_sit_between_replica_counts() -> None:
    # The 60 s average must not straddle a multiple of the default target (70).
    _, v = synthetic.burst(seed=5)
    stable = np.convolve(v, np.ones(60) / 60, mode="valid")
    counts = np.ceil(stable / 70)
    assert set(counts[:1700].tolist()) == {3.0}
    assert set(counts[1810:2040].tolist()) == {25.0}


# --------------------------------------------------------------------------------------
# S1: diurnal


def hourly_means(ts: np.ndarray, v: np.ndarray) -> np.ndarray:
    hour = (ts % 86_400) // 3600
    return np.array([v[hour == h].mean() for h in range(24)])


def test_diurnal_peak_trough_ratio_and_timing() -> None:
    ts, v = synthetic.diurnal(1, seed=2)
    assert ts.size == 86_400
    by_hour = hourly_means(ts, v)
    assert int(np.argmax(by_hour)) in (15, 16)  # peak at 16:00
    assert int(np.argmin(by_hour)) in (3, 4)  # trough 12 h later
    # The profile's ratio is (1 + 0.6) / (1 - 0.6) = 4; hourly means soften the extremes.
    assert 3.3 < by_hour.max() / by_hour.min() < 4.5
    assert v.mean() == pytest.approx(350, rel=0.03)


def test_diurnal_amplitude_sets_the_ratio() -> None:
    ts, v = synthetic.diurnal(1, amplitude=0.2, noise_cv=0.0, seed=2)
    by_hour = hourly_means(ts, v)
    assert 1.35 < by_hour.max() / by_hour.min() < 1.5  # (1.2 / 0.8) = 1.5 at the very peak


def test_diurnal_weekly_weekends_are_quieter() -> None:
    ts, v = synthetic.diurnal_weekly(seed=2)
    weekday = ((ts // 86_400) + 3) % 7  # Monday = 0
    assert weekday[0] == 0  # 2026-03-02 is a Monday
    ratio = v[weekday >= 5].mean() / v[weekday < 5].mean()
    assert ratio == pytest.approx(0.6, rel=0.03)


def test_diurnal_rejects_amplitude_of_one() -> None:
    with pytest.raises(ValueError):
        synthetic.diurnal(1, amplitude=1.0)


# --------------------------------------------------------------------------------------
# S3: sparse function


def test_sparse_function_idle_gaps_are_long() -> None:
    _ts, v = synthetic.sparse_function(24, seed=4)
    idle = zero_runs(v)
    inner = [length for start, length in idle if start > 0 and start + length < v.size]
    assert (v == 0).mean() > 0.98  # idle almost all the time
    assert 10 <= len(inner) <= 45  # about 22 bursts expected in 24 h
    # Most gaps are the regular ~10 min period; a burst lasts at most 5 s + 2 s service.
    assert np.median(inner) > 0.9 * 600 - 10
    # The lognormal share brings gaps of hours (median 2 h).
    assert max(inner) > 3600
    # Consecutive bursts never run into each other.
    assert min(inner) >= 2


def test_sparse_function_bursts_hold_one_to_twenty_requests() -> None:
    _ts, v = synthetic.sparse_function(24, seed=4, service_time=2.0)
    for start, length in nonzero_runs(v):
        if start + length == v.size:
            continue  # a burst cut off by the end of the series
        requests = v[start : start + length].sum() / 2.0  # each request is 2 s of in-flight time
        assert requests == int(requests) and 1 <= requests <= 20
        assert length <= 5 + 2 + 1  # burst spread + service time + the partial second


def test_sparse_function_starts_idle() -> None:
    _, v = synthetic.sparse_function(6, seed=4)
    start, length = zero_runs(v)[0]
    assert start == 0 and length >= 5 + 2 + 2  # the first burst comes one gap in


# --------------------------------------------------------------------------------------
# S4, S5


def test_ramp_goes_up_holds_and_comes_down() -> None:
    _ts, v = synthetic.ramp(seed=6)
    assert v.size == 3600 + 1800 + 3600
    ten_min = v.reshape(-1, 600).mean(axis=1)
    up, hold, down = ten_min[:6], ten_min[6:9], ten_min[9:]
    assert np.all(np.diff(up) > 0) and np.all(np.diff(down) < 0)
    assert hold == pytest.approx([700, 700, 700], rel=0.02)
    assert v[:60].mean() < 15 and v[-60:].mean() < 15


def test_stationary_noise_is_stationary_and_noisy() -> None:
    _ts, v = synthetic.stationary_noise(2, seed=8)
    assert v.mean() == pytest.approx(350, rel=0.05)
    halves = v.reshape(2, -1).mean(axis=1)
    assert halves[0] == pytest.approx(halves[1], rel=0.1)  # no trend
    blocks = v.reshape(-1, 5).mean(axis=1)
    assert 0.6 < blocks.std() / blocks.mean() < 0.95  # CV 0.75 plus a little Poisson noise
