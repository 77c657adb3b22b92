"""Releasing the Lease on shutdown with a slow API server: by a deadline, even while the
election thread is inside a renewal, and never taken back once stopping."""

from __future__ import annotations

import threading
import time

import pytest
from support.fakekube import FakeKubeAPIServer
from support.leases import client, server  # noqa: F401 (fixtures)

from scaler.daemon.lease import LeaderElector
from scaler.kube import KubeClient

LEASE_PATH = r"/leases/scaler$"


def holder(server: FakeKubeAPIServer) -> str:
    return server.get("Lease", "scaler")["spec"].get("holderIdentity", "")


def test_release_while_a_slow_renewal_is_in_flight(server: FakeKubeAPIServer,
                                                   client: KubeClient) -> None:
    stop = threading.Event()
    a = LeaderElector(client, "default", "scaler", "a", stop=stop, request_timeout=2.0)
    assert a.try_acquire_or_renew()
    server.inject("PUT", LEASE_PATH, delay=0.6, times=1)   # the renewal is slow
    renewal = threading.Thread(target=a.try_acquire_or_renew)
    renewal.start()
    time.sleep(0.2)                                        # it is inside the PUT now
    stop.set()
    began = time.monotonic()
    assert a.release(deadline=time.monotonic() + 3.0)
    renewal.join(timeout=5)
    assert time.monotonic() - began < 3.0
    assert holder(server) == ""                            # released, and stays so
    renewal_put, release_put = server.requests_to("PUT", LEASE_PATH)
    # The release went out and landed while the renewal was held up; the renewal then
    # met a newer version and changed nothing.
    assert (renewal_put.status, release_put.status) == (409, 200)
    assert not a.release()                                 # once only


def test_a_release_that_meets_a_newer_version_reads_again(server: FakeKubeAPIServer,
                                                          client: KubeClient) -> None:
    """A renewal that landed after the elector last looked: the release's PUT is a 409,
    and it reads the lease, sees it still holds it, and releases that version."""
    a = LeaderElector(client, "default", "scaler", "a")
    assert a.try_acquire_or_renew()
    server.patch("Lease", "scaler", {"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}})
    assert a.release(deadline=time.monotonic() + 3.0)
    assert [p.status for p in server.requests_to("PUT", LEASE_PATH)] == [409, 200]
    assert holder(server) == ""


def test_a_release_of_a_lease_someone_else_took_writes_nothing(server: FakeKubeAPIServer,
                                                               client: KubeClient) -> None:
    a = LeaderElector(client, "default", "scaler", "a")
    assert a.try_acquire_or_renew()
    server.patch("Lease", "scaler", {"spec": {"holderIdentity": "b"}})
    assert not a.release(deadline=time.monotonic() + 3.0)
    assert holder(server) == "b"


def test_no_round_takes_the_lease_back_once_stopping(server: FakeKubeAPIServer,
                                                     client: KubeClient) -> None:
    stop = threading.Event()
    a = LeaderElector(client, "default", "scaler", "a", stop=stop)
    assert a.try_acquire_or_renew()
    stop.set()
    assert a.release()
    writes = len(server.writes("Lease"))
    assert not a.try_acquire_or_renew()      # it reads the released lease, writes nothing
    assert len(server.writes("Lease")) == writes and holder(server) == ""


def test_release_gives_up_at_its_deadline(server: FakeKubeAPIServer,
                                          client: KubeClient) -> None:
    a = LeaderElector(client, "default", "scaler", "a", request_timeout=5.0)
    assert a.try_acquire_or_renew()
    server.inject("PUT", LEASE_PATH, delay=3.0, times=1)
    began = time.monotonic()
    assert not a.release(deadline=time.monotonic() + 0.5)
    assert time.monotonic() - began < 1.5


def test_the_election_thread_does_not_release_twice(server: FakeKubeAPIServer,
                                                    client: KubeClient) -> None:
    stop = threading.Event()
    a = LeaderElector(client, "default", "scaler", "a", stop=stop, retry_period=0.2,
                      renew_deadline=1.0, lease_duration=1.5)
    thread = a.start()
    give_up = time.monotonic() + 5
    while not a.is_leader():
        assert time.monotonic() < give_up
        time.sleep(0.01)
    stop.set()
    assert a.release(deadline=time.monotonic() + 2)        # the daemon's own release
    thread.join(timeout=5)                                 # the thread's is a no-op
    assert not thread.is_alive()
    releases = [r for r in server.requests_to("PUT", LEASE_PATH)
                if r.body["spec"]["holderIdentity"] == ""]
    assert len(releases) == 1 and holder(server) == ""


def test_a_second_release_waits_for_the_first(server: FakeKubeAPIServer,
                                              client: KubeClient) -> None:
    """The election thread releasing on its way out, and the daemon releasing too: the
    daemon's call returns only once the lease is released, not while it is in flight."""
    a = LeaderElector(client, "default", "scaler", "a", request_timeout=3.0)
    assert a.try_acquire_or_renew()
    server.inject("PUT", LEASE_PATH, delay=0.8, times=1)
    first = threading.Thread(target=a.release, kwargs={"deadline": time.monotonic() + 3})
    first.start()
    time.sleep(0.2)
    began = time.monotonic()
    assert not a.release(deadline=time.monotonic() + 3)    # the other call did it...
    assert time.monotonic() - began >= 0.4                 # ...and this one waited for it
    assert holder(server) == ""
    first.join(timeout=5)


def test_a_round_cut_short_by_the_stop_still_lets_the_release_happen(
        server: FakeKubeAPIServer, client: KubeClient) -> None:
    """The stop comes while a renewal round is between its GET and its PUT: the round
    writes nothing, and the release that follows still knows the lease is ours."""
    stop = threading.Event()
    a = LeaderElector(client, "default", "scaler", "a", stop=stop)
    assert a.try_acquire_or_renew()
    server.inject("GET", LEASE_PATH, delay=0.5, times=1)
    renewal = threading.Thread(target=a.try_acquire_or_renew)
    renewal.start()
    time.sleep(0.2)
    stop.set()
    renewal.join(timeout=5)
    assert a.release(deadline=time.monotonic() + 3)
    assert holder(server) == ""
