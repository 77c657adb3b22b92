"""scaler.decide.predict.seasonal: the default forecasting model (seasonal profile + median
level, band sized by a cost budget).

The pieces are checked on numbers worked out by hand (the profile's pooled medians, the
level's median, the warm-up, the choice of coverage), the behaviour on loads whose right
answer is known (a burst does not move the level, a season pays at long horizons, the
budget bounds what the floor costs), and batch == online is in tests/test_predict.py's
property test, which draws seasonal-level specs too.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

import numpy as np
import pytest

import synthetic
from scaler.decide.predict import Forecaster, forecast_series, quality, realised
from scaler.decide.predict.seasonal import COVERAGES, Profile, SeasonalLevel, Shape
from scaler.policy import Policy, PredictionPolicy
from scaler.replay.engine import replay
from scaler.replay.report.summary import summarize

BASE = 1_000_000_020


def feed(core: SeasonalLevel, ys, k0: int = 0) -> None:
    """Bucket means y_0, y_1, ... made final one after the other (NaN: a missing bucket)."""
    for i, y in enumerate(ys):
        core.complete(k0 + i, y, k0 + i + 1)


# --------------------------------------------------------------------------------------
# The profile


def test_profile_is_the_median_over_seasons_and_neighbouring_phases():
    # m = 4 phases, 2 seasons pooled, ±1 phase: phase φ pools 2 × 3 = 6 values.
    p = Profile(m=4, seasons=2, halfwidth=1)
    history = deque([10.0, 20.0, 30.0, 40.0, 12.0, 22.0, 32.0, 42.0])   # buckets 0..7
    assert not p.recompute(7, history, first=0)      # not a season boundary
    assert p.recompute(8, history, first=0)
    # φ = 1: buckets {0,1,2} and {4,5,6} → 10, 20, 30, 12, 22, 32 → median (20 + 22) / 2
    # φ = 0: {−1 (unknown), 0, 1} and {3, 4, 5} → 10, 20, 40, 12, 22 → 20
    # φ = 3: {2, 3, 4} and {6, 7, 8 (the future)} → 30, 40, 12, 32, 42 → 32
    assert p.values == [20.0, 21.0, 31.0, 32.0]
    assert p.value(9) == 21.0 and p.boundary == 8
    assert not p.recompute(8, history, first=0)      # once per boundary


def test_profile_waits_for_a_whole_season_and_ignores_missing_buckets():
    p = Profile(m=4, seasons=2, halfwidth=0)
    assert not p.recompute(4, deque([1.0, 2.0, 3.0]), first=1)     # 3 buckets seen
    assert p.value(5) == 0.0                                        # S ≡ 0 meanwhile
    assert p.recompute(8, deque([1.0, math.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), first=0)
    assert p.values == [3.0, 6.0, 5.0, 6.0]   # φ = 1 had only 6; the others two values


# --------------------------------------------------------------------------------------
# Level, warm-up and the band, per bucket

SPEC = PredictionPolicy(enabled=True, seasonality=(), horizon=0.0)   # level only, 1 step


def test_warm_up_reasons_then_active_with_a_coverage():
    core = SeasonalLevel(SPEC, target_value=10.0)
    feed(core, [50.0] * 29)
    assert core.advice.reason == "warming: 29 of 30 buckets" and not core.advice.active
    feed(core, [50.0], 29)
    # the first forecast (for bucket 1) was made after bucket 0: 29 errors so far
    assert core.advice.reason == "warming: 29 of 30 forecast errors"
    assert core.advice.point == 50.0 and core.advice.upper is None
    feed(core, [50.0], 30)
    a = core.advice
    assert (a.active, a.reason, a.point, a.upper) == (True, "active", 50.0, 50.0)
    assert a.coverage == 0.5      # nothing costed yet: the median error


def test_the_level_is_a_median_so_a_burst_does_not_move_it():
    core = SeasonalLevel(SPEC, target_value=10.0)
    feed(core, [50.0] * 40 + [500.0] * 5)
    assert core.advice.point == 50.0     # 5 of 30 residuals at 500: the median stays
    feed(core, [500.0] * 11, 45)
    assert core.advice.point == 500.0    # 16 of 30: now it is the level


def test_a_perfect_forecast_costs_nothing_so_the_widest_band_is_allowed():
    core = SeasonalLevel(replace(SPEC, max_extra_cost=0.0), target_value=10.0)
    feed(core, [50.0] * 100)
    a = core.advice
    # every error 0: every coverage's floor is ceil(50 / 10) = 5 = the decider's count
    assert a.coverage == COVERAGES[-1] and a.upper == 50.0


def test_the_budget_picks_the_widest_coverage_it_affords():
    core = SeasonalLevel(SPEC, target_value=10.0)
    core.costed = 100
    core.cost_base = 100.0
    core.cost_extra = [0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 9.0, 10.0, 11.0, 30.0, 40.0, 50.0, 60.0]
    assert COVERAGES[core._choose()] == 0.7                           # 10 <= 10 % of 100
    core.spec = replace(SPEC, max_extra_cost=0.3)
    assert COVERAGES[core._choose()] == 0.85
    core.spec = replace(SPEC, max_extra_cost=0.0)
    assert COVERAGES[core._choose()] == 0.02
    core.cost_extra[0] = 5.0
    assert COVERAGES[core._choose()] == 0.02    # none affordable: the narrowest


def test_floors_are_costed_in_the_deciders_replicas():
    core = SeasonalLevel(SPEC, target_value=10.0)
    core.sorted_z = [-1.0, 0.0, 1.0]
    # f = 25: s = sqrt(25) = 5; U_p = 25 + Q_p(z) · 5: p 0.02 → 25 − 0.96·5 = 20.2 → 3
    # replicas, p 0.5 → 25 → 3, p 0.98 → 25 + 0.96·5 = 29.8 → 3, p 0.7 → 27 → 3
    assert core._floors(25.0) == (3,) * len(COVERAGES)
    # f = 0: s = sqrt(TV / 10) = 1; U_0.98 = 0.96 → 1 replica, U_0.5 = 0 → 0
    floors = dict(zip(COVERAGES, core._floors(0.0)))
    assert floors[0.5] == 0 and floors[0.98] == 1 and floors[0.02] == 0


def test_a_gap_longer_than_the_history_starts_over_and_a_short_one_does_not():
    spec = replace(SPEC, max_history=3600.0)
    core = SeasonalLevel(spec, target_value=10.0)
    feed(core, [50.0] * 40)
    core.complete(40, 50.0, 40 + 30)        # 29 missing buckets: kept
    assert core.last == 69 and core.first == 0
    core.complete(70, 50.0, 70 + 62)        # 61 missing > 60 buckets of history
    assert core.last is None and core.first is None


def test_seasonal_level_needs_the_target_value():
    with pytest.raises(ValueError, match="target value"):
        Forecaster(SPEC)
    with pytest.raises(ValueError, match="> 0"):
        SeasonalLevel(SPEC, target_value=0.0)
    assert Forecaster.for_policy(Policy(target=10.0, prediction=SPEC))._core.tv == 7.0


# --------------------------------------------------------------------------------------
# Behaviour on known loads


def test_a_season_pays_at_long_horizons():
    # A 10-minute "day" on a 10 s grid, 14 seasons, forecast a quarter season ahead: the
    # profile knows where the cycle goes, the level alone lags it by the horizon.
    times = BASE + np.arange(14 * 600, dtype=np.float64)
    values = 300 + 200 * np.sin(2 * np.pi * times / 600.0)
    values = np.maximum(values + np.random.default_rng(5).normal(0, 20, times.size), 0.0)
    common = dict(enabled=True, grid=10.0, horizon=150.0, max_history=14 * 600.0)
    ticks = np.arange(times[0], times[-1], 10.0)
    late = ticks >= times[0] + 3 * 600
    out = {}
    for name, seasons in (("season", (600.0,)), ("level", ())):
        spec = PredictionPolicy(seasonality=seasons, **common)
        fs = forecast_series(spec, times, values, ticks, 70.0)
        actual = realised(spec, times, values, ticks)
        out[name] = quality(fs.point[late], actual[late])["mae"]
    assert out["season"] < 0.35 * out["level"]


def test_the_budget_bounds_what_the_floor_costs():
    # Two days of a noisy daily cycle, about 35 replicas at its mean: each budget buys
    # less unserved demand for more pod-seconds, and the pod-seconds the floor adds stay
    # within the budget (the counterfactual estimate is conservative; measured 0.9–1.0 × it
    # here, 0.55–0.8 × on the NASA trace).
    times, values = synthetic.diurnal(days=2, seed=7)
    times, values = times.astype(np.float64), values / 100
    policy = Policy(target=0.1)
    reactive = summarize(replay(policy, times, values, 10.0))
    cost, unserved = [], []
    for budget in (0.0, 0.05, 0.10, 0.20):
        pred = PredictionPolicy(enabled=True, horizon=10.0, max_extra_cost=budget)
        s = summarize(replay(replace(policy, prediction=pred), times, values, 10.0))
        cost.append(s["pod_seconds"] / reactive["pod_seconds"] - 1)
        unserved.append(s["under_provisioned_demand_seconds"])
        assert cost[-1] <= budget + 0.002, (budget, cost[-1])
    assert cost == sorted(cost) and cost[-1] > 0.15
    assert unserved == sorted(unserved, reverse=True)
    assert unserved[2] < 0.5 * reactive["under_provisioned_demand_seconds"]


def test_more_budget_buys_a_wider_band():
    times, values = synthetic.stationary_noise(hours=6, seed=3)
    ticks = np.arange(times[0], times[-1], 60.0)
    mean_upper = []
    for budget in (0.0, 0.1, 1.0):
        spec = PredictionPolicy(enabled=True, max_extra_cost=budget)
        fs = forecast_series(spec, times.astype(np.float64), values, ticks, 70.0)
        mean_upper.append(np.nanmean(fs.upper[fs.active]))
    assert mean_upper[0] < mean_upper[1] < mean_upper[2]


def test_shape_sizes_are_parameters():
    core = SeasonalLevel(SPEC, target_value=10.0, shape=Shape(level_window=5))
    feed(core, [50.0] * 4)
    assert core.advice.reason == "warming: 4 of 5 buckets"
