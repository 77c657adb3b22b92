"""scaler.decide.zero: the warm-schedule keep-alive (``keepAlive: histogram``) and the two
scale-to-zero strategies as the pipeline chooses and drives them.

Schedules are worked out by hand from the rule in the module docstring (bin b warm iff
G·c_b > 60·(S_b − c_b) + 30·c_b, the evidence rule inside G, the fixed G below 2 idle
periods); the step function is walked through scripted idle periods tick by tick, the
per-workload guard is driven into and out of force, and the fixed keep-alive is held to
the fixed grace (scaler.decide.zero.grace) it stands for.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.decide.zero import STRATEGIES, for_policy
from scaler.decide.zero.grace import FixedGrace, ZeroState, grace_step
from scaler.decide.zero.histogram import (
    HistogramKeepAlive,
    IdleHistogram,
    KeepAliveState,
    ScheduleRules,
    WarmSchedule,
    idle_plan,
    keepalive_step,
    warm_schedule,
)
from scaler.decide.zero.startup import DEFAULT_LEAD, StartupClock, observe_ready, observe_scale
from scaler.policy import Policy, PredictionPolicy
from scaler.policy.model import KEEP_ALIVE

MIN = 60.0
G = 600.0      # coldStartCost: the fixed 10-minute keep-alive to beat


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


def test_histogram_rejects_a_wrong_number_of_bins():
    with pytest.raises(ValueError, match="240 bins"):
        IdleHistogram(counts=(0,) * 10)


# --------------------------------------------------------------------------------------
# Schedules

SCHEDULE_CASES = [
    pytest.param(
        # one idle period is not a pattern: the fixed keep-alive
        [600.0], False, ((0.0, G),), False, id="too-few-idles",
    ),
    pytest.param(
        # 20 idles in bin 10: inside G, S = 20 survivors make each bin cost 1,200 for
        # nothing (cold); bin 10: 600 × 20 = 12,000 > 30 × 20 → warm; nothing after
        [630.0] * 20, False, ((600.0, 660.0),), True, id="timer-every-11-minutes",
    ),
    pytest.param(
        # the same workload behind on cold starts: the guard keeps the first G warm
        [630.0] * 20, True, ((0.0, 660.0),), True, id="guard-keeps-G",
    ),
    pytest.param(
        # all idles in bin 0 (short ones likely: p = 16/17): bin 0 warm on its own; fewer
        # than 10 idles reach bins 1..9, too little evidence to go cold inside G
        [30.0] * 15, False, ((0.0, G),), True, id="short-idles-keep-G",
    ),
    pytest.param(
        # two modes, 3 min and 2 h, 20 each: p(short) = 21/42 is not > 1/2, so thin
        # evidence does not keep G; bin 3 and bin 120 are warm (12,000 > 1,800 and > 600)
        [200.0] * 20 + [7230.0] * 20, False, ((180.0, 240.0), (7200.0, 7260.0)), True,
        id="two-modes",
    ),
    pytest.param(
        # every gap over 4 h: nothing is worth keeping, to zero at once
        [5 * 3600.0] * 10, False, (), True, id="all-out-of-bounds",
    ),
    pytest.param(
        # bins 5 and 6 are warm and merge; after them only 2 idles survive, too little
        # evidence to go cold inside G (p(short) = 21/24), so bins 7..9 stay warm too;
        # bin 180: 600 × 2 > 30 × 2
        [330.0] * 10 + [390.0] * 10 + [3 * 3600.0] * 2, False,
        ((300.0, 600.0), (10800.0, 10860.0)), True, id="adjacent-bins-merge",
    ),
]


@pytest.mark.parametrize("idles, guard, runs, learnt", SCHEDULE_CASES)
def test_warm_schedule(idles, guard, runs, learnt):
    got = warm_schedule(hist_of(*idles), cold_start_cost=G, guard=guard)
    assert (got.runs, got.learnt) == (runs, learnt)


def test_schedule_reasons_say_why():
    assert warm_schedule(hist_of(600.0), cold_start_cost=G).reason == (
        "fixed keep-alive: 1 idle periods < 2")
    assert warm_schedule(hist_of(*[200.0] * 20 + [7230.0] * 20), cold_start_cost=G).reason == (
        "40 idle periods, 2 warm runs")
    assert warm_schedule(hist_of(*[630.0] * 20), cold_start_cost=G, guard=True).reason == (
        "20 idle periods, 1 warm run (guard: keep-alive forced)")


def test_a_dearer_cold_start_keeps_more_warm():
    # one idle in bin 20 among 40 surviving: 600 × 1 < 60 × 39 + 30 cold; at 4 h it pays
    idles = [200.0] * 20 + [1230.0] + [7230.0] * 19
    assert (1200.0, 1260.0) not in warm_schedule(hist_of(*idles), cold_start_cost=G).runs
    assert (1200.0, 1260.0) in warm_schedule(hist_of(*idles), cold_start_cost=4 * 3600).runs


def test_rules_are_parameters():
    h = hist_of(600.0, 600.0, 600.0)
    assert not warm_schedule(h, cold_start_cost=G, rules=ScheduleRules(min_idles=4)).learnt
    assert warm_schedule(h, cold_start_cost=G).learnt


def test_schedule_edges():
    s = WarmSchedule(((0.0, 60.0), (300.0, 360.0)), True, "")
    assert s.keepalive == 360.0 and s.prewarm == 300.0
    assert s.warm_at(59.9) and not s.warm_at(60.0) and s.warm_at(300.0)
    assert not s.warm_at(360.0)
    assert WarmSchedule((), True, "").keepalive == 0.0
    assert WarmSchedule(((0.0, 60.0),), True, "").prewarm is None


# --------------------------------------------------------------------------------------
# The step function, tick by tick


def run(state: KeepAliveState, script: list[tuple[float, int]], current: int, **kw):
    """Feed (now, count) ticks; the replicas set become the next tick's current."""
    out = []
    kw.setdefault("cold_start_cost", G)
    for now, count in script:
        current, state = keepalive_step(state, now, count, current, **kw)
        out.append((now, current))
    return out, state


