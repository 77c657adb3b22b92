"""The activator's endpoints from the cluster: a Service's EndpointSlices read as Kubernetes
means them (ready condition, named ports, several slices, dual stack), listed and watched
against the fake API server (relist after 410, the last ready set kept while the API is
down), and requests held at zero released when a slice turns ready."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request

import pytest

from scaler.activator.config import Route
from scaler.activator.endpoints import Endpoint
from scaler.activator.endpointslices import (
    DaemonDiscovery,
    EndpointSliceSource,
    ServiceSlices,
)
from scaler.activator.kubeapi import KubeAPI
from scaler.endpointslices import ready_endpoints
from scaler.kubeconfig import load
from support.activator import ActivatorThread, route
from support.backends import Backend
from support.daemon import write_kubeconfig
from support.fakekube import FakeKubeAPIServer, endpoint_slice


def slice_(addresses, *, port=8080, port_name="http", family="IPv4", name="s",
           conditions=None, refs=None):
    return {"metadata": {"name": name}, "addressType": family,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], **({"conditions": conditions[i]}
                                                if conditions else {}),
                           **({"targetRef": {"kind": "Pod", "name": refs[i], "uid": refs[i]}}
                              if refs else {})}
                          for i, a in enumerate(addresses)]}


CASES = {
    "ready true, false and unknown (absent counts as ready)": (
        [slice_(["10.0.0.1", "10.0.0.2", "10.0.0.3"],
                conditions=[{"ready": True}, {"ready": False, "terminating": True}, {}])],
        "http", {("10.0.0.1", 8080), ("10.0.0.3", 8080)}),
    "a named port resolves per slice": (
        [slice_(["10.0.0.1"], port=8080, name="a"), slice_(["10.0.0.2"], port=9090, name="b")],
        "http", {("10.0.0.1", 8080), ("10.0.0.2", 9090)}),
    "a slice without the named port contributes nothing": (
        [slice_(["10.0.0.1"], port_name="grpc", name="a"), slice_(["10.0.0.2"], name="b")],
        "http", {("10.0.0.2", 8080)}),
    "a port number is used as given": (
        [slice_(["10.0.0.1"], port_name="grpc", port=9000)], 7000, {("10.0.0.1", 7000)}),
    "a dual-stack pod counts once, as IPv4": (
        [slice_(["fd00::1"], family="IPv6", name="v6", refs=["p1"]),
         slice_(["10.0.0.1"], name="v4", refs=["p1"])],
        "http", {("10.0.0.1", 8080)}),
    "FQDN addresses are host names": (
        [slice_(["pod-1.example.internal"], family="FQDN")], "http",
        {("pod-1.example.internal", 8080)}),
    "the same address in two slices counts once": (
        [slice_(["10.0.0.1"], name="a"), slice_(["10.0.0.1"], name="b")], "http",
        {("10.0.0.1", 8080)}),
    "no slices: zero endpoints": ([], "http", set()),
}


@pytest.mark.parametrize("slices, port, expected", CASES.values(), ids=CASES.keys())
def test_ready_endpoints(slices, port, expected):
    assert {e.hostport for e in ready_endpoints(slices, port)} == expected


def test_only_the_first_address_of_an_endpoint_is_used():
    s = slice_(["10.0.0.1"])
    s["endpoints"][0]["addresses"].append("10.0.0.9")
    assert [e.hostport for e in ready_endpoints([s], "http")] == [("10.0.0.1", 8080)]


# ----------------------------------------------------------------------------------------
# against the fake API server


class LoopThread:
    """An event loop in a thread, for driving the async watch from a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        time.sleep(0.05)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def collect(self, agen, into: list) -> None:
        async def run():
            async for item in agen:
                into.append(item)
        asyncio.run_coroutine_threadsafe(run(), self.loop)


