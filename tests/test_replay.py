"""Replay end to end on small recordings with hand-checked expectations, and the fast
engine held to exactly what the per-tick reference engine gives."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from scaler.actuators.simulated import SimulatedActuator, SimulatedWorkload, TooManyReplicas
from scaler.clock import ManualClock
from scaler.daemon.loop import Daemon
from scaler.daemon.observability import Metrics
from scaler.policy import Policy, PredictionPolicy
from scaler.replay import engine as engine_module
from scaler.replay.engine import replay, replay_per_tick, tick_times
from scaler.replay.report.summary import per_second, summarize
from scaler.sources.recording import Recording, RecordingSource

BASE = 1_000_000_000   # an even unix second, so ticks fall on BASE + 2k


def steps(*segments: tuple[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """One sample per second: (seconds, value) segments back to back from BASE."""
    values = np.concatenate([np.full(n, v, dtype=np.float64) for n, v in segments])
    return BASE + np.arange(len(values), dtype=np.float64), values


def at(result, t: int) -> int:
    return int(np.flatnonzero(result.ticks == BASE + t)[0])


@pytest.fixture(params=["batched", "per-tick"])
def engine(request):
    return replay if request.param == "batched" else replay_per_tick


def test_ticks_fall_on_multiples_of_the_interval_within_the_recording():
    times = np.array([BASE + 0.5, BASE + 7.2])
    assert tick_times(times, 2).tolist() == [BASE + 2, BASE + 4, BASE + 6]
    assert tick_times(np.array([BASE + 1.0, BASE + 1.5]), 2).tolist() == []


def test_constant_double_load_panics_once_then_holds_two(engine):
    # 140 in flight, 70 per replica, 1 replica: ceil(140/70) / 1 = 2 >= 200 % → panic at
    # the first tick, ratchet to 2; with 2 ready the panic count is no longer over the
    # threshold and panic ends one stable window (60 s) after the first tick.
    times, values = steps((180, 140.0))
    r = engine(Policy(), times, values)
    assert r.desired.tolist() == [2] * len(r.ticks)
    assert r.ready[0] == 1 and set(r.ready[1:].tolist()) == {2}
    assert r.in_panic[: at(r, 60) + 1].all()
    assert not r.in_panic[at(r, 62):].any()


def test_load_stops_scale_to_zero_after_stable_window_and_grace(engine):
    # 70 for 100 s, then zeros. The stable window holds a non-zero bucket up to tick 158
    # (bucket 99 is in (T-60, T]); from tick 160 the decider wants 0, and after the 30 s
    # grace period the last replica goes at tick 190.
    times, values = steps((100, 70.0), (200, 0.0))
    r = engine(Policy(), times, values)
    assert r.desired[at(r, 158)] == 1
    assert r.stable[at(r, 158)] == pytest.approx(70 / 60, abs=1e-6)
    assert r.stable[at(r, 160)] == 0
    assert r.desired[at(r, 160): at(r, 188) + 1].tolist() == [1] * 15
    assert r.desired[at(r, 190):].tolist() == [0] * (len(r.ticks) - at(r, 190))


def test_min_replicas_one_never_scales_to_zero(engine):
    times, values = steps((100, 70.0), (200, 0.0))
    r = engine(replace(Policy(), min_replicas=1), times, values)
    assert r.desired.min() == 1


def test_startup_delay_keeps_ready_capacity_short_and_panic_going(engine):
    # 700 in flight: 10 replicas wanted at once; with a 10 s start-up only the first is
    # ready until tick 10, so the panic count stays over the threshold until tick 8 and
    # panic ends at the first tick after 8 + 60.
    times, values = steps((200, 700.0))
    r = engine(Policy(), times, values, startup_delay=10)
    assert r.desired.tolist() == [10] * len(r.ticks)
    assert r.ready[: at(r, 8) + 1].tolist() == [1] * 5
    assert r.ready[at(r, 10)] == 10
    assert r.in_panic[: at(r, 68) + 1].all() and not r.in_panic[at(r, 70):].any()
    s = summarize(r)
    assert s["under_provisioned_demand_seconds"] == pytest.approx(10 * (700 - 100))
    assert s["pod_seconds"] == 10 * 2 * len(r.ticks)
    assert s["cold_start_episodes"] == 0
    assert s["scaling_actions"] == 1
    assert s["peak_replicas"] == 10


def test_cold_start_counted_when_demand_returns_at_zero(engine):
    # Scaled to zero by tick 190 (see above); demand returns at 250 and waits 5 s for a
    # replica (startup delay) → one cold-start episode.
    times, values = steps((100, 70.0), (150, 0.0), (60, 70.0))
    r = engine(Policy(), times, values, startup_delay=5)
    assert r.desired[at(r, 248)] == 0
    assert r.desired[at(r, 250)] == 1
    s = summarize(r)
    assert s["cold_start_episodes"] == 1
    assert s["cold_start_seconds"] == 5


def test_gap_longer_than_stable_window_is_no_data_and_holds(engine):
    # Samples stop for 200 s: after the window empties the decider has no data and the
    # replica count is held (never scaled to zero on missing data).
    times = np.concatenate((BASE + np.arange(100.0), BASE + 300 + np.arange(20.0)))
    values = np.full(len(times), 140.0)
    r = engine(Policy(), times, values)
    gap = (r.ticks > BASE + 160) & (r.ticks < BASE + 300)
    assert np.isnan(r.stable[gap]).all()
    assert set(r.desired[gap].tolist()) == {2}


def test_per_second_ready_counts_replica_lifetimes():
    times, values = steps((200, 700.0))
    r = replay(Policy(), times, values, startup_delay=10)
    seconds, demand, ready = per_second(r)
    assert seconds[0] == BASE and len(seconds) == len(r.ticks) * 2
    assert ready[:10].tolist() == [1] * 10 and ready[10] == 10
    assert demand.tolist() == [700.0] * len(seconds)


# ------------------------------------------------------------- engine equivalence

@st.composite
def recordings(draw, max_samples=400):
    n = draw(st.integers(1, max_samples))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.25, 1.0, 1.0, 1.0, 2.0, 7.0, 65.0, 200.0]),
                         min_size=n, max_size=n))
    start = BASE + draw(st.integers(0, 3)) + draw(st.sampled_from([0.0, 0.5]))
    times = start + np.cumsum(np.array(gaps))
    scale = draw(st.sampled_from([1.0, 30.0, 300.0, 3000.0]))
    raw = draw(st.lists(st.integers(0, 100_000), min_size=n, max_size=n))
    values = np.round(np.array(raw, dtype=np.float64) / 100_000 * scale * 3, 3)
    return times, values


@st.composite
def policies(draw):
    max_r = draw(st.sampled_from([0, 0, 3, 20]))
    min_r = draw(st.integers(0, max_r if max_r else 4))
    return replace(
        Policy(),
        target=draw(st.sampled_from([1.0, 10.0, 100.0])),
        target_utilization_percentage=draw(st.sampled_from([50.0, 70.0, 100.0])),
        min_replicas=min_r,
        max_replicas=max_r,
        initial_replicas=draw(st.integers(0, max_r if max_r else 6)),
        activation_replicas=draw(st.sampled_from([0, 0, 2, 3])) if not max_r or max_r >= 3 else 0,
        stable_window=draw(st.sampled_from([6, 10, 60])),
        panic_window_percentage=float(draw(st.sampled_from([10, 50, 100]))),
        panic_threshold_percentage=float(draw(st.sampled_from([110, 200, 1000]))),
        max_scale_up_rate=draw(st.sampled_from([1.1, 2.0, 1000.0])),
        max_scale_down_rate=draw(st.sampled_from([1.5, 2.0, 10.0])),
        scale_down_delay=float(draw(st.sampled_from([0, 0, 4, 11, 30]))),
        scale_to_zero_grace_period=float(draw(st.sampled_from([0, 5, 30]))),
        target_burst_capacity=float(draw(st.sampled_from([-1, 0, 211]))),
        tick_interval=float(draw(st.sampled_from([1, 2, 3]))),
        window_algorithm=draw(st.sampled_from(["linear", "weighted-exponential"])),
        keep_alive=draw(st.sampled_from(["fixed", "fixed", "histogram"])),
        cold_start_cost=float(draw(st.sampled_from([60, 600]))),
        prewarm_lead=draw(st.sampled_from([None, None, 0.0, 7.0])),
        prediction=draw(st.sampled_from([
            PredictionPolicy(),
            PredictionPolicy(enabled=True, model="ewma", horizon=30.0),
            PredictionPolicy(enabled=True, model="linear", mode="observe"),
            PredictionPolicy(enabled=True, model="holt-winters", seasonality=(120.0,),
                             min_history=1.0, horizon=10.0),
            # seasonal-level (the default model): a short season, and the level alone with
            # a generous budget, both acting within minutes
            PredictionPolicy(enabled=True, seasonality=(120.0,), grid=5.0, horizon=10.0,
                             min_errors=3),
            PredictionPolicy(enabled=True, seasonality=(), grid=5.0, horizon=0.0, min_errors=2,
                             max_extra_cost=1.0),
        ])),
    )


def both_engines(policy, times, values, startup_delay=0.0, **kw):
    """Both engines' results; None when both refuse the replay alike. A drawn policy may ask
    for more replicas than replay simulates (the forecast floor with a 100 % budget over a
    large load can: 727,672 at target 1): both engines must then stop at the same tick with
    the same message."""
    try:
        fast = replay(policy, times, values, startup_delay, **kw)
    except TooManyReplicas as exc:
        with pytest.raises(TooManyReplicas) as slow_exc:
            replay_per_tick(policy, times, values, startup_delay, **kw)
        assert str(slow_exc.value) == str(exc)
        return None
    return fast, replay_per_tick(policy, times, values, startup_delay, **kw)


def test_both_engines_refuse_more_replicas_than_replay_simulates_alike():
    # 100,000 in flight against 0.7 per replica: 142,858 replicas, beyond the 100,000
    # replay simulates; both engines stop at the same tick with the same message
    times, values = steps((30, 100_000.0))
    policy = replace(Policy(), target=1.0)
    assert both_engines(policy, times, values) is None
    with pytest.raises(TooManyReplicas, match="asks for 142,858 replicas; replay simulates "
                                              "at most 100,000"):
        replay(policy, times, values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings(), policies(), st.sampled_from([0.0, 0.0, 2.0, 5.5, 30.0]))
def test_fast_engine_equals_per_tick_engine(recording, policy, startup_delay):
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    times, values = recording
    both = both_engines(policy, times, values, startup_delay)
    if both is None:
        return
    fast, slow = both
    assert fast.ticks.tolist() == slow.ticks.tolist()
    for field in ("desired", "ready", "in_panic"):
        assert getattr(fast, field).tolist() == getattr(slow, field).tolist(), field
    for field in ("stable", "panic", "ebc"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)
    assert sorted(fast.lifetimes) == sorted(slow.lifetimes)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 600), policies(), st.integers(0, 2**32 - 1))
def test_dense_recordings_take_the_same_path_results(n, policy, seed):
    """One sample every second with no gap: BatchWindows' dense shortcut must still give
    exactly the per-tick engine's windows and decisions."""
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    rng = np.random.default_rng(seed)
    times = BASE + np.arange(n, dtype=np.float64)
    values = np.round(rng.gamma(2.0, 40.0, n) * rng.choice([0.1, 1, 10]), 3)
    fast = replay(policy, times, values)
    slow = replay_per_tick(policy, times, values)
    np.testing.assert_array_equal(fast.stable, slow.stable)
    np.testing.assert_array_equal(fast.panic, slow.panic)
    assert fast.desired.tolist() == slow.desired.tolist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings(), policies(), st.sampled_from([0.0, 5.5, 30.0]), st.integers(1, 9))