def test_prewarm_timeline_on_a_scripted_idle_period():
    # Learnt: warm runs [180, 240) and [7200, 7260) s after the idle start; lead 30 s.
    state = KeepAliveState(hist=hist_of(*[200.0] * 20 + [7230.0] * 20), used=True)
    ticks = [(float(t), 3) for t in range(0, 100, 2)]          # busy
    ticks += [(float(t), 0) for t in range(100, 8000, 2)]      # idle from z = 100
    ticks += [(8000.0, 2)]                                     # demand returns
    out, state = run(state, ticks, current=3, lead=30.0, prewarm_replicas=2)
    got = dict(out)
    assert got[98.0] == 3
    assert got[100.0] == 0                  # bin 0 is cold: to zero at once
    assert got[248.0] == 0                  # 148 s < 180 − 30
    assert got[250.0] == 2                  # z + 150: pre-warmed, ready by z + 180
    assert got[338.0] == 2                  # 238 s < 240
    assert got[340.0] == 0                  # z + 240: gone
    assert got[7268.0] == 0 and got[7270.0] == 2 and got[7358.0] == 2 and got[7360.0] == 0
    assert got[7998.0] == 0 and got[8000.0] == 2
    # the idle period (7,900 s) went into the histogram: bin 131
    assert state.hist.counts[131] == 1 and state.hist.total == 41
    assert state.idle_since is None and state.schedule is None


def test_a_run_from_zero_keeps_one_and_never_scales_up_from_zero():
    state = KeepAliveState(hist=hist_of(*[30.0] * 15), used=True)   # [0, G) warm
    out, _ = run(state, [(0.0, 0), (2.0, 0), (598.0, 0), (600.0, 0)], current=5)
    assert [r for _, r in out] == [1, 1, 1, 0]
    out, _ = run(state, [(0.0, 0), (2.0, 0)], current=0)
    assert [r for _, r in out] == [0, 0]


