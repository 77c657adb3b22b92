"""The daemon's side of the activator: pokes that decide at once (and reach standbys too),
Knative's serve/proxy rule, the public EndpointSlice it writes (against the fake API), and
metric.source activator read from its own source."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from scaler.actuators import ScaleStatus
from scaler.actuators.traffic import SIDE_ANNOTATION, TrafficSwitch
from scaler.clock import ManualClock, SystemClock
from scaler.daemon.activator import wants_serving
from scaler.daemon.loop import Daemon
from scaler.daemon.observability import HealthServer, Metrics
from scaler.daemon.poke import PokeInbox
from scaler.decide.kpa import Decision
from scaler.decide.pipeline import TickResult
from scaler.kube import KubeClient
from scaler.policy import ActivatorPolicy, MetricSpec, Policy, ScaleTargetRef
from scaler.sources import Reading
from support.daemon import write_kubeconfig
from support.fakekube import FakeKubeAPIServer, endpoint_slice, service

BASE = 1_772_409_600
REF = ScaleTargetRef(name="app", namespace="default")
ACTIVATOR = ActivatorPolicy(service="app", port="http", hosts=("app.test",))
POLICY = replace(Policy(), name="app", scale_target_ref=REF, activator=ACTIVATOR,
                 metric=MetricSpec(query="sum(app_requests)"), tick_interval=2.0,
                 stable_window=60, scale_to_zero_grace_period=0.0)


# ----------------------------------------------------------------------------------------
# Knative's serve/proxy rule


def result(desired=1, ebc=0, valid=True, floor=0) -> TickResult:
    decision = Decision(valid=valid, desired_pods=desired, excess_burst_capacity=ebc)
    return TickResult(now=0.0, stable=1.0, panic=1.0, ready_pods=1, current=1,
                      decision=decision, replicas=desired, in_panic=False,
                      grace_remaining=None, floor=floor)


SWITCH = {
    "warm with burst capacity to spare: serve": (result(3, ebc=89), POLICY, True),
    "excess burst capacity exactly 0 serves (0 counts as non-negative)":
        (result(1, ebc=0), POLICY, True),
    "short of burst capacity: proxy": (result(3, ebc=-11), POLICY, False),
    "wanting zero: proxy, before the grace period removes the last pod":
        (result(0, ebc=0), POLICY, False),
    "minReplicas lifts a zero want: serve if capacity allows":
        (result(0, ebc=5), replace(POLICY, min_replicas=1), True),
    "a forecast floor lifts a zero want": (result(0, ebc=5, floor=2), POLICY, True),
    "no decision (no data): keep the side": (result(valid=False), POLICY, None),
}


@pytest.mark.parametrize("tick, policy, expected", SWITCH.values(), ids=SWITCH.keys())
def test_knatives_serve_proxy_rule(tick, policy, expected):
    assert wants_serving(policy, tick) == expected


# ----------------------------------------------------------------------------------------
# pokes


class Steady:
    """A source whose load is the same every second (0: no demand)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def read(self, query, start, end, *, deadline):
        return Reading(samples=tuple((float(s), self.value)
                                     for s in range(int(start), int(end) + 1)))

    def history(self, query, start, end, step=1.0, *, deadline=None):
        return self.read(query, start, end, deadline=deadline)


class Workload:
    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.writes: list[tuple[float, int]] = []
        self.version = 1
        self.clock = None

    def read(self, target, *, deadline=None):
        return ScaleStatus(self.replicas, self.replicas, str(self.version))

    def scale(self, target, replicas, *, resource_version, reason, message, deadline=None):
        self.replicas = replicas
        self.version += 1
        self.writes.append((self.clock.now(), replicas))
        return True


def daemon_at_zero(clock, *, leader=None, policy=POLICY):
    workload = Workload(0)
    workload.clock = clock
    metrics = Metrics(CollectorRegistry())
    daemon = Daemon([policy], source=Steady(0.0), actuator=workload, clock=clock,
                    metrics=metrics, is_leader=leader)
    daemon.pokes = PokeInbox(daemon.wake, known=lambda n: n in daemon.targets, now=clock.now)
    return daemon, workload, metrics


def test_a_poke_counts_no_more_than_one_activator_can_hold():
    """A forged poke claiming a million requests records at most maxPendingRequests."""
    clock = ManualClock(BASE)
    small = replace(POLICY, activator=replace(ACTIVATOR, max_pending_requests=20),
                    target=1.0, target_utilization_percentage=100.0)
    daemon, workload, _ = daemon_at_zero(clock, policy=small)
    settle(daemon, clock)
    clock.advance(0.3)
    poke(daemon.pokes, in_flight=1_000_000)
    daemon.run_once()
    (when, replicas), = workload.writes
    # 20 held at most (1 per replica), averaged into the windows: far from a million.
    assert when == clock.now() and 1 <= replicas <= 20


