"""The dry-run actuator (reads through, writes nothing) and the simulated one (the replay
workload behind the Actuator protocol, on a clock)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from scaler.actuators import Conflict, ScaleStatus
from scaler.actuators.dry_run import DryRunActuator
from scaler.actuators.simulated import SimulatedActuator, SimulatedWorkload
from scaler.clock import ManualClock
from scaler.policy import ScaleTargetRef

WEB = ScaleTargetRef("web")


class LiveTarget:
    """A live actuator's stand-in that remembers every call made to it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def read(self, target, *, deadline=None):
        self.calls.append(("read", target, deadline))
        return ScaleStatus(3, 2, "7")

    def scale(self, target, replicas, *, resource_version, reason, message, deadline=None):
        self.calls.append(("scale", target, replicas))
        return True


def test_dry_run_reads_through_the_live_actuator():
    live = LiveTarget()
    assert DryRunActuator(live).read(WEB, deadline=12.5) == ScaleStatus(3, 2, "7")
    assert live.calls == [("read", WEB, 12.5)]


def test_dry_run_reports_a_write_and_never_makes_it():
    live = LiveTarget()
    with capture_logs() as logs:
        written = DryRunActuator(live).scale(WEB, 9, resource_version="7", reason="ScaledUp",
                                             message="3 -> 9 replicas")
    assert written is False
    assert live.calls == []
    assert logs == [{"event": "would_scale", "log_level": "info", "target": str(WEB),
                     "replicas": 9, "reason": "ScaledUp", "message": "3 -> 9 replicas"}]


def test_simulated_replicas_become_ready_after_the_startup_delay():
    clock = ManualClock(100.0)
    act = SimulatedActuator(SimulatedWorkload(1, startup_delay=10.0), clock)
    status = act.read(WEB)
    assert (status.replicas, status.ready_replicas) == (1, 1)
    assert act.scale(WEB, 4, resource_version=status.resource_version, reason="ScaledUp",
                     message="") is True
    clock.advance(9.5)
    assert (act.read(WEB).replicas, act.read(WEB).ready_replicas) == (4, 1)
    clock.advance(0.5)
    assert act.read(WEB).ready_replicas == 4
    assert act.events == [(100.0, 4, "ScaledUp")]


def test_simulated_writes_need_the_version_they_were_decided_on():
    clock = ManualClock(0.0)
    act = SimulatedActuator(SimulatedWorkload(2), clock)
    stale = act.read(WEB).resource_version
    act.scale(WEB, 3, resource_version=stale, reason="ScaledUp", message="")
    with pytest.raises(Conflict):
        act.scale(WEB, 1, resource_version=stale, reason="ScaledDown", message="")
    assert act.read(WEB).replicas == 3
