"""The daemon loop with a manual clock and hand-written fakes of scaler's own Protocols.

End-to-end tests against real Prometheus and the fake Kubernetes API live in
test_daemon_e2e.py; these pin the loop's rules one by one, fast.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from scaler.actuators import ActuatorError, Conflict, ScaleStatus
from scaler.actuators.dry_run import DryRunActuator
from scaler.clock import ManualClock
from scaler.daemon.loop import Daemon
from scaler.daemon.observability import Metrics
from scaler.policy import Policy, ScaleTargetRef
from scaler.replay.engine import replay_per_tick
from scaler.sources import Reading
from scaler.sources.recording import RecordingSource
from scaler.sources.recording import load as load_recording

BASE = 1_772_409_600
REF = ScaleTargetRef(name="app", namespace="default")
POLICY = replace(Policy(), scale_target_ref=REF)


class RecordedSource(RecordingSource):
    """The recording as Prometheus would serve it, with a switch to make it fail and a
    log of the ranges asked for."""

    def __init__(self, recording):
        super().__init__(recording)
        self.failing: str | None = None
        self.calls: list[tuple[float, float]] = []

    def read(self, query, start, end, *, deadline):
        self.calls.append((start, end))
        if self.failing:
            return Reading(error=self.failing, detail="injected")
        return super().read(query, start, end, deadline=deadline)


class InMemoryTarget:
    """A workload whose replicas become ready at once; counts writes; can refuse one."""

    def __init__(self, replicas: int):
        self.replicas = replicas
        self.version = 1
        self.paused = False
        self.writes: list[int] = []
        self.conflicts_left = 0
        self.events: list[tuple[str, str]] = []
        self.warnings: list[tuple[str, str]] = []

    def read(self, target, *, deadline=None):
        return ScaleStatus(self.replicas, self.replicas, str(self.version), self.paused)

    def scale(self, target, replicas, *, resource_version, reason, message, deadline=None):
        if self.conflicts_left:
            self.conflicts_left -= 1
            self.version += 1
            raise Conflict(target)
        if resource_version != str(self.version):
            raise Conflict(target)
        self.replicas = replicas
        self.version += 1
        self.writes.append(replicas)
        self.events.append((reason, message))
        return True

    def warn(self, target, reason, message, *, deadline=None):
        self.warnings.append((reason, message))
        return True


def make_daemon(policy=POLICY, *, start=BASE, replicas=1, source=None, dry_run=False, **kw):
    clock = ManualClock(start)
    source = source or RecordedSource(load_recording("scaler/recordings/default.csv"))
    target = InMemoryTarget(replicas)
    metrics = Metrics(CollectorRegistry())
    actuator = DryRunActuator(target) if dry_run else target
    daemon = Daemon([policy], source=source, actuator=actuator, clock=clock, metrics=metrics,
                    evaluation_delay=0.5, **kw)
    return daemon, clock, source, target, metrics


def run_until(daemon, clock, t):
    while clock.now() < t:
        daemon.run_once()
        clock.advance(1.0)


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def test_live_loop_makes_the_decisions_replay_predicts():
    rec = load_recording("scaler/recordings/default.csv")
    daemon, clock, _, target, _ = make_daemon()
    seen = {}
    original = daemon.tick

    def tick(t_obj, t):
        result = original(t_obj, t)
        seen[int(t)] = result.replicas
        return result

    daemon.tick = tick
    run_until(daemon, clock, BASE + 3600)
    expected = replay_per_tick(POLICY, rec.times, rec.values)
    predicted = dict(zip(expected.ticks.tolist(), expected.desired.tolist()))
    common = sorted(set(seen) & set(predicted))
    assert len(common) > 1700
    assert [seen[t] for t in common] == [predicted[t] for t in common]
    assert max(target.writes) == 25 and 0 in target.writes


def test_no_data_holds_replicas_and_counts_the_reason():
    daemon, clock, source, target, metrics = make_daemon(replicas=3)
    run_until(daemon, clock, BASE + 120)
    assert target.replicas == 3
    source.failing = "unreachable"
    writes = len(target.writes)
    run_until(daemon, clock, BASE + 600)
    assert target.replicas == 3 and len(target.writes) == writes
    assert sample(metrics, "scaler_metric_errors_total", policy="default",
                  reason="unreachable") > 200
    source.failing = None
    run_until(daemon, clock, BASE + 700)
    assert daemon.targets["default"].no_data is None


def test_empty_result_never_scales_to_zero():
    # The recording has zeros from 35:00 to 45:00 and scales to 0 there; an *empty*
    # answer in the same period must hold instead.
    daemon, clock, source, target, _ = make_daemon(replicas=3)
    run_until(daemon, clock, BASE + 34 * 60)
    source.failing = "empty"
    run_until(daemon, clock, BASE + 44 * 60)
    assert target.replicas == 3


def test_paused_target_is_never_written():
    daemon, clock, _, target, metrics = make_daemon()
    target.paused = True
    run_until(daemon, clock, BASE + 16 * 60)
    assert target.writes == []
    assert sample(metrics, "scaler_paused", policy="default") == 1


def test_standby_replica_does_not_write_until_it_leads():
    leading = {"now": False}
    daemon, clock, _, target, _ = make_daemon(is_leader=lambda: leading["now"])
    run_until(daemon, clock, BASE + 16 * 60)
    assert target.writes == []
    assert sample(daemon.metrics, "scaler_leader") == 0
    leading["now"] = True
    # The gauge follows the lease at once, not at the daemon's next pass.
    assert sample(daemon.metrics, "scaler_leader") == 1
    run_until(daemon, clock, BASE + 17 * 60)
    assert target.replicas == 25


def test_dry_run_writes_nothing():
    daemon, clock, _, target, _ = make_daemon(dry_run=True)
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 16 * 60)
    assert target.writes == [] and target.replicas == 1
    ticks = [line for line in logs if line["event"] == "tick"]
    actions = {line["action"] for line in ticks}
    assert "would_scale" in actions and "scaled" not in actions
    assert any(line["event"] == "would_scale" and line["replicas"] == 25 for line in logs)


def test_conflict_rereads_and_decides_again():
    daemon, clock, _, target, metrics = make_daemon()
    target.conflicts_left = 1
    run_until(daemon, clock, BASE + 10)
    assert target.replicas == 3
    assert sample(metrics, "scaler_patch_conflicts_total", policy="default") == 1


def test_events_explain_each_scale():
    daemon, clock, _, target, _ = make_daemon()
    run_until(daemon, clock, BASE + 40 * 60)
    reasons = [r for r, _ in target.events]
    assert {"ScaledUp", "ScaledDown", "ScaledToZero"} <= set(reasons)
    up = next(m for r, m in target.events if r == "ScaledUp")
    assert "panic mode" in up and "70 per replica" in up


class BrokenActuator(InMemoryTarget):
    def read(self, target, *, deadline=None):
        raise ActuatorError(target, "forbidden", "deployments.apps is forbidden")


def test_unreadable_target_is_an_error_for_that_policy_only():
    daemon, clock, _, _, metrics = make_daemon()
    daemon.actuator = BrokenActuator(1)
    run_until(daemon, clock, BASE + 20)
    assert sample(metrics, "scaler_patch_errors_total", policy="default",
                  reason="forbidden") >= 5


def test_warm_start_refills_a_stable_window_before_deciding():
    # Started mid-recording at the burst's end: with history, the first decision already
    # sees the burst in its stable window and holds 25 instead of dropping.
    daemon, clock, source, target, _ = make_daemon(start=BASE + 20 * 60, replicas=25)
    run_until(daemon, clock, BASE + 20 * 60 + 3)
    assert source.calls[0][1] - source.calls[0][0] == 59
    assert target.replicas == 25


def write_policy(path, body: str):
    path.write_text(textwrap.dedent(body))


GOOD = """
    apiVersion: scaler/v1
    kind: ScalingPolicy
    metadata: {name: default}
    spec:
      scaleTargetRef: {name: app}
      metric: {query: sum(app_inflight_requests)}
      target: %s
