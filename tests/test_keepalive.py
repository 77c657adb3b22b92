"""scaler.decide.zero: the hybrid histogram keep-alive of Serverless in the Wild, and the
two scale-to-zero strategies as the pipeline chooses and drives them.

Windows are worked out by hand from the formulas in the module docstring (dslab's:
pre-warm = head bin's lower edge × 0.9, keep-alive = tail bin's upper edge × 1.1); the step
function is walked through a scripted idle period tick by tick, and held to
the fixed grace (scaler.decide.zero.grace) whenever the histogram is not trusted.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.decide.zero import STRATEGIES, for_policy
from scaler.decide.zero.grace import FixedGrace, ZeroState, grace_step
from scaler.decide.zero.histogram import (
    HistogramKeepAlive,
    HistogramPolicy,
    IdleHistogram,
    KeepAliveState,
    KeepAliveWindows,
    keepalive_step,
    schedule,
    windows,
)
from scaler.policy import Policy, PredictionPolicy
from scaler.policy.model import KEEP_ALIVE

MIN = 60.0
GRACE = 30.0


def hist_of(*idles: float) -> IdleHistogram:
    h = IdleHistogram()
    for s in idles:
        h = h.record(s)
    return h


# --------------------------------------------------------------------------------------
# The histogram


def test_histogram_bins_minutes_over_four_hours():
    h = IdleHistogram()
    assert h.bins == 240 and h.total == 0
    h2 = h.record(0.0).record(59.9).record(60.0).record(4 * 3600 - 0.1).record(4 * 3600)
    assert h.total == 0                       # record returns a new histogram
    assert h2.counts[0] == 2 and h2.counts[1] == 1 and h2.counts[239] == 1
    assert h2.oob == 1 and h2.in_range == 4 and h2.total == 5
    assert h2.record(-5.0).counts[0] == 3     # a negative idle time counts as 0


def test_percentile_bin_is_the_first_to_reach_the_share():
    # 95 idles in bin 5, 5 in bin 30: cumulative 0.95 at bin 5, 1.0 at bin 30
    h = hist_of(*([5.5 * MIN] * 95 + [30 * MIN] * 5))
    assert h.percentile_bin(0.05) == 5
    assert h.percentile_bin(0.95) == 5
    assert h.percentile_bin(0.99) == 30


def test_cv_of_bin_counts():
    assert hist_of(*[600.0] * 20).cv() == pytest.approx(240 ** 0.5)   # all in one bin
    spread = hist_of(*[i * MIN for i in range(48)])                     # 48 bins × 1
    assert spread.cv() == pytest.approx(2.004, abs=1e-3)
    assert IdleHistogram().cv() == 0.0


# --------------------------------------------------------------------------------------
# Windows

WINDOW_CASES = [
    pytest.param(
        # bin [10, 11) min: pre-warm 600 × 0.9 = 540; keep-alive 660 × 1.1 = 726
        [600.0] * 20, 0.0, KeepAliveWindows(540.0, 726.0, True, ""), id="all-idles-10-min",
    ),
    pytest.param(
        # head bin 5 → 300 × 0.9 = 270; tail bin 30 → 31 × 60 × 1.1 = 2046
        [5.5 * MIN] * 95 + [30 * MIN] * 5, 0.0, KeepAliveWindows(270.0, 2046.0, True, ""),
        id="head-and-tail-bins",
    ),
    pytest.param(
        # all under a minute: head bin 0 → pre-warm 0 (keep warm); keep-alive 60 × 1.1 = 66
        [20.0, 40.0, 59.0] * 5, 0.0, KeepAliveWindows(0.0, 66.0, True, ""),
        id="sub-minute-idles-keep-warm",
    ),
    pytest.param(
        # the start-up time comes off the pre-warm: 540 − 120 = 420
        [600.0] * 20, 120.0, KeepAliveWindows(420.0, 726.0, True, ""), id="lead-subtracted",
    ),
    pytest.param(
        # 540 − 600 < 0: no point going to zero for nothing; keep warm
        [600.0] * 20, 600.0, KeepAliveWindows(0.0, 726.0, True, ""), id="lead-beyond-head",
    ),
    pytest.param(
        # 11 in range + 4 OOB = 27 % OOB < 50 %: percentiles of the in-range ones only
        [600.0] * 11 + [5 * 3600.0] * 4, 0.0, KeepAliveWindows(540.0, 726.0, True, ""),
        id="some-oob-still-representative",
    ),
    pytest.param(
        [600.0] * 9, 0.0, KeepAliveWindows(0.0, GRACE, False, ""), id="too-few-idles",
    ),
    pytest.param(
        # 5 OOB of 10 = 50 % >= dslab's oob_thr 0.5
        [600.0] * 5 + [5 * 3600.0] * 5, 0.0, KeepAliveWindows(0.0, GRACE, False, ""),
        id="too-many-oob",
    ),
    pytest.param(
        # one idle in each of 120 bins: CV = sqrt(240/120 − 1)·sqrt(240/239) ≈ 1.0 < 2
        [i * 2 * MIN for i in range(120)], 0.0, KeepAliveWindows(0.0, GRACE, False, ""),
        id="too-spread",
    ),
]


@pytest.mark.parametrize("idles, lead, want", WINDOW_CASES)
def test_windows(idles, lead, want):
    got = windows(hist_of(*idles), fallback_grace=GRACE, lead=lead)
    assert (got.prewarm, got.keepalive, got.representative) == pytest.approx(
        (want.prewarm, want.keepalive, want.representative))


def test_fallback_reasons_name_the_threshold():
    assert windows(hist_of(*[600.0] * 9), fallback_grace=GRACE).reason == (
        "fixed grace: too few idle periods: 9 < 10")
    assert windows(hist_of(*[600.0] * 5 + [5 * 3600.0] * 5), fallback_grace=GRACE).reason == (
        "fixed grace: too many idle times over 4 h: 50% >= 50%")
    assert windows(hist_of(*[i * 2 * MIN for i in range(120)]),
                   fallback_grace=GRACE).reason.startswith(
        "fixed grace: idle times too spread: bin-count CV 1.00 < 2")


def test_thresholds_are_parameters():
    loose = HistogramPolicy(min_idles=3, max_oob_share=0.9, min_cv=0.0)
    w = windows(hist_of(600.0, 600.0, 600.0), fallback_grace=GRACE, policy=loose)
    assert w.representative and w.prewarm == pytest.approx(540.0)


# --------------------------------------------------------------------------------------
# The step function, tick by tick


def run(state: KeepAliveState, script: list[tuple[float, int]], current: int, **kw):
    """Feed (now, count) ticks; the replicas set become the next tick's current."""
    out = []
    for now, count in script:
        current, state = keepalive_step(state, now, count, current, fallback_grace=GRACE, **kw)
        out.append((now, current))
    return out, state