def test_the_fast_engine_decides_alike_in_blocks_of_any_size(recording, policy, startup_delay,
                                                           block):
    """The fast engine turns its per-tick inputs into lists one block of ticks at a time;
    a steady stretch skipped across a block's edge and a block of one tick change nothing."""
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    times, values = recording
    original = engine_module.LOOP_BLOCK
    engine_module.LOOP_BLOCK = block
    try:
        both = both_engines(policy, times, values, startup_delay)
    finally:
        engine_module.LOOP_BLOCK = original
    if both is None:
        return
    fast, slow = both
    for field in ("desired", "ready", "in_panic"):
        assert getattr(fast, field).tolist() == getattr(slow, field).tolist(), field
    assert fast.desired.dtype == slow.desired.dtype == np.int32
    assert sorted(fast.lifetimes) == sorted(slow.lifetimes)


def run_the_daemon(policy, times, values, startup_delay=0.0, resolution=None) -> dict:
    """The daemon's own loop on a recording: the recording as its metric source, the
    simulated workload as its actuator, a manual clock. Returns each tick's result."""
    source = RecordingSource(Recording(times, values, "recording", resolution=resolution))
    ticks = tick_times(source.seconds.times, policy.tick_interval).tolist()
    clock = ManualClock(ticks[0] + 0.5)   # tick T is processed at T + evaluation delay
    workload = SimulatedWorkload(policy.initial_replicas, startup_delay)
    daemon = Daemon([policy], source=source,
                    actuator=SimulatedActuator(workload, clock), clock=clock,
                    metrics=Metrics(CollectorRegistry()), evaluation_delay=0.5)
    decided = {}
    tick = daemon.tick

    def recorded_tick(target, t):
        decided[t] = tick(target, t)
        return decided[t]

    daemon.tick = recorded_tick
    for t in ticks:
        clock.set(t + 0.5)
        daemon.run_once()
    return decided