def test_the_schedule_is_fixed_for_the_whole_idle_period():
    state = KeepAliveState(hist=hist_of(*[630.0] * 20), used=True)
    _, state = keepalive_step(state, 0.0, 0, 1, cold_start_cost=G)
    assert idle_plan(state) == (600.0, 660.0)
    _, later = keepalive_step(state, 300.0, 0, 0, cold_start_cost=60.0)
    assert later.schedule == state.schedule
    assert idle_plan(KeepAliveState()) is None
    zero = KeepAliveState(hist=hist_of(*[5 * 3600.0] * 10), used=True)
    _, zero = keepalive_step(zero, 50.0, 0, 1, cold_start_cost=G)
    assert math.isnan(idle_plan(zero)[0]) and idle_plan(zero)[1] == 50.0


def test_only_idle_periods_after_a_use_are_recorded():
    _, state = run(KeepAliveState(), [(0.0, 0), (500.0, 0), (502.0, 1)], current=0)
    assert state.hist.total == 0 and state.used          # idle before the first use
    _, state = run(state, [(600.0, 0), (700.0, 0)], current=1)
    assert state.hist.total == 0                         # still idle: censored, not recorded
    _, state = run(state, [(760.0, 2)], current=0)
    assert state.hist.counts[2] == 1                     # 160 s → bin 2


def test_the_guard_forces_the_keep_alive_after_two_extra_cold_starts():
    # Learnt: only [600, 660) warm. Idle periods of 3 min end cold although shorter than
    # G (extra); after two of them the next idle period keeps G warm.
    state = KeepAliveState(hist=hist_of(*[630.0] * 20), used=True)
    t = 0.0
    for n in (1, 2):
        _, state = run(state, [(t, 0), (t + 180.0, 1)], current=1)
        assert (state.extra, state.saved) == (n, 0)
        t += 1000.0
    out, state = run(state, [(t, 0), (t + 2.0, 0)], current=1)
    assert state.schedule.runs == ((0.0, 660.0),) and [r for _, r in out] == [1, 1]
    # ...which ends warm and at least G long: saved, and the guard lets go
    _, state = run(state, [(t + 630.0, 1)], current=1)
    assert (state.extra, state.saved) == (2, 1)
    _, state = run(state, [(t + 1000.0, 0)], current=1)
    assert state.schedule.runs[0][0] > 0


def test_learns_a_periodic_workload_and_prewarms_it():
    # A timer every 10 min that keeps the decider busy for 60 s: idle periods of 540 s.
    state = KeepAliveState()
    current = 1
    history = []
    for t in range(0, 24 * 600, 2):
        count = 1 if t % 600 < 60 else 0
        current, state = keepalive_step(state, float(t), count, current,
                                        cold_start_cost=G, lead=20.0)
        history.append((t, current))
    assert state.hist.counts[9] == 23                   # 540 s → bin 9
    # bin 9 = [540, 600): 23 × 600 > 30 × 23; bins 0..8 cost 23 × 60 each for nothing
    assert warm_schedule(state.hist, cold_start_cost=G).runs == ((540.0, 600.0),)
    # the last cycle: to zero at 60 s, back at 60 + 540 − 20 = 580 s, ready for the call
    last = {t % 600: r for t, r in history if t >= 23 * 600}
    assert last[60] == 0 and last[578] == 0 and last[580] == 1 and last[598] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=120),
       st.integers(0, 3), st.sampled_from([60.0, 100.0, 600.0]))
def test_with_too_few_idle_periods_it_is_the_fixed_grace_of_G(counts, current, cost):
    # Never more than one idle period recorded: exactly a fixed grace period of G.
    ka = KeepAliveState()
    zs = ZeroState()
    cur_ka = cur_z = current
    for i, c in enumerate(counts):
        now = 20.0 * i
        if ka.hist.total >= 2:
            break
        cur_ka, ka = keepalive_step(ka, now, c, cur_ka, cold_start_cost=cost)
        cur_z, zs = grace_step(zs, now, c, cur_z, grace_period=cost)
        assert cur_ka == cur_z