def test_prewarm_timeline_on_a_scripted_idle_period():
    # Learned: idles of 10 min → pre-warm 540 s, keep-alive 726 s after the idle start.
    state = KeepAliveState(hist=hist_of(*[600.0] * 20), used=True)
    ticks = [(float(t), 3) for t in range(0, 100, 2)]          # busy
    ticks += [(float(t), 0) for t in range(100, 1000, 2)]      # idle from z = 100
    ticks += [(1000.0, 2)]                                     # demand returns
    out, state = run(state, ticks, current=3)
    got = dict(out)
    assert got[98.0] == 3
    assert got[100.0] == 0                  # pre-warm > 0: go to zero at once
    assert got[638.0] == 0                  # 538 s < 540 s
    assert got[640.0] == 1                  # z + pre-warm: one replica back, no demand yet
    assert got[824.0] == 1                  # 724 s < 726 s
    assert got[826.0] == 0                  # z + keep-alive: gone
    assert got[998.0] == 0
    assert got[1000.0] == 2
    # the idle period (900 s) went into the histogram: bin 15
    assert state.hist.counts[15] == 1 and state.hist.total == 21
    assert state.idle_since is None


def test_prewarm_brings_back_the_given_replicas():
    state = KeepAliveState(hist=hist_of(*[600.0] * 20), used=True)
    out, _ = run(state, [(0.0, 0), (539.0, 0), (540.0, 0), (700.0, 0), (726.0, 0)],
                 current=4, prewarm_replicas=2)
    assert [r for _, r in out] == [0, 0, 2, 2, 0]


def test_zero_prewarm_keeps_one_warm_until_keepalive():
    # idles under a minute: pre-warm 0, keep-alive 66 s
    state = KeepAliveState(hist=hist_of(*[20.0, 40.0, 59.0] * 5), used=True)
    out, _ = run(state, [(0.0, 0), (2.0, 0), (64.0, 0), (66.0, 0)], current=5)
    assert [r for _, r in out] == [1, 1, 1, 0]
    # ...and never scales up from zero for a zero want
    out, _ = run(state, [(0.0, 0), (2.0, 0)], current=0)
    assert [r for _, r in out] == [0, 0]


def test_windows_are_fixed_for_the_whole_idle_period():
    state = KeepAliveState(hist=hist_of(*[600.0] * 20), used=True)
    _, state = keepalive_step(state, 0.0, 0, 1, fallback_grace=GRACE)
    assert schedule(state) == (540.0, 726.0)
    _, later = keepalive_step(state, 300.0, 0, 0, fallback_grace=999.0)
    assert later.windows == state.windows
    assert schedule(KeepAliveState()) is None