def poke(inbox: PokeInbox, policy="app", in_flight=1) -> tuple[int, str]:
    body = {"activator": "a1", "policy": policy, "namespace": "default", "pending": in_flight,
            "in_flight": in_flight, "sent_at": 0}
    return inbox.handle(json.dumps(body).encode())


def settle(daemon, clock, seconds=10):
    for _ in range(seconds):
        daemon.run_once()
        clock.advance(1.0)


def test_a_poke_at_zero_decides_at_once_not_at_the_next_tick():
    clock = ManualClock(BASE)
    daemon, workload, metrics = daemon_at_zero(clock)
    settle(daemon, clock)
    assert workload.writes == []                           # idle at zero
    clock.advance(0.3)                                     # between two ticks
    assert poke(daemon.pokes) == (202, "queued") and daemon.wake.is_set()
    daemon.run_once()
    assert workload.writes == [(clock.now(), 1)]           # same instant: no tick waited
    assert metrics.registry.get_sample_value("scaler_pokes_total", {"policy": "app"}) == 1


def test_a_poke_while_replicas_exist_only_counts():
    clock = ManualClock(BASE)
    daemon, workload, metrics = daemon_at_zero(clock)
    daemon.source = Steady(50.0)
    workload.replicas = 1
    settle(daemon, clock)
    writes = list(workload.writes)
    clock.advance(0.3)
    poke(daemon.pokes)
    daemon.run_once()
    assert workload.writes == writes
    assert metrics.registry.get_sample_value("scaler_pokes_total", {"policy": "app"}) == 1


def test_a_standby_keeps_the_poke_so_a_new_leader_scales_up():
    clock = ManualClock(BASE)
    leading = threading.Event()
    daemon, workload, _ = daemon_at_zero(clock, leader=leading.is_set)
    settle(daemon, clock)
    clock.advance(0.3)
    poke(daemon.pokes)
    daemon.run_once()
    assert workload.writes == []                           # a standby never writes
    leading.set()                                          # the leader died; this one leads
    settle(daemon, clock, 2)
    assert [replicas for _t, replicas in workload.writes] == [1]


def test_bad_pokes_are_refused_with_a_reason():
    clock = ManualClock(BASE)
    daemon, _, _ = daemon_at_zero(clock)
    assert poke(daemon.pokes, policy="nope") == (
        404, "no policy named 'nope' with an activator block here")
    assert daemon.pokes.handle(b"{") == (400, "bad poke: body is not JSON")
    status, text = daemon.pokes.handle(json.dumps({"policy": "app", "in_flight": -1}).encode())
    assert status == 400 and "in_flight" in text
    assert daemon.pokes.take() == []


def test_a_poke_over_http_wakes_a_sleeping_loop_within_milliseconds():
    """The real loop on the system clock, with a one-minute tick: the write follows the
    POST long before any tick would have come."""
    clock = SystemClock()
    policy = replace(POLICY, tick_interval=60.0)
    daemon, workload, _ = daemon_at_zero(clock, policy=policy)
    server = HealthServer(0, healthy=daemon.healthy, ready=daemon.ready, host="127.0.0.1",
                          posts={"/v1/poke": daemon.pokes.handle}).start()
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        time.sleep(0.3)                                    # the first tick is done: asleep
        body = json.dumps({"policy": "app", "in_flight": 1, "pending": 1}).encode()
        sent = time.time()
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/poke", body,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
        deadline = time.monotonic() + 5
        while not workload.writes and time.monotonic() < deadline:
            time.sleep(0.002)
        assert workload.writes and workload.writes[0][1] == 1
        assert workload.writes[0][0] - sent < 0.2
    finally:
        daemon.request_stop()
        runner.join(5)
        server.stop()


def test_activator_policies_read_the_activator_source():
    clock = ManualClock(BASE)
    policy = replace(POLICY, metric=MetricSpec(source="activator"),
                     activator=replace(ACTIVATOR, mode="always"))
    workload = Workload(0)
    workload.clock = clock
    asked: list[str] = []

    class Activators(Steady):
        query_for = staticmethod(lambda name, kind: f"{kind}:{name}")

        def read(self, query, start, end, *, deadline):
            asked.append(query)
            return super().read(query, start, end, deadline=deadline)

        history = read

    daemon = Daemon([policy], source=Steady(999.0), actuator=workload, clock=clock,
                    metrics=Metrics(CollectorRegistry()), activator_source=Activators(30.0))
    settle(daemon, clock, 4)
    assert set(asked) == {"concurrency:app"}
    assert workload.replicas == 1                  # 30 in flight, not Prometheus' 999
    daemon.activator_source = None
    reading = daemon._metric_of(policy)[0].read("x", 0, 1, deadline=0)
    assert reading.error == "empty" and "--activator-url" in reading.detail