def assert_the_daemon_decided_as(daemon: dict, result) -> None:
    """Every tick the replay has, the daemon decided the same: replicas, ready pods,
    panic, window averages (None where replay has NaN) and excess burst capacity."""
    assert sorted(daemon) == result.ticks.tolist()
    for i, t in enumerate(result.ticks.tolist()):
        d = daemon[t]
        assert (d.replicas, d.ready_pods, d.in_panic) == (
            result.desired[i], result.ready[i], result.in_panic[i]), t
        assert [math.nan if v is None else v for v in (d.stable, d.panic)] == pytest.approx(
            [result.stable[i], result.panic[i]], rel=0, abs=0, nan_ok=True), t
        ebc = d.decision.excess_burst_capacity if d.decision.valid else math.nan
        assert ebc == pytest.approx(result.ebc[i], rel=0, abs=0, nan_ok=True), t


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings(max_samples=150), policies(), st.sampled_from([0.0, 2.0, 5.5, 30.0]))
def test_the_daemon_loop_and_both_engines_decide_alike(recording, policy, startup_delay):
    """One decision code, three drivers: the live loop (over the source and actuator
    protocols, on a clock), the per-tick engine and the fast engine."""
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    times, values = recording
    fast = replay(policy, times, values, startup_delay)
    assume(len(fast.ticks))
    slow = replay_per_tick(policy, times, values, startup_delay)
    daemon = run_the_daemon(policy, times, values, startup_delay)
    assert_the_daemon_decided_as(daemon, fast)
    assert_the_daemon_decided_as(daemon, slow)