# --------------------------------------------------------------------------------------
# The strategies behind scaler.decide.zero.ScaleToZero, as the pipeline uses them


def test_every_keep_alive_a_policy_may_name_has_a_strategy():
    assert sorted(STRATEGIES) == sorted(KEEP_ALIVE)


def test_the_policy_chooses_and_configures_the_strategy():
    fixed = for_policy(replace(Policy(), scale_to_zero_grace_period=45.0))
    assert isinstance(fixed, FixedGrace) and fixed.grace_period == 45.0
    hist = for_policy(replace(Policy(), keep_alive="histogram", initial_replicas=0,
                              cold_start_cost=1200.0,
                              prediction=replace(PredictionPolicy(), horizon=90.0)))
    assert isinstance(hist, HistogramKeepAlive)
    # pre-warm brings back at least one replica; the forecast horizon is not its lead:
    # without scaleToZero.prewarmLead the lead is the start-up time the pipeline measures
    assert (hist.cold_start_cost, hist.prewarm_replicas, hist.lead) == (1200.0, 1, None)
    fixed_lead = for_policy(replace(Policy(), keep_alive="histogram", prewarm_lead=25.0))
    assert fixed_lead.lead == 25.0


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


def test_histogram_keep_alive_settles_only_past_the_schedule():
    h = HistogramKeepAlive(G)
    h.state = KeepAliveState(hist=hist_of(*[630.0] * 20), used=True)
    assert h.replicas(0, 3, 0.0) == 0                 # bin 0 cold: to zero at once
    assert not h.settled(0.0, 0) and h.remaining(0.0) == 660.0
    assert h.replicas(0, 0, 600.0) == 1               # pre-warmed
    assert not h.settled(600.0, 1)
    assert h.replicas(0, 1, 660.0) == 0 and h.settled(660.0, 0)
    assert h.replicas(2, 0, 700.0) == 2 and h.settled(700.0, 2) and h.remaining(700.0) is None


# --------------------------------------------------------------------------------------
# The pre-warm lead: the start-up time the pipeline measures (scaler.decide.zero.startup)


@pytest.mark.parametrize("clock, now, current, replicas, ready, after", [
    # a tick that finds zero replicas and sets some starts the clock
    (StartupClock(), 100.0, 0, 2, 0, StartupClock(100.0)),
    # one that finds zero and sets zero stops a clock whose write did not land
    (StartupClock(100.0, (9.0,)), 102.0, 0, 0, 0, StartupClock(None, (9.0,))),
    # a write that did not land (still zero replicas) is timed from the retry
    (StartupClock(100.0), 102.0, 0, 1, 0, StartupClock(102.0)),
    # a status still reading a ready replica at zero replicas: nothing to time from
    (StartupClock(None, (9.0,)), 102.0, 0, 1, 1, StartupClock(None, (9.0,))),
    # the first tick that sees a ready replica stops it: 14 s
    (StartupClock(100.0), 114.0, 1, 1, 1, StartupClock(None, (14.0,))),
    # not ready yet, or replicas that were there before (no clock): nothing
    (StartupClock(100.0), 112.0, 1, 1, 0, StartupClock(100.0)),
    (StartupClock(None, (5.0,)), 112.0, 3, 4, 3, StartupClock(None, (5.0,))),
    # the last five are kept, oldest first
    (StartupClock(0.0, (1.0, 2.0, 3.0, 4.0, 5.0)), 6.0, 1, 1, 1,
     StartupClock(None, (2.0, 3.0, 4.0, 5.0, 6.0))),
])
def test_the_startup_clock(clock, now, current, replicas, ready, after):
    assert observe_scale(observe_ready(clock, now, ready), now, current, replicas,
                         ready) == after


def test_the_lead_is_the_longest_recent_startup_or_the_default_before_any():
    assert StartupClock().lead() == DEFAULT_LEAD == 60.0
    assert StartupClock().lead(12.0) == 12.0
    assert StartupClock(None, (8.0, 41.0, 10.0)).lead() == 41.0
    # a one-off slow start ages out after five more
    clock = StartupClock(None, (90.0,))
    for t in range(5):
        clock = observe_ready(StartupClock(0.0, clock.seen), 10.0, 1)
    assert clock.seen == (10.0,) * 5 and clock.lead() == 10.0