def test_only_idle_periods_after_a_use_are_recorded():
    _, state = run(KeepAliveState(), [(0.0, 0), (500.0, 0), (502.0, 1)], current=0)
    assert state.hist.total == 0 and state.used          # idle before the first use
    _, state = run(state, [(600.0, 0), (700.0, 0)], current=1)
    assert state.hist.total == 0                         # still idle: censored, not recorded
    _, state = run(state, [(760.0, 2)], current=0)
    assert state.hist.counts[2] == 1                     # 160 s → bin 2


def test_learns_from_a_periodic_workload():
    # A timer every 10 min that keeps the decider busy for 60 s: idle periods of 540 s.
    state = KeepAliveState()
    current = 1
    history = []
    for t in range(0, 24 * 600, 2):
        count = 1 if t % 600 < 60 else 0
        current, state = keepalive_step(state, float(t), count, current, fallback_grace=GRACE)
        history.append((t, current))
    assert state.hist.counts[9] == 23                   # 540 s → bin 9
    w = windows(state.hist, fallback_grace=GRACE)
    assert (w.prewarm, w.keepalive) == pytest.approx((486.0, 660.0))
    # the last cycle: to zero at 60 s, back at 60 + 486 = 546 s, ready for the 600 s call
    last = {t % 600: r for t, r in history if t >= 23 * 600}
    assert last[60] == 0 and last[544] == 0 and last[546] == 1 and last[598] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=120),
       st.integers(0, 3), st.sampled_from([0.0, 4.0, 30.0]))
def test_untrusted_histogram_is_exactly_the_fixed_grace(counts, current, grace):
    # Fewer than 10 idle periods: keepalive_step must do what the fixed grace does.
    ka = KeepAliveState()
    zs = ZeroState()
    cur_ka = cur_z = current
    for i, c in enumerate(counts):
        now = 2.0 * i
        cur_ka, ka = keepalive_step(ka, now, c, cur_ka, fallback_grace=grace)
        cur_z, zs = grace_step(zs, now, c, cur_z, grace_period=grace)
        assert cur_ka == cur_z


# --------------------------------------------------------------------------------------
# The strategies behind scaler.decide.zero.ScaleToZero, as the pipeline uses them


def test_every_keep_alive_a_policy_may_name_has_a_strategy():
    assert sorted(STRATEGIES) == sorted(KEEP_ALIVE)


def test_the_policy_chooses_and_configures_the_strategy():
    fixed = for_policy(replace(Policy(), scale_to_zero_grace_period=45.0))
    assert isinstance(fixed, FixedGrace) and fixed.grace_period == 45.0
    hist = for_policy(replace(Policy(), keep_alive="histogram", initial_replicas=0,
                              prediction=replace(PredictionPolicy(), horizon=90.0)))
    assert isinstance(hist, HistogramKeepAlive)
    # pre-warm brings back at least one replica, early by the forecast horizon
    assert (hist.fallback_grace, hist.prewarm_replicas, hist.lead) == (30.0, 1, 90.0)


def test_a_reload_keeps_the_clock_of_the_same_strategy_and_resets_another():
    fixed = for_policy(Policy())
    assert fixed.replicas(0, 3, 100.0) == 1          # the grace clock starts at 100
    again = for_policy(replace(Policy(), scale_to_zero_grace_period=10.0), fixed)
    assert again.state == ZeroState(100.0) and again.grace_period == 10.0
    assert again.replicas(0, 1, 110.0) == 0           # 10 s later, with the new grace
    other = for_policy(replace(Policy(), keep_alive="histogram"), fixed)
    assert other.state == KeepAliveState()


def test_fixed_grace_settles_only_when_no_clock_runs():
    g = FixedGrace(30.0)
    assert g.replicas(4, 4, 0.0) == 4 and g.settled(0.0, 4) and g.remaining(0.0) is None
    assert g.replicas(0, 4, 2.0) == 1 and not g.settled(2.0, 1)
    assert g.remaining(12.0) == 20.0
    assert g.replicas(0, 1, 32.0) == 0 and g.settled(32.0, 0)


def test_histogram_keep_alive_settles_only_past_the_keep_alive():
    h = HistogramKeepAlive(GRACE)
    h.state = KeepAliveState(hist=hist_of(*[600.0] * 20), used=True)
    assert h.replicas(0, 3, 0.0) == 0                 # pre-warm 540 > 0: to zero at once
    assert not h.settled(0.0, 0) and h.remaining(0.0) == 726.0
    assert h.replicas(0, 0, 540.0) == 1               # pre-warmed
    assert h.replicas(0, 1, 726.0) == 0 and h.settled(726.0, 0)