def wait_for(check, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server():
    with FakeKubeAPIServer(history_limit=20) as srv:
        yield srv


@pytest.fixture
def api(server, tmp_path):
    return KubeAPI(load(str(write_kubeconfig(tmp_path / "kc", server.url))))


def delete(server, namespace: str, name: str) -> None:
    request = urllib.request.Request(
        f"{server.url}/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}",
        method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def addresses(sets: list, i: int = -1) -> set[str]:
    return {f"{e.host}:{e.port}" for e in sets[i]}


def test_the_watch_follows_slices_as_they_change(server, api):
    server.create(endpoint_slice("web", ["10.0.0.1"], name="web-a"))
    server.create(endpoint_slice("other", ["10.0.9.9"], name="other-a"))
    source = EndpointSliceSource(api, retry_first=0.05)
    seen: list = []
    with LoopThread() as lt:
        lt.collect(source.watch(route("web", hosts=["web.test"])), seen)
        wait_for(lambda: seen, what="the first set")
        assert addresses(seen) == {"10.0.0.1:8080"}            # the other Service's: no
        wait_for(lambda: server.open_watches(), what="a watch")
        server.create(endpoint_slice("web", {"10.0.0.2": False}, name="web-b"))
        server.create(endpoint_slice("web", ["10.0.0.3"], name="web-c"))
        wait_for(lambda: addresses(seen) == {"10.0.0.1:8080", "10.0.0.3:8080"},
                 what="a second slice merged")
        before_ready = len(seen)
        server.patch("EndpointSlice", "web-b", {"endpoints": [
            {"addresses": ["10.0.0.2"], "conditions": {"ready": True}}]})
        wait_for(lambda: len(addresses(seen)) == 3, what="a pod turning ready")
        delete(server, "default", "web-a")
        wait_for(lambda: addresses(seen) == {"10.0.0.2:8080", "10.0.0.3:8080"},
                 what="a deleted slice's endpoints gone")
        lists = source.watchers["web"].lists
        assert lists == 1                   # one LIST; everything since came by the watch
        # The endpoint entered no set while it was not ready.
        assert all("10.0.0.2:8080" not in addresses(seen, i) for i in range(before_ready))


def test_after_410_it_lists_again_and_misses_nothing(server, api):
    server.create(endpoint_slice("web", ["10.0.0.1"], name="web-a"))
    source = EndpointSliceSource(api, retry_first=0.05)
    seen: list = []
    with LoopThread() as lt:
        lt.collect(source.watch(route("web", hosts=["web.test"])), seen)
        wait_for(lambda: seen and server.open_watches(), what="watching")
        # While no watch is open, enough writes happen for its resourceVersion to be
        # compacted away (history_limit=20), one of them to this Service's slices.
        server.inject("GET", "endpointslices", status=503, times=1)
        server.end_watches()
        for i in range(25):
            server.create(endpoint_slice("noise", [f"10.1.0.{i + 1}"], name=f"noise-{i}"))
        server.create(endpoint_slice("web", ["10.0.0.2"], name="web-b"))
        wait_for(lambda: addresses(seen) == {"10.0.0.1:8080", "10.0.0.2:8080"}, 10,
                 "the slice written while the watch was down")
        assert source.watchers["web"].lists >= 2


def test_while_the_api_is_down_the_last_ready_set_is_kept_then_updated(server, tmp_path):
    """The route keeps forwarding to what it knew while the API answers 503; when the API
    is back the watch catches up."""
    api = KubeAPI(load(str(write_kubeconfig(tmp_path / "kc", server.url))))
    server.create(endpoint_slice("web", ["10.0.0.1"], name="web-a"))
    slices = ServiceSlices(api, "default", "web", retry_first=0.05, retry_max=0.2)
    seen: list = []
    with LoopThread() as lt:
        lt.collect(slices.__aiter__(), seen)
        wait_for(lambda: seen and server.open_watches(), what="watching")
        count = len(seen)
        server.inject("GET", "endpointslices", status=503, times=None)
        server.end_watches()
        wait_for(lambda: len(server.requests_to("GET", "endpointslices")) > 5, 10,
                 "retries against the failing API")
        assert len(seen) == count                     # nothing new was handed out
        server.clear_faults()
        server.create(endpoint_slice("web", ["10.0.0.2"], name="web-b"))
        wait_for(lambda: set(seen[-1]) == {"web-a", "web-b"}, 10, "caught up")


def test_daemon_discovery_pokes_every_listed_daemon_but_terminating_ones(server, api):
    got: list = []
    server.create(endpoint_slice("scaler-api", {"10.0.0.5": True, "10.0.0.6": False},
                                 port=8080, port_name="api", name="d"))
    discovery = DaemonDiscovery(api, "default", "scaler-api", "api", got.append,
                                retry_first=0.05)
    with LoopThread() as lt:
        asyncio.run_coroutine_threadsafe(discovery.run(), lt.loop)
        wait_for(lambda: got, what="discovered daemons")
        assert got[-1] == ["http://10.0.0.5:8080", "http://10.0.0.6:8080"]
        server.patch("EndpointSlice", "d", {"endpoints": [
            {"addresses": ["10.0.0.5"], "conditions": {"ready": False, "terminating": True}},
            {"addresses": ["10.0.0.6"], "conditions": {"ready": True}}]})
        wait_for(lambda: got[-1] == ["http://10.0.0.6:8080"], what="the terminating one gone")


def test_requests_held_at_zero_go_out_when_a_slice_turns_ready(server, api):
    """The whole activator on the cluster source: a Service without ready endpoints holds;
    the backend's slice (an FQDN slice naming 127.0.0.1: Kubernetes refuses loopback IPs in
    IPv4 slices) releases the held request to it."""
    with Backend("pod-1") as backend:
        server.create(endpoint_slice("web", {"10.0.0.7": False}, name="web-a"))
        source = EndpointSliceSource(api, retry_first=0.05)
        web = Route(policy="web", namespace="default", service="web", port="http",
                    hosts=("web.test",))
        with ActivatorThread([web], source=source) as a:
            a.wait_for(lambda: a.activator.states["web"].synced, what="synced")
            answers: list = []
            t = threading.Thread(target=lambda: answers.append(
                a.get("/id", host="web.test", timeout=20)))
            t.start()
            a.wait_for(lambda: a.route_stats("web")["pending"] == 1, what="held")
            ready = endpoint_slice("web", [], name="web-fqdn", port=backend.port)
            ready["addressType"] = "FQDN"
            ready["endpoints"] = [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]
            server.create(ready)
            t.join(10)
            assert answers and answers[0][0] == 200 and answers[0][2] == b"pod-1"
            assert a.route_stats("web")["ready_endpoints"] == 1
            assert a.activator.states["web"].ready[0].endpoint == Endpoint("127.0.0.1",
                                                                           backend.port)