@pytest.mark.parametrize("name, policy, startup_delay", [
    pytest.param("default.csv", Policy(), 0.0, id="default"),
    pytest.param("burst_10x.csv", replace(Policy(), scale_down_delay=30.0,
                                          activation_replicas=3), 10.0, id="burst-delayed"),
    pytest.param("sparse_function.csv", replace(Policy(), keep_alive="histogram"), 10.0,
                 id="sparse-histogram"),
    pytest.param("diurnal_morning.csv", replace(Policy(), prediction=PredictionPolicy(
        enabled=True, model="ewma", horizon=30.0)), 30.0, id="diurnal-predictive"),
    pytest.param("azure_llm_conv.csv", replace(Policy(), window_algorithm="weighted-exponential",
                                               target=5.0), 5.5, id="llm-weighted"),
])
def test_the_daemon_loop_decides_as_replay_on_the_bundled_recordings(name, policy,
                                                                    startup_delay):
    from scaler.sources.recording import load

    rec = load(f"scaler/recordings/{name}")
    fast = replay(policy, rec.times, rec.values, startup_delay)
    daemon = run_the_daemon(policy, rec.times, rec.values, startup_delay)
    assert_the_daemon_decided_as(daemon, fast)
    assert len(set(fast.desired.tolist())) > 1   # it scaled: the comparison means something