def _idle_cycle(state, z, until, startup, current):
    """Drive one idle period from z (want 0) to ``until`` (want 1) against a workload
    whose replicas are ready ``startup`` seconds after the tick that added them."""
    up_at = None
    timeline = []
    for t in range(int(z), int(until) + 1, 2):
        count = 1 if t == until else 0
        ready = 0 if current == 0 else (current if up_at is None or t >= up_at + startup else 0)
        replicas, state = keepalive_step(state, float(t), count, current,
                                         cold_start_cost=G, lead=None, ready=ready)
        if current == 0 and replicas > 0:
            up_at = t
        elif replicas == 0:
            up_at = None
        timeline.append((t, replicas))
        current = replicas
    return dict(timeline), state, current


def test_the_prewarm_lead_is_learnt_from_the_first_startup_the_pipeline_sees():
    # Learnt: warm run [180, 240) s after the idle start (bin 0 cold: to zero at once).
    state = KeepAliveState(hist=hist_of(*[200.0] * 20), used=True)
    got, state, current = _idle_cycle(state, 0, 220, startup=14, current=1)
    assert got[0] == 0                          # to zero at once
    assert got[118] == 0 and got[120] == 1      # no start-up seen yet: 60 s early
    assert state.startup.seen == (14.0,)        # up at 120, first seen ready at 134
    # the next idle period pre-warms 14 s early: ready at 180 exactly
    got, state, _ = _idle_cycle(state, 1000, 1220, startup=14, current=current)
    assert got[1164] == 0 and got[1166] == 1 and got[1218] == 1
    assert state.startup.seen == (14.0, 14.0)
    # a set lead is used as it is, learnt start-ups or not
    _, fixed_state = keepalive_step(replace(state, idle_since=None, schedule=None), 0.0, 0, 1,
                                    cold_start_cost=G, lead=50.0, ready=1)
    assert keepalive_step(fixed_state, 130.0, 0, 0, cold_start_cost=G, lead=50.0)[0] == 1
    assert keepalive_step(fixed_state, 128.0, 0, 0, cold_start_cost=G, lead=50.0)[0] == 0


def test_a_guessed_lead_stops_halfway_so_the_first_startup_is_timed():
    # Learnt: warm run [60, 120) s after the idle start. The 60 s default would pre-warm
    # from 0 — keep the replica, never time a start-up; halfway, at 30 s, it does.
    state = KeepAliveState(hist=hist_of(*[90.0] * 20), used=True)
    got, state, current = _idle_cycle(state, 0, 100, startup=14, current=1)
    assert got[0] == 0 and got[28] == 0 and got[30] == 1 and got[100] == 1
    assert state.startup.seen == (14.0,)
    # from then on the measured lead, in full
    got, state, _ = _idle_cycle(state, 1000, 1100, startup=14, current=current)
    assert got[1044] == 0 and got[1046] == 1
    # a lead that is set is never halved
    _, fixed = keepalive_step(replace(state, idle_since=None, schedule=None), 0.0, 0, 1,
                              cold_start_cost=G, lead=50.0)
    assert keepalive_step(fixed, 10.0, 0, 0, cold_start_cost=G, lead=50.0)[0] == 1


def test_a_learnt_lead_survives_a_policy_reload_and_a_set_one_replaces_it():
    hist = for_policy(replace(Policy(), keep_alive="histogram"))
    assert hist.replicas(1, 0, 10.0, 0) == 1       # up from zero at 10
    assert hist.replicas(1, 1, 32.0, 1) == 1       # ready at 32: 22 s
    assert hist.state.startup.lead() == 22.0
    again = for_policy(replace(Policy(), keep_alive="histogram", cold_start_cost=900.0), hist)
    assert again.state.startup.seen == (22.0,) and again.lead is None
