"""The targets' watch cache (LIST + WATCH per kind and namespace) against the fake API:
no read per tick, writes still on the resourceVersion they were decided on, a 409 read
from the API, relists after 410 and after a broken watch, bookmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakekube import FakeKubeAPIServer, deployment, rollout
from support.prometheus import eventually
from test_actuator_kubernetes import write_kubeconfig

from scaler.actuators import Conflict
from scaler.actuators.kubernetes import KubernetesActuator, TargetCache
from scaler.clock import SystemClock
from scaler.kube import KubeClient
from scaler.policy import ScaleTargetRef

WEB = ScaleTargetRef("web", namespace="shop")
API = ScaleTargetRef("api", namespace="shop")


@pytest.fixture
def server() -> Iterator[FakeKubeAPIServer]:
    with FakeKubeAPIServer(ready_delay=0.0, history_limit=50) as srv:
        srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        srv.create(deployment("web", replicas=2, namespace="shop"))
        srv.create(deployment("api", replicas=1, namespace="shop"))
        yield srv


@pytest.fixture
def parts(server: FakeKubeAPIServer, tmp_path: Path):
    stop = threading.Event()
    client = KubeClient.from_config(str(write_kubeconfig(tmp_path / "kubeconfig", server.url)))
    cache = TargetCache(client, clock=SystemClock(), stop=stop, stale_after=3.0)
    actuator = KubernetesActuator(client, stop=stop, budget=5.0, request_timeout=2.0,
                                  cache=cache)
    yield actuator, cache
    stop.set()
    actuator.close()


def object_reads(server: FakeKubeAPIServer) -> int:
    return len(server.requests_to("GET", r"/namespaces/shop/deployments/(web|api)"))


def test_reads_come_from_the_watch_and_follow_the_cluster(server, parts) -> None:
    actuator, cache = parts
    first = actuator.read(WEB)                        # waits for the first list
    assert (first.replicas, first.ready_replicas) == (2, 2)
    informer = cache.informer(WEB)
    eventually(informer.fresh)
    eventually(lambda: server.open_watches() == 1)
    before = object_reads(server)
    for _ in range(50):
        status = actuator.read(WEB)
        actuator.read(API)
    assert object_reads(server) == before             # 100 reads, no request
    assert status.resource_version == server.get("Deployment", "web", "shop")["metadata"][
        "resourceVersion"]
    # One LIST and one WATCH for the namespace's deployments, whatever the number of reads.
    assert len(server.requests_to("GET", r"/namespaces/shop/deployments$")) == 2
    server.patch("Deployment", "web", {"metadata": {"annotations": {"scaler/paused": "true"},
                                                     "labels": {"x": "y"}},
                                        "spec": {"replicas": 5}}, "shop")
    eventually(lambda: actuator.read(WEB).replicas == 5 and actuator.read(WEB).paused)
    assert actuator.read(WEB).replicas_owner == "test"


def test_a_write_carries_the_version_it_was_decided_on_and_a_409_reads_the_api(
        server, parts) -> None:
    actuator, cache = parts
    actuator.read(WEB)
    eventually(cache.informer(WEB).fresh)
    status = actuator.read(WEB)
    # Someone else writes between the read and the write: the write is refused, not
    # applied over theirs.
    server.patch("Deployment", "web", {"spec": {"replicas": 7}}, "shop")
    with pytest.raises(Conflict):
        actuator.scale(WEB, 3, resource_version=status.resource_version, reason="ScaledUp",
                       message="m")
    before = object_reads(server)
    again = actuator.read(WEB)                        # after a 409: from the API
    assert object_reads(server) > before and again.replicas == 7
    assert actuator.scale(WEB, 3, resource_version=again.resource_version, reason="ScaledDown",
                          message="m")
    # The cache has the write at once (written through), before its watch event.
    after = actuator.read(WEB)
    assert after.replicas == 3
    assert server.get("Deployment", "web", "shop")["spec"]["replicas"] == 3
    patches = server.writes("Deployment", "web")
    assert [w.body["metadata"]["resourceVersion"] for w in patches
            if w.field_manager == "scaler"] == [again.resource_version]


def test_a_compacted_version_is_a_relist_and_bookmarks_move_the_version_on(
        server, parts) -> None:
    actuator, cache = parts
    actuator.read(WEB)
    informer = cache.informer(WEB)
    eventually(informer.fresh)
    server.bookmark()
    eventually(lambda: int(informer.resource_version) == server.resource_version)
    lists = informer.lists
    # The watch ends (as at an API server restart) and, meanwhile, more writes than the
    # server keeps: resuming from the old version is a 410, so the cache lists again.
    eventually(lambda: server.open_watches() == 1)
    # The re-watch waits a second, while the writes go by.
    server.inject("GET", r"/namespaces/shop/deployments$", delay=1.0, times=1)
    server.end_watches()
    for n in range(60):
        server.patch("Deployment", "api", {"metadata": {"labels": {"n": str(n)}}}, "shop")
    server.patch("Deployment", "web", {"spec": {"replicas": 9}}, "shop")
    eventually(lambda: informer.lists > lists and actuator.read(WEB).replicas == 9)
    assert informer.relists_after_error >= 1


def test_a_broken_watch_is_retried_and_the_cache_is_not_trusted_meanwhile(
        server, parts) -> None:
    actuator, cache = parts
    actuator.read(WEB)
    informer = cache.informer(WEB)
    eventually(informer.fresh)
    server.inject("GET", r"/namespaces/shop/deployments$", status=503, times=None)
    server.end_watches()
    eventually(lambda: not informer.fresh(), timeout=10)
    before = object_reads(server)
    assert actuator.read(WEB).replicas == 2          # from the API while the watch is down
    assert object_reads(server) > before
    server.clear_faults()
    eventually(informer.fresh, timeout=15)
    assert informer.relists_after_error >= 1


def test_kinds_the_cache_cannot_map_are_read_per_tick(server, parts) -> None:
    actuator, cache = parts
    canary = ScaleTargetRef("canary", namespace="shop", kind="Rollout",
                            api_version="argoproj.io/v1alpha1")
    server.create(rollout("canary", replicas=2, namespace="shop"))
    assert cache.informer(canary) is None
    assert actuator.read(canary).replicas == 2
    assert actuator.read(canary).replicas == 2
    assert len(server.requests_to("GET", r"/rollouts/canary/scale$")) == 2


def test_the_first_reads_wait_for_the_list_instead_of_reading_each_target(server, parts):
    actuator, cache = parts
    for name in ("web", "api"):
        assert actuator.read(ScaleTargetRef(name, namespace="shop")).replicas in (1, 2)
    assert cache.informer(WEB).lists == 1
    assert object_reads(server) == 0             # one LIST served both


def test_a_refused_list_does_not_slow_the_reads(server, parts):
    actuator, cache = parts
    server.inject("GET", r"/namespaces/shop/deployments$", status=403, times=None)
    actuator.read(WEB)
    started = time.monotonic()
    for _ in range(10):
        assert actuator.read(WEB).replicas == 2           # from the API, at once
    assert time.monotonic() - started < 1.0
    assert not cache.informer(WEB).fresh()