def assert_same(fast, slow):
    assert fast.desired.tolist() == slow.desired.tolist()
    assert fast.ready.tolist() == slow.ready.tolist()
    assert fast.in_panic.tolist() == slow.in_panic.tolist()
    for field in ("stable", "panic", "forecast", "forecast_point"):
        a, b = getattr(fast, field), getattr(slow, field)
        assert (a is None) == (b is None), field
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=field)
    if fast.floor is not None:
        assert fast.floor.tolist() == slow.floor.tolist()


@pytest.mark.parametrize("model", ["seasonal-level", "ewma", "linear", "holt-winters"])
def test_forecast_floor_is_the_same_in_both_engines_and_only_raises(model):
    from synthetic import diurnal

    times, values = diurnal(days=0.25, seed=11)   # 6 h of a daily sine with noise
    pred = PredictionPolicy(enabled=True, model=model, seasonality=(3600.0,),
                            min_history=2.0, horizon=60.0)
    policy = replace(Policy(), prediction=pred)
    fast = replay(policy, times.astype(np.float64), values, startup_delay=30)
    slow = replay_per_tick(policy, times.astype(np.float64), values, startup_delay=30)
    assert_same(fast, slow)
    assert fast.floor.max() > 0, "the forecast never became active"
    reactive = replay(replace(policy, prediction=PredictionPolicy()), times.astype(np.float64),
                      values, startup_delay=30)
    # A floor can only add replicas at a tick, never remove them.
    active = fast.floor > 0
    assert (fast.desired[active] >= fast.floor[active]).all()
    assert fast.desired.sum() >= reactive.desired.sum()


def test_observe_mode_forecasts_but_never_acts():
    from synthetic import diurnal

    times, values = diurnal(days=0.25, seed=12)
    policy = replace(Policy(), prediction=PredictionPolicy(enabled=True, model="ewma",
                                                           mode="observe"))
    observed = replay(policy, times.astype(np.float64), values)
    reactive = replay(Policy(), times.astype(np.float64), values)
    assert np.isfinite(observed.forecast).any()
    assert observed.floor.max() == 0
    assert observed.desired.tolist() == reactive.desired.tolist()


def test_histogram_keep_alive_is_the_same_in_both_engines():
    from scaler.sources.recording import load

    rec = load("scaler/recordings/sparse_function.csv")
    policy = replace(Policy(), keep_alive="histogram")
    fast = replay(policy, rec.times, rec.values, startup_delay=10)
    slow = replay_per_tick(policy, rec.times, rec.values, startup_delay=10)
    assert_same(fast, slow)


# ------------------------------------------------- gaps, coarse recordings, resolution