"""


def test_reload_swaps_valid_policies_and_keeps_the_old_on_error(tmp_path):
    path = tmp_path / "policies"
    path.mkdir()
    write_policy(path / "p.yaml", GOOD % 100)
    from scaler.policy.files import load

    daemon, clock, _, target, metrics = make_daemon(policy=load(path)[0], policy_path=path)
    run_until(daemon, clock, BASE + 60)
    scaler_before = daemon.targets["default"].scaler
    write_policy(path / "p.yaml", GOOD % 50)
    run_until(daemon, clock, BASE + 62)
    assert daemon.targets["default"].policy.target == 50
    assert daemon.targets["default"].scaler is scaler_before   # same query: windows kept
    assert sample(metrics, "scaler_policy_reload_success") == 1
    write_policy(path / "p.yaml", GOOD % "lots")
    run_until(daemon, clock, BASE + 64)
    assert daemon.targets["default"].policy.target == 50
    assert sample(metrics, "scaler_policy_reload_success") == 0
    run_until(daemon, clock, BASE + 120)
    assert target.replicas == 5   # 171.5 / (50 × 70 %) → 5, still deciding


def test_health_and_readiness():
    daemon, clock, source, _, _ = make_daemon()
    assert daemon.ready()[0] is False
    run_until(daemon, clock, BASE + 4)
    assert daemon.ready() == (True, "ok") and daemon.healthy()[0]
    clock.advance(30)
    healthy, why = daemon.healthy()
    assert not healthy and "not ticked" in why


@pytest.mark.parametrize("signal_event", ["request_stop", "request_reload"])
def test_signals_only_set_events_and_wake_the_loop(signal_event):
    daemon, *_ = make_daemon()
    getattr(daemon, signal_event)()
    assert daemon.wake.is_set()


def test_prediction_warms_from_history_and_is_logged_and_exported():
    from scaler.policy import PredictionPolicy

    policy = replace(POLICY, prediction=PredictionPolicy(enabled=True, model="ewma"))
    daemon, clock, _, _, metrics = make_daemon(policy, start=BASE + 30 * 60)
    run_until(daemon, clock, BASE + 30 * 60 + 3)
    scaler = daemon.targets["default"].scaler
    advice = scaler.forecaster.advise(BASE + 30 * 60)
    assert advice.point is not None   # buckets from the hour-long history were fed
    assert sample(metrics, "scaler_forecast_active", policy="default") in (0.0, 1.0)


class ExplodingSource(RecordedSource):
    def read(self, query, start, end, *, deadline):
        if self.failing == "explode":
            raise RuntimeError("an answer nobody foresaw")
        return super().read(query, start, end, deadline=deadline)


def test_an_unexpected_error_holds_that_tick_and_the_daemon_carries_on():
    source = ExplodingSource(load_recording("scaler/recordings/default.csv"))
    daemon, clock, _, target, metrics = make_daemon(replicas=3, source=source)
    run_until(daemon, clock, BASE + 60)
    source.failing = "explode"
    run_until(daemon, clock, BASE + 80)
    assert target.replicas == 3
    assert sample(metrics, "scaler_tick_errors_total", policy="default") >= 5
    source.failing = None
    run_until(daemon, clock, BASE + 16 * 60)
    assert target.replicas == 25    # still deciding after the errors


def test_after_a_long_outage_only_a_stable_window_is_asked_for():
    daemon, clock, source, target, _ = make_daemon(replicas=3)
    run_until(daemon, clock, BASE + 120)
    source.failing = "unreachable"
    run_until(daemon, clock, BASE + 900)
    source.failing = None
    run_until(daemon, clock, BASE + 904)
    start, end = source.calls[-1]
    assert end - start <= 59
    assert daemon.targets["default"].no_data is None


def test_warm_start_on_stale_history_holds():
    class Stale(RecordedSource):
        def history(self, query, start, end, step=1.0, *, deadline=None):
            return super().history(query, start, end - 30, step, deadline=deadline)

    daemon, clock, _, target, metrics = make_daemon(
        start=BASE + 20 * 60, replicas=10,
        source=Stale(load_recording("scaler/recordings/default.csv")))
    daemon.run_once()
    assert target.writes == []
    assert sample(metrics, "scaler_metric_errors_total", policy="default", reason="stale") == 1


def test_a_conflict_is_not_retried_once_leadership_is_lost():
    leading = {"now": True}
    daemon, clock, _, target, _ = make_daemon(is_leader=lambda: leading["now"])
    original = target.read

    def read_and_lose_the_lease(ref, *, deadline=None):
        if target.conflicts_left == 0 and target.version > 1:
            leading["now"] = False
        return original(ref, deadline=deadline)

    target.read = read_and_lose_the_lease
    target.conflicts_left = 1
    target.version = 2
    run_until(daemon, clock, BASE + 4)
    assert target.writes == []


class ScriptedSource:
    """Answers read() with the next reading of a script: history (the warm start) once,
    then one reading per tick."""

    def __init__(self, history: Reading, reads: list[Reading]):
        self.history_reading = history
        self.reads = list(reads)
        self.calls: list[tuple[float, float]] = []

    def history(self, query, start, end, step=1.0, *, deadline=None):
        return self.history_reading

    def read(self, query, start, end, *, deadline):
        self.calls.append((start, end))
        return self.reads.pop(0) if self.reads else Reading(error="empty", detail="script ended")


def steady_history(end: int, seconds: int = 60, load: float = 140.0) -> Reading:
    return Reading(samples=tuple((float(t), load) for t in range(end - seconds + 1, end + 1)))


def test_a_point_outside_the_range_asked_for_is_bad_data_and_not_recorded():
    """One point stamped an hour ahead once pinned a target at 100 replicas: the whole
    answer is refused (bad_response), nothing of it enters the windows, replicas hold."""
    start = BASE + 100
    ahead = Reading(samples=((float(start + 1), 140.0), (float(start + 3600), 7000.0)))
    behind = Reading(samples=((float(start - 500), 7000.0), (float(start + 3), 140.0)))
    good = [Reading(samples=((float(t), 140.0),)) for t in range(start + 1, start + 4)]
    source = ScriptedSource(steady_history(start), [ahead, behind, *good])
    daemon, clock, _, target, metrics = make_daemon(start=start + 0.5, replicas=2,
                                                    source=source)
    with capture_logs() as logs:
        run_until(daemon, clock, start + 6)
    assert target.writes == []   # 140 at 70 per replica: 2 replicas throughout
    assert sample(metrics, "scaler_metric_errors_total", policy=POLICY.name,
                  reason="bad_response") == 2
    refused = [e for e in logs if e.get("reason") == "bad_response"]
    assert refused and "outside the seconds asked for" in refused[0]["detail"]
    stable = [e["stable"] for e in logs if e.get("event") == "tick" and e["stable"] is not None]
    assert stable and max(stable) == 140.0     # the 7000s never reached the windows


def test_unknown_seconds_are_handed_to_the_windows_not_zero():
    """A reading with seconds it could not answer for: the windows average what is known
    (140 over 60 known seconds, not 140 × 59/60 with a zero), and the tick log counts the
    unknown seconds. A reading whose unknown seconds lie outside its range is refused."""
    start = BASE + 100
    gappy = Reading(samples=((float(start + 1), 140.0),), unknown=(start + 2,))
    stray = Reading(samples=((float(start + 3), 140.0),), unknown=(start + 9,))
    source = ScriptedSource(steady_history(start, load=70.0), [gappy, stray])
    daemon, clock, _, target, metrics = make_daemon(start=start + 0.5, replicas=2,
                                                    source=source)
    with capture_logs() as logs:
        run_until(daemon, clock, start + 5)
    ticks = [e for e in logs if e.get("event") == "tick"]
    gap_tick = next(e for e in ticks if e["unknown"] == 1)
    # 58 seconds of 70 and one of 140 in the window: (58·70 + 140) / 59, not / 60.
    assert gap_tick["stable"] == pytest.approx((58 * 70 + 140) / 59, abs=1e-6)
    assert sample(metrics, "scaler_metric_errors_total", policy=POLICY.name,
                  reason="bad_response") == 1


def test_a_reading_with_left_out_points_is_logged_once_and_still_used():
    start = BASE + 100
    partial = Reading(samples=((float(start + 1), 140.0),), unknown=(start + 2,),
                      left_out="nan", detail="query is NaN at ... (1 of 2 points)")
    again = Reading(samples=((float(start + 3), 140.0),), unknown=(start + 4,),
                    left_out="nan", detail="again")
    source = ScriptedSource(steady_history(start), [partial, again])
    daemon, clock, _, target, metrics = make_daemon(start=start + 0.5, replicas=2,
                                                    source=source)
    with capture_logs() as logs:
        run_until(daemon, clock, start + 5)
    warnings = [e for e in logs if e.get("event") == "metric points left out as unknown"]
    assert len(warnings) == 1 and warnings[0]["reason"] == "nan"
    # Not a hold: no no-data error counted, and the ticks decided.
    assert sample(metrics, "scaler_metric_errors_total", policy=POLICY.name,
                  reason="nan") is None
    assert all(e["decider"] == 2 for e in logs if e.get("event") == "tick")


class HalfShards:
    """Shards that hold the buckets of the policies named in ``mine`` (scaler's own
    protocol: serves, may_write, writing)."""

    def __init__(self, mine):
        self.mine = set(mine)
        self.writes = []

    def serves(self, policy):
        return policy.name in self.mine

    def may_write(self, policy):
        return policy.name in self.mine

    def writing(self, policy):
        import contextlib

        @contextlib.contextmanager
        def claim():
            self.writes.append(policy.name)
            yield policy.name in self.mine
        return claim()


def test_a_sharded_loop_works_only_on_the_policies_of_its_buckets_and_restarts_them():
    other = replace(POLICY, name="other")
    shards = HalfShards({"default"})
    source = RecordedSource(load_recording("scaler/recordings/default.csv"))
    clock = ManualClock(BASE)
    target = InMemoryTarget(1)
    daemon = Daemon([POLICY, other], source=source, actuator=target, clock=clock,
                    metrics=Metrics(CollectorRegistry()), evaluation_delay=0.5, shards=shards)
    reports = []
    daemon.add_tick_listener(reports.append)
    run_until(daemon, clock, BASE + 120)
    assert {r.policy for r in reports} == {"default"}
    assert daemon.targets["other"].ticks == 0 and not daemon.targets["other"].served
    assert set(shards.writes) == {"default"} and target.writes
    # Its bucket comes over: it starts afresh, from a stable window of history.
    shards.mine.add("other")
    calls = len(source.calls)
    run_until(daemon, clock, BASE + 126)
    assert daemon.targets["other"].ticks >= 2
    assert any(r.policy == "other" and r.result is not None for r in reports)
    assert len(source.calls) > calls
    assert sample(daemon.metrics, "scaler_targets_served") == 2


def test_a_listener_that_fails_does_not_stop_the_loop_and_is_said_once():
    daemon, clock, _, target, metrics = make_daemon(replicas=3)
    seen = []

    def broken(report):
        seen.append(report)
        raise RuntimeError("boom")

    daemon.add_tick_listener(broken)
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 30)
    assert len(seen) >= 10
    assert sum(1 for e in logs if e["event"].startswith("tick listener failed")) == 1
    assert all(r.policy == "default" and r.action in ("none", "scaled", "hold") for r in seen)


def test_policies_from_another_origin_join_and_leave_without_touching_the_files_ones():
    daemon, clock, _, target, metrics = make_daemon(replicas=3)
    run_until(daemon, clock, BASE + 10)
    extra = replace(POLICY, name="from-crd")
    clash = replace(POLICY, name="default", target=5)
    daemon.set_policies("crd", [extra, clash])
    run_until(daemon, clock, BASE + 14)
    assert set(daemon.targets) == {"default", "from-crd"}
    assert daemon.targets["default"].policy.target == 100     # files first: no takeover
    assert daemon.targets["from-crd"].ticks >= 1
    daemon.set_policies("crd", [])
    run_until(daemon, clock, BASE + 16)
    assert set(daemon.targets) == {"default"}


def test_tick_log_changes_says_only_the_ticks_that_act_or_hold():
    daemon, clock, source, target, _ = make_daemon(replicas=3, tick_log="changes")
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 120)          # steady at 3: nothing to say
        source.failing = "timeout"
        run_until(daemon, clock, BASE + 126)          # held for want of data: said
    ticks = [e for e in logs if e["event"] == "tick"]
    assert daemon.targets["default"].ticks >= 60
    assert ticks and all(e["action"] != "none" or e["no_data"] for e in ticks)
    assert any(e["no_data"] == "timeout" for e in ticks)