# ----------------------------------------------------------------------------------------
# the public EndpointSlice, against the fake API server


@pytest.fixture
def api(tmp_path):
    with FakeKubeAPIServer() as server:
        public = service("app-public", port=80)
        public["spec"].pop("selector")
        server.create(public)
        server.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "app-public", "namespace": "default",
                                    "labels": {"kubernetes.io/service-name": "app-public"}},
                       "addressType": "IPv4", "endpoints": [],
                       "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})
        client = KubeClient.from_config(str(write_kubeconfig(tmp_path / "kc", server.url)))
        yield server, client


def public(server) -> tuple[str | None, set[str], int]:
    obj = server.get("EndpointSlice", "app-public")
    return ((obj["metadata"].get("annotations") or {}).get(SIDE_ANNOTATION),
            {e["addresses"][0] for e in obj.get("endpoints") or []}, obj["ports"][0]["port"])


ACTIVATORS = [("10.1.0.1", 8012), ("10.1.0.2", 8012), ("fd00::1", 8012)]


def test_serve_points_at_the_ready_pods_and_proxy_at_the_activators(api):
    server, client = api
    switch = TrafficSwitch(client)
    server.create(endpoint_slice("app", {"10.0.0.1": True, "10.0.0.2": False}, port=8080,
                                 name="app-a"))
    assert switch.point(POLICY, True, ACTIVATORS, deadline=time.monotonic() + 5) == "serve"
    assert public(server) == ("serve", {"10.0.0.1"}, 8080)
    obj = server.get("EndpointSlice", "app-public")
    assert obj["ports"][0]["name"] == "http"              # the public Service's port name
    assert obj["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "scaler"
    # An IPv4 slice takes only the IPv4 activators.
    assert switch.point(POLICY, False, ACTIVATORS, deadline=time.monotonic() + 5) == "proxy"
    assert public(server) == ("proxy", {"10.1.0.1", "10.1.0.2"}, 8012)


def test_nothing_is_written_when_nothing_changed(api):
    server, client = api
    switch = TrafficSwitch(client)
    switch.point(POLICY, False, ACTIVATORS, deadline=time.monotonic() + 5)
    writes = len(server.writes(kind="EndpointSlice"))
    for _ in range(3):
        switch.point(POLICY, False, ACTIVATORS, deadline=time.monotonic() + 5)
    assert len(server.writes(kind="EndpointSlice")) == writes


def test_serving_without_a_ready_pod_proxies_and_no_decision_keeps_the_side(api):
    server, client = api
    switch = TrafficSwitch(client)
    server.create(endpoint_slice("app", {"10.0.0.1": False}, port=8080, name="app-a"))
    assert switch.point(POLICY, True, ACTIVATORS, deadline=time.monotonic() + 5) == "proxy"
    server.patch("EndpointSlice", "app-a", {"endpoints": [
        {"addresses": ["10.0.0.1"], "conditions": {"ready": True}}]})
    assert switch.point(POLICY, True, ACTIVATORS, deadline=time.monotonic() + 5) == "serve"
    server.create(endpoint_slice("app", ["10.0.0.3"], port=8080, name="app-b"))
    # No decision: the side stays, its endpoints follow the pods.
    assert switch.point(POLICY, None, ACTIVATORS, deadline=time.monotonic() + 5) == "serve"
    assert public(server)[1] == {"10.0.0.1", "10.0.0.3"}


def test_pods_on_several_ports_cannot_be_one_slice_so_proxy(api):
    server, client = api
    server.create(endpoint_slice("app", ["10.0.0.1"], port=8080, name="app-a"))
    server.create(endpoint_slice("app", ["10.0.0.2"], port=9090, name="app-b"))
    switch = TrafficSwitch(client)
    assert switch.point(POLICY, True, ACTIVATORS, deadline=time.monotonic() + 5) == "proxy"


def test_no_activator_known_keeps_the_slice_as_it_is(api):
    server, client = api
    switch = TrafficSwitch(client)
    before = server.get("EndpointSlice", "app-public")["metadata"]["resourceVersion"]
    assert switch.point(POLICY, False, [], deadline=time.monotonic() + 5) is None
    assert server.get("EndpointSlice", "app-public")["metadata"]["resourceVersion"] == before


def test_a_dry_run_only_logs(api):
    server, client = api
    switch = TrafficSwitch(client, dry_run=True)
    assert switch.point(POLICY, False, ACTIVATORS, deadline=time.monotonic() + 5) is None
    assert server.requests_to("PUT", "endpointslices") == []
    assert public(server) == (None, set(), 80)


def test_a_missing_public_slice_says_what_to_create(api):
    server, client = api
    policy = replace(POLICY, activator=replace(ACTIVATOR, public_service="elsewhere"))
    with pytest.raises(Exception, match="deploy/components/activator") as err:
        TrafficSwitch(client).point(policy, False, ACTIVATORS, deadline=time.monotonic() + 5)
    assert err.value.reason == "not_found"


def test_an_activator_policy_ticks_once_its_second_is_read_not_half_a_second_later():
    clock = ManualClock(BASE + 0.7)
    counted = replace(POLICY, name="counted", metric=MetricSpec(source="activator"),
                      activator=replace(ACTIVATOR, mode="always", hosts=("c.test",)),
                      tick_interval=1.0, scale_target_ref=replace(REF, name="counted"))
    scraped = replace(POLICY, tick_interval=1.0)

    class Activators(Steady):
        query_for = staticmethod(lambda name, kind: f"{kind}:{name}")

    workload = Workload(1)
    workload.clock = clock
    daemon = Daemon([counted, scraped], source=Steady(1.0), actuator=workload, clock=clock,
                    metrics=Metrics(CollectorRegistry()), activator_source=Activators(1.0))
    ticked: list[tuple[str, float, float]] = []
    original = daemon.tick

    def tick(target, t, **kw):
        ticked.append((target.name, t, clock.now()))
        return original(target, t, **kw)

    daemon.tick = tick
    daemon.run_once()                       # both decide at start (the latest due tick)
    ticked.clear()
    clock.set(BASE + 1.15)
    daemon.run_once()
    assert ticked == [("counted", BASE + 1, BASE + 1.15)]
    clock.set(BASE + 1.55)
    daemon.run_once()
    assert ticked[1:] == [("app", BASE + 1, BASE + 1.55)]


# ----------------------------------------------------------------------------------------
# how the daemon is told about activators


def test_activators_are_discovered_behind_their_service(api):
    from scaler import app

    server, client = api
    server.create(endpoint_slice("scaler-activator", {"10.2.0.1": True, "10.2.0.2": False},
                                 port=9090, port_name="admin", name="act-a"))
    stop = threading.Event()
    source = app.activator_source([], "scaler-activator", "default", client, SystemClock(),
                                  stop)
    assert source.discover() == ["http://10.2.0.1:9090"]          # ready ones only
    numbered = app.activator_source(["http://127.0.0.1:1"], "scaler-activator:9999",
                                    "default", client, SystemClock(), stop)
    assert numbered.discover() == ["http://10.2.0.1:9999"]
    assert numbered.urls() == ["http://127.0.0.1:1"]            # until the reader discovers


def run_cli(tmp_path, capsys, policy_text: str, *extra: str) -> tuple[int, str]:
    from scaler import cli

    (tmp_path / "p.yaml").write_text(policy_text)
    kubeconfig = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9")
    code = cli.main(["run", "--policy", str(tmp_path / "p.yaml"), "--kubeconfig",
                     str(kubeconfig), *extra])
    return code, capsys.readouterr().err.strip()


COUNTED = """apiVersion: scaler/v1
kind: ScalingPolicy
metadata: {name: api}
spec:
  scaleTargetRef: {name: api}
  metric: {source: activator}
  activator: {port: http, hosts: [api.test], mode: always}
"""


def test_run_without_an_activator_for_a_policy_that_reads_one_is_bad_input(tmp_path, capsys,
                                                                          monkeypatch):
    from scaler import app

    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    # Logging set up on pytest's captured stdout would outlive this test.
    monkeypatch.setattr(app, "configure_logging", lambda *a, **k: None)
    assert run_cli(tmp_path, capsys, COUNTED) == (
        2, "error: api: metric.source activator needs --activator-url or --activator-service")
    assert run_cli(tmp_path, capsys, COUNTED, "--activator-url", "127.0.0.1:9090") == (
        2, "error: --activator-url '127.0.0.1:9090' is not http://HOST:PORT (the activator's "
           "admin port)")
    promql = COUNTED.replace("metric: {source: activator}", "metric: {query: sum(x)}")
    assert run_cli(tmp_path, capsys, promql) == (
        2, "error: --prometheus-url (or PROMETHEUS_URL) is required")