@st.composite
def coarse_recordings(draw, max_rows=120):
    """Rows every ``step`` seconds (a whole number, or with a sub-second phase), with
    missing stretches — short flaky ones and outages of up to several stable windows —
    and the resolution to replay them at: None (detected), the step, or another one."""
    step = draw(st.sampled_from([1, 1, 2, 5, 15, 60]))
    phase = draw(st.sampled_from([0.0, 0.0, 0.5]))
    n = draw(st.integers(2, max_rows))
    keep = []
    row = 0
    while row < n:
        kind = draw(st.sampled_from(["rows", "rows", "rows", "missing"]))
        length = draw(st.integers(1, 30 if kind == "rows" else 8 if step > 5 else 150))
        if kind == "rows":
            keep += range(row, min(n, row + length))
        row += length
    assume(len(keep) >= 2)
    times = BASE + phase + step * np.array(keep, dtype=np.float64)
    raw = draw(st.lists(st.integers(0, 100_000), min_size=len(keep), max_size=len(keep)))
    scale = draw(st.sampled_from([30.0, 300.0, 3000.0]))
    values = np.round(np.array(raw, dtype=np.float64) / 100_000 * scale, 3)
    resolution = draw(st.sampled_from([None, float(step), float(step), 1.0, 2.5 * step]))
    return times, values, resolution


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coarse_recordings(), policies(), st.sampled_from([0.0, 0.0, 5.5, 30.0]))
def test_engines_agree_on_recordings_with_gaps_and_coarse_resolutions(recording, policy,
                                                                       startup_delay):
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    times, values, resolution = recording
    both = both_engines(policy, times, values, startup_delay, resolution=resolution)
    if both is None:
        return
    fast, slow = both
    assert fast.ticks.tolist() == slow.ticks.tolist()
    for field in ("desired", "ready", "in_panic", "unknown"):
        assert getattr(fast, field).tolist() == getattr(slow, field).tolist(), field
    for field in ("stable", "panic", "ebc"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)
    assert sorted(fast.lifetimes) == sorted(slow.lifetimes)
    assert fast.resolution == slow.resolution


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coarse_recordings(max_rows=60), policies(), st.sampled_from([0.0, 5.5]))
def test_the_daemon_loop_agrees_on_recordings_with_gaps(recording, policy, startup_delay):
    """The loop reads the recording as a source: samples and unknown seconds span by span."""
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    times, values, resolution = recording
    fast = replay(policy, times, values, startup_delay, resolution=resolution)
    assume(len(fast.ticks))
    daemon = run_the_daemon(policy, times, values, startup_delay, resolution=resolution)
    assert_the_daemon_decided_as(daemon, fast)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coarse_recordings(), policies())
def test_a_coarse_recording_replays_like_its_rows_held_second_by_second(recording, policy):
    """Rows every 15 s replay exactly as a 1 s recording holding each row for its 15 s,
    missing rows as missing seconds."""
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    times, values, _ = recording
    step = float(np.min(np.diff(times)))
    assume(step == int(step) and times[0] == int(times[0]))
    held_t = (times[:, None] + np.arange(int(step))).ravel()
    held_v = np.repeat(values, int(step))
    coarse = replay(policy, times, values, resolution=step)
    dense = replay(policy, held_t, held_v, resolution=1.0)
    assert coarse.ticks.tolist() == dense.ticks.tolist()
    assert coarse.desired.tolist() == dense.desired.tolist()
    np.testing.assert_array_equal(coarse.stable, dense.stable)
    np.testing.assert_array_equal(coarse.panic, dense.panic)
    assert coarse.unknown.tolist() == dense.unknown.tolist()
    assert summarize(coarse) | {"recording": None} == summarize(dense) | {"recording": None}


def test_fifteen_second_rows_are_not_a_fifteenth_of_the_load(engine):
    """Constant 50 at target 10 (5 replicas), recorded every 15 s: the windows see 50 in
    every second, as in the 1 s recording — not 50 in one second and 14 zeros."""
    policy = replace(Policy(), target=10.0, target_utilization_percentage=100.0,
                     initial_replicas=5)
    times = BASE + 15.0 * np.arange(40)
    r = engine(policy, times, np.full(40, 50.0))
    assert r.resolution == 15.0 and not len(r.unknown)
    assert set(r.stable.tolist()) == {50.0}
    assert set(r.desired.tolist()) == {5}
    s = summarize(r)
    assert s["recording"]["resolution_seconds"] == 15.0
    assert s["recording"]["unknown_seconds"] == 0
    assert s["demand_seconds"] == 50.0 * len(r.ticks) * 2


