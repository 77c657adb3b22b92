"""How the loop takes a failing target, with a manual clock and hand-written fakes: one
error line and one Warning Event, then backoff, and recovery when it is fixed; transient
failures said once; a run of 409s one warning naming the other writer."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs
from test_loop import BASE, InMemoryTarget, make_daemon, run_until, sample

from scaler.actuators import ActuatorError, ScaleStatus
from scaler.daemon.faults import MAX_BACKOFF, STORM, TargetFaults


class FlakyTarget(InMemoryTarget):
    """Reads or writes fail with ``failing`` (a reason) while it is set; counts reads."""

    def __init__(self, replicas: int) -> None:
        super().__init__(replicas)
        self.read_fails: str | None = None
        self.write_fails: str | None = None
        self.read_times: list[float] = []
        self.clock = None
        self.owner = ""

    def read(self, target, *, deadline=None):
        self.read_times.append(self.clock.now())
        if self.read_fails:
            raise ActuatorError(target, self.read_fails, f"injected {self.read_fails}")
        status = super().read(target, deadline=deadline)
        return ScaleStatus(status.replicas, status.ready_replicas, status.resource_version,
                           status.paused, replicas_owner=self.owner)

    def scale(self, target, replicas, **kw):
        if self.write_fails:
            raise ActuatorError(target, self.write_fails, f"injected {self.write_fails}")
        return super().scale(target, replicas, **kw)


def flaky_daemon(replicas: int = 1):
    daemon, clock, source, _, metrics = make_daemon(replicas=replicas)
    target = FlakyTarget(replicas)
    target.clock = clock
    daemon.actuator = target
    return daemon, clock, target, metrics


def events(logs, name):
    return [line for line in logs if line["event"] == name]


def test_a_forbidden_target_is_one_error_one_warning_then_backoff_and_recovery():
    daemon, clock, target, metrics = flaky_daemon()
    target.read_fails = "forbidden"
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 120)
    [error] = events(logs, "cannot read target")
    assert error["reason"] == "forbidden" and error["retry_in"] == 2.0
    assert [r for r, _ in target.warnings] == ["FailedGetScale"]
    assert "backoff" in target.warnings[0][1] and "holds the replica count" in target.warnings[0][1]
    # Tried again after 2 s (at the next tick that is due), then 4, 8, 16, 32 s: seven
    # reads in two minutes instead of sixty.
    gaps = [b - a for a, b in zip(target.read_times, target.read_times[1:])]
    assert gaps[0] in (2, 3) and gaps[1:5] == [4, 8, 16, 32] and len(target.read_times) <= 7
    # Every tick still counts the reason, so the error rate shows on dashboards.
    assert sample(metrics, "scaler_patch_errors_total", policy="default",
                  reason="forbidden") >= 55
    assert target.writes == []

    target.read_fails = None                    # the Role is fixed
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 120 + MAX_BACKOFF + 4)
    assert [line["after"] for line in events(logs, "target readable again")] == ["forbidden"]
    assert target.writes and target.replicas == 3   # deciding and writing again


def test_a_transient_failure_is_said_once_and_tried_every_tick():
    daemon, clock, target, _ = flaky_daemon()
    run_until(daemon, clock, BASE + 10)
    target.read_fails = "throttled"
    reads = len(target.read_times)
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 40)
    assert len(events(logs, "cannot read target")) == 1
    assert target.warnings == []                            # nothing for owners to fix
    assert len(target.read_times) - reads == 15             # no backoff: every 2 s tick
    target.read_fails = "timeout"                           # another reason: said again
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 50)
    assert [line["reason"] for line in events(logs, "cannot read target")] == ["timeout"]


def test_a_forbidden_write_warns_once_and_backs_off_the_writes():
    daemon, clock, target, metrics = flaky_daemon()
    target.write_fails = "forbidden"
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 60)
    assert len(events(logs, "scale failed")) == 1
    assert [r for r, _ in target.warnings] == ["FailedRescale"]
    actions = [line["action"] for line in events(logs, "tick")]
    assert actions.count("backoff") > actions.count("error") >= 3
    assert len(actions) >= 30                               # still deciding every tick
    target.write_fails = None
    run_until(daemon, clock, BASE + 60 + MAX_BACKOFF + 4)
    assert target.replicas == 3


def test_a_run_of_conflicts_is_one_warning_naming_the_other_writer():
    daemon, clock, target, metrics = flaky_daemon()
    target.owner = "kube-controller-manager"
    target.conflicts_left = 10**6               # someone else changes it before each write
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 40)
    [storm] = events(logs, "scale writes keep conflicting")
    assert storm["other_writer"] == "kube-controller-manager"
    assert storm["conflicts"] == STORM
    assert "kube-controller-manager keeps setting spec.replicas" in storm["detail"]
    assert [r for r, _ in target.warnings] == ["ScaleConflict"]
    assert sample(metrics, "scaler_patch_conflicts_total", policy="default") > 10

    target.conflicts_left = 0                   # the fight is over: a write goes through
    run_until(daemon, clock, BASE + 44)
    assert target.writes == [3]
    target.replicas = 1                         # someone scales it back down, and then
    target.conflicts_left = 10**6               # a new storm is a new warning
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 60)
    assert target.writes == [3]
    assert len(events(logs, "scale writes keep conflicting")) == 1
    assert [r for r, _ in target.warnings] == ["ScaleConflict", "ScaleConflict"]


def test_a_storm_without_managed_fields_says_so():
    daemon, clock, target, _ = flaky_daemon()
    target.conflicts_left = 10**6
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 20)
    [storm] = events(logs, "scale writes keep conflicting")
    assert storm["other_writer"] is None and "managedFields do not say who" in storm["detail"]


def test_one_or_two_conflicts_are_not_a_storm():
    daemon, clock, target, _ = flaky_daemon()
    target.conflicts_left = STORM - 1
    with capture_logs() as logs:
        run_until(daemon, clock, BASE + 20)
    assert events(logs, "scale writes keep conflicting") == []
    assert target.replicas == 3


@pytest.mark.parametrize("reason, permanent", [
    ("forbidden", True), ("not_found", True), ("no_scale_subresource", True),
    ("unknown_kind", True), ("unauthorized", True), ("throttled", False), ("timeout", False),
    ("unreachable", False), ("http_503", False),
])
def test_which_failures_back_off(reason, permanent):
    faults = TargetFaults()
    first = faults.failed(reason, 100.0, 2.0)
    assert (first.first, first.permanent, first.warn) == (True, permanent, permanent)
    again = faults.failed(reason, 102.0, 2.0)
    assert (again.first, again.warn) == (False, False)
    assert faults.waiting(102.0) == (4.0 if permanent else 0.0)


def test_backoff_doubles_from_a_tick_to_a_minute():
    faults = TargetFaults()
    waits = [faults.failed("forbidden", 0.0, 1.0).retry_in for _ in range(9)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert faults.succeeded() == "forbidden" and faults.waiting(0.0) == 0.0
    assert faults.failed("forbidden", 0.0, 1.0).retry_in == 1    # a new episode


def test_the_time_of_a_stop_request_is_kept_for_the_shutdown_budget():
    daemon, clock, *_ = make_daemon()
    clock.advance(5)
    daemon.request_stop()
    clock.advance(3)
    daemon.request_stop()
    assert daemon.stop_requested_at == BASE + 5

