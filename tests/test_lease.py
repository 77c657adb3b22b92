"""Leader election: timing with a manual clock, then two live electors end to end.

Both parts talk to the fake API server over real HTTP; only the clock differs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes.client import Configuration
from support.fakekube import FakeKubeAPIServer
from support.leases import client, clock, server  # noqa: F401 (fixtures)

from scaler.clock import ManualClock
from scaler.daemon.lease import LeaderElector
from scaler.kube import KubeClient

LEASE_PATH = r"/leases/scaler$"


def elector(client: KubeClient, clock: ManualClock, identity: str) -> LeaderElector:
    return LeaderElector(client, "default", "scaler", identity, clock=clock)


def holder(server: FakeKubeAPIServer) -> str:
    lease = server.get("Lease", "scaler")
    assert lease is not None
    return lease["spec"].get("holderIdentity", "")


# --------------------------------------------------------------------------------------
# Timing, with a ManualClock (defaults: lease 15 s, renew deadline 10 s, retry 2 s)


def test_first_candidate_creates_the_lease(server: FakeKubeAPIServer, client: KubeClient,
                                           clock: ManualClock) -> None:
    a = elector(client, clock, "a")
    assert not a.is_leader()
    assert a.try_acquire_or_renew()
    assert a.is_leader()
    spec = server.get("Lease", "scaler")["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("a", 15)
    assert spec["leaseTransitions"] == 0
    assert spec["renewTime"] == "2023-11-14T22:13:20.000000Z"     # MicroTime from the clock


def test_leadership_ends_at_the_renew_deadline_without_a_renewal(
        client: KubeClient, clock: ManualClock) -> None:
    a = elector(client, clock, "a")
    a.try_acquire_or_renew()
    clock.advance(9.999)
    assert a.is_leader()
    clock.advance(0.001)
    assert not a.is_leader()      # at once, without any call to the API server


def test_failed_renewals_keep_leadership_only_until_the_deadline(
        server: FakeKubeAPIServer, client: KubeClient, clock: ManualClock) -> None:
    a = elector(client, clock, "a")
    a.try_acquire_or_renew()
    server.inject("PUT", LEASE_PATH, status=500, times=None)
    for _ in range(4):            # renewals at 2, 4, 6, 8 s all fail
        clock.advance(2)
        assert not a.try_acquire_or_renew()
        assert a.is_leader()
    clock.advance(2)              # 10 s since the last successful renewal
    assert not a.is_leader()
    server.clear_faults()
    assert a.try_acquire_or_renew() and a.is_leader()   # nobody else took it: renewed


def test_a_renewal_extends_leadership(client: KubeClient, clock: ManualClock) -> None:
    a = elector(client, clock, "a")
    a.try_acquire_or_renew()
    clock.advance(8)
    assert a.try_acquire_or_renew()
    clock.advance(9)
    assert a.is_leader()


def test_candidate_waits_a_full_lease_duration_from_its_observation(
        server: FakeKubeAPIServer, client: KubeClient, clock: ManualClock) -> None:
    a, b = elector(client, clock, "a"), elector(client, clock, "b")
    a.try_acquire_or_renew()
    clock.advance(5)
    assert not b.try_acquire_or_renew()          # b first sees the record at t=5
    clock.advance(14.9)                          # a stopped renewing; 14.9 s after t=5
    assert not b.try_acquire_or_renew()
    assert not a.is_leader()                     # a gave up at its renew deadline (t=10)
    clock.advance(0.1)
    assert b.try_acquire_or_renew() and b.is_leader()
    spec = server.get("Lease", "scaler")["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


def test_a_renewal_restarts_the_candidates_wait(client: KubeClient, clock: ManualClock) -> None:
    a, b = elector(client, clock, "a"), elector(client, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    clock.advance(10)
    a.try_acquire_or_renew()                     # the record changes at t=10
    clock.advance(10)
    assert not b.try_acquire_or_renew()          # b observes the change at t=20
    clock.advance(14)
    assert not b.try_acquire_or_renew()          # 14 s since b saw it change
    assert a.try_acquire_or_renew()              # a still renewing: still a's


def test_leader_that_sees_another_holder_steps_down_at_once(
        server: FakeKubeAPIServer, client: KubeClient, clock: ManualClock) -> None:
    a = elector(client, clock, "a")
    a.try_acquire_or_renew()
    server.patch("Lease", "scaler", {"spec": {"holderIdentity": "intruder"}})
    assert not a.try_acquire_or_renew()
    assert not a.is_leader()


def test_conflict_on_renewal_loses_leadership_at_once(
        server: FakeKubeAPIServer, client: KubeClient, clock: ManualClock) -> None:
    a = elector(client, clock, "a")
    a.try_acquire_or_renew()
    server.inject("PUT", LEASE_PATH, status=409, times=1)
    clock.advance(2)
    assert not a.try_acquire_or_renew()
    assert not a.is_leader()


def test_renewal_carries_the_resource_version(server: FakeKubeAPIServer, client: KubeClient,
                                              clock: ManualClock) -> None:
    a = elector(client, clock, "a")
    a.try_acquire_or_renew()
    rv = server.get("Lease", "scaler")["metadata"]["resourceVersion"]
    clock.advance(2)
    a.try_acquire_or_renew()
    [put] = server.requests_to("PUT", LEASE_PATH)
    assert put.body["metadata"]["resourceVersion"] == rv


def test_two_candidates_racing_to_create(server: FakeKubeAPIServer, client: KubeClient,
                                         clock: ManualClock) -> None:
    a, b = elector(client, clock, "a"), elector(client, clock, "b")
    # b's GET happens before a creates the lease; b's create then fails with AlreadyExists.
    server.inject("GET", LEASE_PATH, status=404, times=1)
    assert a.try_acquire_or_renew()
    server.inject("GET", LEASE_PATH, status=404, times=1)
    assert not b.try_acquire_or_renew()
    assert (a.is_leader(), b.is_leader(), holder(server)) == (True, False, "a")


def test_release_lets_the_other_take_over_at_once(server: FakeKubeAPIServer, client: KubeClient,
                                                  clock: ManualClock) -> None:
    a, b = elector(client, clock, "a"), elector(client, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    assert a.release()
    assert not a.is_leader()
    spec = server.get("Lease", "scaler")["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("", 1)
    assert b.try_acquire_or_renew()               # no waiting for the lease to expire
    assert holder(server) == "b"


def test_release_is_a_no_op_for_a_non_leader(server: FakeKubeAPIServer, client: KubeClient,
                                             clock: ManualClock) -> None:
    a, b = elector(client, clock, "a"), elector(client, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    assert not b.release()
    assert holder(server) == "a"


def test_stop_ends_leadership(client: KubeClient, clock: ManualClock) -> None:
    stop = threading.Event()
    a = LeaderElector(client, "default", "scaler", "a", clock=clock, stop=stop)
    a.try_acquire_or_renew()
    stop.set()
    assert not a.is_leader()


def test_unreachable_server_is_a_failed_round(clock: ManualClock) -> None:
    kube = KubeClient(Configuration(host="http://127.0.0.1:9"))   # discard port: refused
    a = LeaderElector(kube, "default", "scaler", "a", clock=clock, request_timeout=1.0)
    assert not a.try_acquire_or_renew()
    assert not a.is_leader()


@pytest.mark.parametrize("durations, message", [
    pytest.param((10, 10, 2), "lease_duration", id="lease-not-above-renew"),
    pytest.param((15, 2.4, 2), "renew_deadline", id="renew-within-jittered-retry"),
    pytest.param((15, 10, 0), "retry_period", id="no-retry-period"),
])
def test_unsafe_durations_are_rejected(client: KubeClient, durations: tuple[float, float, float],
                                       message: str) -> None:
    lease, renew, retry = durations
    with pytest.raises(ValueError, match=message):
        LeaderElector(client, "default", "scaler", "a", lease_duration=lease,
                      renew_deadline=renew, retry_period=retry)


# --------------------------------------------------------------------------------------
# End to end: two electors running on the system clock


def wait_for(condition: Callable[[], bool], within: float) -> float:
    """Poll until ``condition`` holds; return how long it took (fail after ``within``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition never held"
        time.sleep(0.01)
    return time.monotonic() - started


class Replica:
    def __init__(self, client: KubeClient, identity: str, *, release: bool,
                 lease: float, renew: float, retry: float) -> None:
        self.stop = threading.Event()
        self.elector = LeaderElector(client, "default", "scaler", identity, lease_duration=lease,
                                     renew_deadline=renew, retry_period=retry, stop=self.stop,
                                     release_on_cancel=release)
        self.thread = self.elector.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def exactly_one_leader(replicas: list[Replica]) -> bool:
    return sum(r.elector.is_leader() for r in replicas) == 1


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        replica.halt()


def test_two_replicas_elect_exactly_one_leader_and_fail_over(
        server: FakeKubeAPIServer, client: KubeClient, replicas: list[Replica]) -> None:
    timing = {"lease": 1.5, "renew": 1.0, "retry": 0.2}
    replicas += [Replica(client, "a", release=False, **timing),
                 Replica(client, "b", release=False, **timing)]
    wait_for(lambda: exactly_one_leader(replicas), within=10)
    for _ in range(50):                     # about a second of renewals: never two leaders
        assert sum(r.elector.is_leader() for r in replicas) <= 1
        time.sleep(0.02)
    leader, follower = sorted(replicas, key=lambda r: not r.elector.is_leader())
    assert holder(server) == leader.elector.identity

    leader.halt()                           # dies without releasing the lease
    assert not leader.elector.is_leader()
    took = wait_for(follower.elector.is_leader, within=10)
    assert holder(server) == follower.elector.identity
    # Generous: the lease (2 whole seconds in the Lease) plus jittered retries and slack.
    assert took < 2 + 5 * 0.44 + 2


def test_released_lease_is_taken_over_long_before_it_would_expire(
        server: FakeKubeAPIServer, client: KubeClient, replicas: list[Replica]) -> None:
    timing = {"lease": 6.0, "renew": 4.0, "retry": 0.2}
    replicas += [Replica(client, "a", release=True, **timing)]
    wait_for(replicas[0].elector.is_leader, within=10)
    rounds = len(server.requests_to("GET", LEASE_PATH))
    replicas += [Replica(client, "b", release=True, **timing)]
    # Let b campaign against a's live lease first (each of them reads it every round).
    wait_for(lambda: len(server.requests_to("GET", LEASE_PATH)) >= rounds + 6, within=10)
    assert not replicas[1].elector.is_leader()

    replicas[0].halt()                      # graceful shutdown: the lease is released
    took = wait_for(replicas[1].elector.is_leader, within=10)
    assert holder(server) == "b"
    assert took < 6.0 / 2                   # generous, yet well inside the 6 s lease