def test_a_missing_row_is_unknown_never_zero(engine):
    """Constant 50 at target 10: rows every second, then 30 s missing, then rows again.
    No scale-down: the known seconds still average 50, and the hold ends at once."""
    policy = replace(Policy(), target=10.0, target_utilization_percentage=100.0,
                     initial_replicas=5)
    times = np.concatenate((BASE + np.arange(120.0), BASE + np.arange(150.0, 240.0)))
    r = engine(policy, times, np.full(len(times), 50.0))
    assert r.unknown.tolist() == list(range(BASE + 120, BASE + 150))
    assert set(r.desired.tolist()) == {5}
    assert set(r.stable[~np.isnan(r.stable)].tolist()) == {50.0}
    # The 6 s panic window goes blind during the gap (no data, not zero), the stable
    # window stays valid (30 of 60 s unknown is not more than half).
    gap = (r.ticks > BASE + 125) & (r.ticks < BASE + 150)
    assert np.isnan(r.panic[gap]).all() and not np.isnan(r.stable[gap]).any()
    s = summarize(r)
    assert s["recording"]["unknown_seconds"] == 30
    # Demand is unknown there: it counts neither as demand nor as a shortfall.
    assert s["demand_seconds"] == 50.0 * (len(r.ticks) * 2 - 30)


def test_bundled_recordings_are_dense_and_replay_as_knative_would():
    """Every bundled recording has a row in every second: nothing is held, nothing is
    unknown, so the windows are Knative's own."""
    from scaler.sources.recording import load
    from scaler.sources.recording.seconds import per_second

    for path in sorted(Path("scaler/recordings").glob("*.csv")):
        rec = load(path)
        seconds = per_second(rec.times, rec.values)
        assert seconds.resolution == 1.0, path
        assert not len(seconds.unknown), path
        assert seconds.times is rec.times or np.array_equal(seconds.times, rec.times), path


@st.composite
def gaps(draw, seconds=900):
    """Which seconds of a 1 s recording are missing: up to eight stretches, each an
    outage (up to 140 s, over twice a 60 s window) or flaky (``lost`` of every ``every``
    seconds missing), anywhere in the recording."""
    missing = np.zeros(seconds, dtype=bool)
    stretches = draw(st.lists(st.tuples(st.integers(0, seconds - 1), st.integers(1, 140),
                                        st.integers(1, 10), st.integers(0, 9)), max_size=8))
    for start, length, every, lost in stretches:
        span = np.arange(start, min(seconds, start + length))
        missing[span] = (span - start) % every < max(1, min(lost, every - 1)) if every > 1 \
            else True
    return missing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gaps(), st.sampled_from(["linear", "weighted-exponential"]),
       st.sampled_from([6, 20, 60]), st.sampled_from([1.0, 2.0]), st.sampled_from([2, 5]))
def test_a_steady_load_stays_at_the_right_count_through_any_gaps(missing, algorithm, stable,
                                                                 tick, right):
    """Never a wrong scale-down on account of unknown seconds: a steady load of
    10 × right against a target of 10 keeps exactly ``right`` replicas whatever seconds
    are missing — every tick either decides on the known seconds (which all say the same)
    or holds."""
    policy = replace(Policy(), target=10.0, target_utilization_percentage=100.0,
                     initial_replicas=right, stable_window=stable, tick_interval=tick,
                     window_algorithm=algorithm)
    seconds = BASE + np.arange(len(missing), dtype=np.float64)
    times = seconds[~missing]
    assume(len(times) >= 2)
    r = replay(policy, times, np.full(len(times), 10.0 * right), resolution=1.0)
    assert set(r.desired.tolist()) == {right}
    known = r.stable[~np.isnan(r.stable)]
    if algorithm == "linear":
        assert set(known.tolist()) <= {10.0 * right}
