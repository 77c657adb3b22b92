"""scaler.decide.predict: forecasts that may raise a replica floor.

Quality tests run the models on the evaluation shapes (tools/synthetic.py) and on hand-made
signals whose right answer is known; the rules (warm-up, fallback, staleness, no peeking)
are checked on small grids; and the batch path for replay is held to exactly what the
online Forecaster gives, tick by tick.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synthetic
from scaler.decide.predict import (
    Advice,
    Forecaster,
    ForecastSeries,
    floor_series,
    forecast_series,
    quality,
    realised,
    replica_floor,
)
from scaler.decide.predict.models import hw_params, hw_pass
from scaler.policy.model import MODELS, PredictionPolicy

DAY = 86_400


def online(spec: PredictionPolicy, times, values, ticks,
           target_value: float | None = None) -> list[Advice]:
    """The reference: every sample with time <= tick into a Forecaster, then advise(tick)."""
    f = Forecaster(spec, target_value)
    out = []
    j = 0
    times_l, values_l = list(map(float, times)), list(map(float, values))
    for tick in map(float, ticks):
        while j < len(times_l) and times_l[j] <= tick:
            f.observe(times_l[j], values_l[j])
            j += 1
        out.append(f.advise(tick))
    return out


def as_series(advice: list[Advice]) -> ForecastSeries:
    nan = math.nan
    return ForecastSeries(
        np.array([nan if a.point is None else a.point for a in advice]),
        np.array([nan if a.upper is None else a.upper for a in advice]),
        np.array([a.active for a in advice], dtype=bool),
    )


def ticks_of(times, every: float = 2.0) -> np.ndarray:
    return np.arange(math.ceil(times[0] / every) * every, times[-1] + every / 2, every)


def seasonal(n: int, period: int, *, start: int = 1_000_000_020, noise: float = 0.0,
             seed: int = 0, level: float = 50.0, amplitude: float = 20.0):
    """One sample per second: level + amplitude·sin(2π t/period) + Gaussian noise."""
    t = start + np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(seed)
    v = level + amplitude * np.sin(2 * np.pi * t / period) + rng.normal(0, noise, n)
    return t, np.maximum(v, 0.0)


SMALL = PredictionPolicy(model="holt-winters", seasonality=(20.0,), grid=1.0, horizon=2.0,
                       min_history=2, refit_interval=10, error_window=30, min_errors=5,
                       linear_window=8, max_history=200)


# --------------------------------------------------------------------------------------
# Forecast quality on known shapes


@pytest.fixture(scope="module")
def diurnal_3d():
    """S1 (daily cycle, 10 % noise held per minute) for 3 days at 1 s, default spec."""
    times, values = synthetic.diurnal(days=3)
    spec = PredictionPolicy(model="holt-winters", horizon=30.0)   # 1d season, 1 min grid
    ticks = ticks_of(times)
    return spec, times, values, ticks, forecast_series(spec, times, values, ticks)


def test_holt_winters_tracks_s1_after_two_seasons(diurnal_3d):
    spec, times, values, ticks, fs = diurnal_3d
    day3 = ticks >= times[0] + 2 * DAY + 3600
    q = quality(fs.point[day3], realised(spec, times, values, ticks)[day3], fs.upper[day3])
    # The 1-minute noise alone (Gaussian, CV 0.1) puts MAPE near 0.08; a model that missed
    # the 4:1 daily swing would be far above.
    assert q["mape"] < 0.13
    # The 0.9 error quantile covers the actual about 90 % of the time.
    assert 0.85 <= q["coverage"] <= 0.97
    assert fs.active[day3].mean() > 0.95


def test_holt_winters_recovers_a_clean_daily_cycle():
    times, values = synthetic.diurnal(days=3, noise_cv=0.0)
    spec = PredictionPolicy(model="holt-winters", horizon=30.0)
    ticks = ticks_of(times)
    fs = forecast_series(spec, times, values, ticks)
    day3 = ticks >= times[0] + 2 * DAY + 3600
    q = quality(fs.point[day3], realised(spec, times, values, ticks)[day3])
    assert q["mape"] < 0.03   # only Poisson noise left (700 arrivals/s)
    assert fs.active[day3].all()


def test_two_seasons_beat_one_when_the_long_one_matters():
    # "days" of 12 s and "weeks" of 48 s: the last quarter of every week runs at 40 %.
    n = 48 * 14
    t = 1_000_000_032 + np.arange(n, dtype=np.float64)
    weekend = (t % 48) >= 36
    v = (50 + 20 * np.sin(2 * np.pi * t / 12)) * np.where(weekend, 0.4, 1.0)
    v = v + np.random.default_rng(3).normal(0, 1.0, n)
    ticks = ticks_of(t, 1.0)
    common = {"model": "holt-winters", "grid": 1.0, "horizon": 0.0, "min_history": 2, "refit_interval": 24,
                  "error_window": 24, "min_errors": 5, "max_history": 48 * 14}
    one = forecast_series(PredictionPolicy(seasonality=(12.0,), **common), t, v, ticks)
    two = forecast_series(PredictionPolicy(seasonality=(12.0, 48.0), **common), t, v, ticks)
    late = ticks >= t[0] + 48 * 4
    actual = realised(PredictionPolicy(grid=1.0, horizon=0.0, seasonality=(12.0,)), t, v, ticks)
    mae_one = quality(one.point[late], actual[late])["mae"]
    mae_two = quality(two.point[late], actual[late])["mae"]
    assert mae_two < 0.5 * mae_one


def test_linear_extrapolates_a_ramp_exactly():
    # y = 3 + 0.25 t: every bucket mean lies on a line, so the least-squares line through
    # the last window hits the bucket holding now + horizon exactly.
    t = 1_000_000_000 + np.arange(1200, dtype=np.float64)
    v = 3.0 + 0.25 * (t - t[0])
    spec = PredictionPolicy(model="linear", grid=10.0, horizon=60.0, linear_window=100.0,
                          min_errors=3, error_window=300)
    ticks = ticks_of(t)
    fs = forecast_series(spec, t, v, ticks)
    want = realised(spec, t, v, ticks)
    warm = ticks >= t[0] + 200
    have = warm & np.isfinite(want)
    np.testing.assert_allclose(fs.point[have], want[have], rtol=1e-9)
    assert fs.active[have].all()
    # EWMA cannot see a trend: it lags the ramp by more than the ramp's horizon rise.
    ew = forecast_series(PredictionPolicy(model="ewma", grid=10.0, horizon=60.0,
                                        linear_window=100.0), t, v, ticks)
    assert np.all(ew.point[have] < want[have] - 0.25 * 30)


def test_ewma_smooths_noise():
    rng = np.random.default_rng(7)
    t = 1_000_000_000 + np.arange(4000, dtype=np.float64)
    v = 100.0 + rng.normal(0, 20.0, t.size)
    spec = PredictionPolicy(model="ewma", grid=1.0, horizon=0.0, linear_window=60.0,
                          refit_interval=600, error_window=300)
    ticks = ticks_of(t, 1.0)
    fs = forecast_series(spec, t, v, ticks)
    late = np.isfinite(fs.point) & (ticks >= t[0] + 600)
    assert np.std(fs.point[late]) < 0.25 * np.std(v)
    assert abs(np.mean(fs.point[late]) - 100.0) < 2.0
    # the 0.9 quantile of the errors of a flat forecast of N(100, 20) is about +1.28 σ
    assert 115 < np.median(fs.upper[late]) < 135


# --------------------------------------------------------------------------------------
# Warm-up, fallback, staleness, resets


def test_warming_until_min_history_then_active():
    t, v = seasonal(200, 20, noise=0.5)
    advice = online(SMALL, t, v, t)          # a tick every second
    start = t[0]
    for a, tick in zip(advice, t):
        if tick < start + 40:                # two 20 s seasons
            assert not a.active and a.point is None
    assert advice[20].reason == "warming: 1.0 of 2 seasons"
    assert advice[30].reason == "warming: 1.5 of 2 seasons"
    first_active = next(tick for a, tick in zip(advice, t) if a.active)
    # fitted at 40 s; 5 horizon errors (3 steps ahead) need about 8 more buckets
    assert start + 40 <= first_active <= start + 50
    warm_errors = [a for a in advice if a.reason.startswith("warming: ") and "errors" in a.reason]
    assert warm_errors and warm_errors[0].point is not None and warm_errors[0].upper is None
    assert advice[-1] == Advice(advice[-1].point, advice[-1].upper, True, "active")


def test_falls_back_when_recent_error_is_poor():
    # 10 seasons of a clean cycle, then random on/off load the model cannot predict.
    t, v = seasonal(400, 20, noise=0.2)
    rng = np.random.default_rng(1)
    v[200:] = np.where(rng.random(200) < 0.3, 150.0, 0.0)
    advice = online(SMALL, t, v, t)
    assert all(a.active for a in advice[120:200])
    later = advice[260:]
    assert all(not a.active for a in later)
    assert all(a.reason.startswith("fallback: recent wMAPE ") for a in later)
    assert all(replica_floor(a, 10.0) == 0 for a in later)


def test_stale_when_no_bucket_completes():
    t, v = seasonal(200, 20, noise=0.5)
    f = Forecaster(SMALL)
    for ti, vi in zip(t, v):
        f.observe(ti, vi)
    assert f.advise(t[-1]).active
    # the last final bucket ended at t[-1]; stale after 2 × grid
    assert f.advise(t[-1] + 1.5).active
    stale = f.advise(t[-1] + 2.0)
    assert not stale.active and stale.reason == "stale: last complete bucket ended 2s ago"


def test_a_gap_longer_than_max_history_starts_over():
    t, v = seasonal(200, 20, noise=0.5)
    t2 = np.concatenate([t, t + 1000.0])     # max_history is 200 s
    v2 = np.concatenate([v, v])
    advice = online(SMALL, t2, v2, t2)
    assert advice[199].active
    assert advice[200].reason == "warming: no complete bucket yet"   # the gap is seen
    assert advice[220].reason.startswith("warming: ") and not advice[220].active


def test_invalid_samples_are_not_zero():
    t, v = seasonal(200, 20, noise=0.5)
    spoiled = v.copy()
    spoiled[150:160] = [math.nan, -1.0, math.inf, math.nan, -5, math.nan, math.nan, -1, -1, -1]
    a = as_series(online(SMALL, t, spoiled, t))
    b = as_series(online(SMALL, np.delete(t, range(150, 160)), np.delete(v, range(150, 160)), t))
    np.testing.assert_array_equal(a.point, b.point)
    np.testing.assert_array_equal(a.active, b.active)


def test_samples_of_one_second_add_up_like_the_windows():
    # Two samples per second of 30 % and 70 % of the load = one sample of the whole load.
    t, v = seasonal(200, 20, noise=0.5)
    split_t = np.repeat(t, 2) + np.tile([0.0, 0.5], t.size)
    split_v = np.repeat(v, 2) * np.tile([0.3, 0.7], t.size)
    whole = forecast_series(SMALL, t, v, t)
    split = forecast_series(SMALL, split_t, split_v, t)
    np.testing.assert_allclose(split.point, whole.point, rtol=1e-9)
    assert split.active.tolist() == whole.active.tolist()
    np.testing.assert_allclose(realised(SMALL, split_t, split_v, t), realised(SMALL, t, v, t),
                               rtol=1e-12)


def test_a_late_sample_for_a_final_bucket_is_dropped():
    t, v = seasonal(200, 20, noise=0.5)
    f, g = Forecaster(SMALL), Forecaster(SMALL)
    for ti, vi in zip(t, v):
        f.observe(ti, vi)
        g.observe(ti, vi)
        if ti == t[150]:
            g.observe(t[100], 1e6)            # a bucket that is already final
    assert f.advise(t[-1]) == g.advise(t[-1])


# --------------------------------------------------------------------------------------
# No peeking, and batch == online


@pytest.mark.parametrize("model", MODELS)
def test_a_future_spike_never_changes_earlier_advice(model):
    t, v = seasonal(300, 20, noise=0.5)
    spike = 230
    v[spike:spike + 5] = 5000.0
    spec = PredictionPolicy(**{**SMALL.__dict__, "model": model})
    ticks = ticks_of(t, 1.0)
    full = forecast_series(spec, t, v, ticks, 10.0)
    cut = forecast_series(spec, t[:spike], v[:spike], ticks, 10.0)
    before = ticks < t[spike]
    for a, b in ((full.point, cut.point), (full.upper, cut.upper), (full.active, cut.active)):
        np.testing.assert_array_equal(a[before], b[before])
    # ...and it does change the advice once it has happened
    after = ticks >= t[spike] + 10
    assert not np.array_equal(full.upper[after], cut.upper[after], equal_nan=True)


@st.composite
def recordings(draw):
    n = draw(st.integers(1, 250))
    steps = draw(st.lists(st.sampled_from([0.0, 0.4, 1.0, 1.0, 1.0, 1.0, 2.0, 3.5, 30.0]),
                          min_size=n, max_size=n))
    start = draw(st.integers(0, 9)) + 1_000_000_000.0
    times = start + np.cumsum(steps)
    period = draw(st.sampled_from([6.0, 10.0, 20.0]))
    values = 10 + 6 * np.sin(2 * np.pi * times / period)
    noise = draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
    values = np.maximum(values + np.array(noise), 0.0)
    bad = draw(st.lists(st.integers(0, n - 1), max_size=n // 10))
    for i, kind in zip(bad, draw(st.lists(st.sampled_from([math.nan, -1.0, math.inf]),
                                          min_size=len(bad), max_size=len(bad)))):
        values[i] = kind
    return times, values


@st.composite
def specs(draw):
    grid = float(draw(st.integers(1, 5)))
    m = draw(st.integers(max(2, math.ceil(20 / grid)), max(2, 60 // int(grid))))
    model = draw(st.sampled_from(MODELS))
    seasons = (grid * m,)
    if model == "seasonal-level":
        if draw(st.booleans()):
            seasons = ()   # the level alone
    elif draw(st.booleans()):
        seasons = (grid * m, grid * m * draw(st.integers(2, 3)))
    horizon = float(draw(st.integers(0, int(grid * (m - 2)))))
    return PredictionPolicy(
        model=model, seasonality=seasons, grid=grid, horizon=horizon,
        max_extra_cost=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        min_history=draw(st.sampled_from([1.0, 1.5, 2.0])),
        refit_interval=float(draw(st.integers(1, 60))),
        quantile=draw(st.sampled_from([0.5, 0.9, 0.99])),
        error_window=float(draw(st.integers(3, 60))), min_errors=draw(st.integers(1, 6)),
        max_error=draw(st.sampled_from([0.2, 0.5, 3.0])),
        linear_window=float(draw(st.integers(2, 30))),
        max_history=float(draw(st.integers(20, 300))),
        stale_after=draw(st.sampled_from([None, 5.0, 40.0])),
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings(), specs(), st.sampled_from([1.0, 2.0, 3.0]), st.sampled_from([0.7, 7.0]))
def test_forecast_series_is_exactly_the_online_forecaster(recording, spec, every, target):
    times, values = recording
    ticks = np.arange(math.floor(times[0]) - 2, times[-1] + 12, every)
    batch = forecast_series(spec, times, values, ticks, target)
    ref = as_series(online(spec, times, values, ticks, target))
    # bit for bit: compare the IEEE-754 representations, NaN included
    assert batch.point.tobytes() == ref.point.tobytes()
    assert batch.upper.tobytes() == ref.upper.tobytes()
    assert batch.active.tolist() == ref.active.tolist()


def test_batch_equals_online_on_s1_with_refits():
    # 2.4 h of S1 at 1 s on a 10 s grid with a 10 min season: 60 refits.
    times, values = synthetic.diurnal(days=0.1, seed=4)
    spec = PredictionPolicy(model="holt-winters", seasonality=(600.0,), grid=10.0,
                            refit_interval=120.0,
                          error_window=600.0, min_errors=10)
    ticks = ticks_of(times)
    batch = forecast_series(spec, times, values, ticks)
    ref = as_series(online(spec, times, values, ticks))
    assert batch.point.tobytes() == ref.point.tobytes()
    assert batch.upper.tobytes() == ref.upper.tobytes()
    assert batch.active.tolist() == ref.active.tolist()
    assert batch.active.any()


# --------------------------------------------------------------------------------------
# Pieces


def test_block_filter_is_the_holt_winters_recursion():
    rng = np.random.default_rng(2)
    ms, k0, n = (12, 36), 5, 400
    y = 20 + 5 * np.sin(2 * np.pi * (np.arange(n) + k0) / 12) + rng.normal(0, 1, n)
    rings0 = [rng.normal(0, 2, m) for m in ms]
    x = (0.3, 0.2, 0.4, 0.1)
    state: dict = {}
    sse = hw_pass(y, k0, ms, 19.0, rings0, x, state)
    alpha, beta, gammas = hw_params(x)
    rings = [list(r) for r in rings0]
    level, trend, want_sse = 19.0, 0.0, 0.0
    for i in range(n):
        k = k0 + i
        e = y[i] - (level + trend + sum(r[k % m] for r, m in zip(rings, ms)))
        want_sse += e * e
        level, trend = level + trend + alpha * e, trend + beta * e
        for r, m, g in zip(rings, ms, gammas):
            r[k % m] += g * e
    assert sse == pytest.approx(want_sse, rel=1e-12)
    assert state["level"] == pytest.approx(level, rel=1e-12)
    assert state["trend"] == pytest.approx(trend, abs=1e-12)
    for have, want in zip(state["rings"], rings):
        np.testing.assert_allclose(have, want, rtol=1e-12, atol=1e-12)


def test_replica_floor_only_while_active():
    assert replica_floor(Advice(100.0, 141.0, True, "active"), 70.0) == 3
    assert replica_floor(Advice(100.0, 140.0, True, "active"), 70.0) == 2
    assert replica_floor(Advice(100.0, 141.0, False, "fallback: x"), 70.0) == 0
    assert replica_floor(Advice(None, None, False, "warming: x"), 70.0) == 0
    series = ForecastSeries(np.array([100.0, np.nan, 10.0]), np.array([141.0, np.nan, 500.0]),
                            np.array([True, False, False]))
    assert floor_series(series, 70.0).tolist() == [3, 0, 0]


def test_quality_metrics():
    point = np.array([10.0, 20.0, np.nan, 5.0, 8.0])
    actual = np.array([12.0, 20.0, 30.0, 0.0, 10.0])
    upper = np.array([12.0, 19.0, 40.0, 5.0, np.nan])
    q = quality(point, actual, upper)
    assert q["n"] == 4
    assert q["mae"] == pytest.approx((2 + 0 + 5 + 2) / 4)
    assert q["mape"] == pytest.approx((2 / 12 + 0 + 2 / 10) / 3)   # actual 0 left out
    assert q["coverage"] == pytest.approx(3 / 4)                   # 12>=12, 19<20, 40>=30, 5>=0


@pytest.mark.parametrize("kwargs, message", [
    ({"seasonality": (90.0,)}, "whole multiple"),
    ({"model": "holt-winters", "seasonality": (90.0,)}, "whole multiple"),
    ({"model": "holt-winters", "seasonality": (3600.0, 5400.0)}, "multiple of the others"),
    ({"model": "holt-winters", "seasonality": (600.0,), "horizon": 600.0},
     "shorter than the shortest season"),
    ({"model": "holt-winters", "seasonality": ()}, "needs at least one season"),
    ({"model": "holt-winters", "min_history": 0.5}, "minHistory"),
    ({"seasonality": (3600.0, 86400.0)}, "one season or none"),
    ({"seasonality": (600.0,), "horizon": 600.0}, "shorter than the season"),
    ({"max_extra_cost": 1.5}, "maxExtraCost"),
    ({"max_extra_cost": -0.1}, "maxExtraCost"),
    ({"quantile": 1.0}, "quantile"),
    ({"model": "arima"}, "model"),
    ({"mode": "shadow"}, "mode"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_spec_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PredictionPolicy(**kwargs)


def test_spec_sorts_seasons_and_derives_steps():
    spec = PredictionPolicy(model="holt-winters", seasonality=(7 * DAY, DAY), horizon=30.0)
    assert spec.seasonality == (DAY, 7 * DAY)
    assert spec.season_buckets == (1440, 10080)
    assert spec.horizon_steps == (1, 2)     # now + 30 s falls in the next bucket or the one after
    assert PredictionPolicy(horizon=120.0).horizon_steps == (3, 3)
