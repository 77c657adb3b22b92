"""Scale from zero end to end, with real parts on 127.0.0.1: ``scaler run`` and
``scaler activator`` as processes, real backends whose endpoints the fake API publishes one
second after their replicas exist (support.pods), and ``hey``.

One setup serves the module, in order: a cold start under 1,000 concurrent requests, a
PromQL policy (the real Prometheus) brought up from zero by the poke alone, the warm path
(no hop through the activator), overflow and timeout answers, an activator replica killed
mid-load, and last the daemon killed. Latency figures are benchmarks
(benchmarks/activator_e2e.py); these check what must hold.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from support.cluster import Cluster, policy
from support.load import Ingress, hey, parse_rows

STARTUP = 1.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, prometheus, load_exporter):
    load_exporter.set("app_inflight_requests", 0.0)
    prometheus.wait_for_sample("app_inflight_requests")
    policies = {
        # Counted by the activator (so always in the path), scaled from zero. A long grace
        # keeps it warm for the later tests.
        "app": policy("app", target=10, maxReplicas=4, scaleToZeroGracePeriod="5m",
                      stableWindow="10s", activator={"timeout": "30s", "mode": "always",
                                                     "maxPendingRequests": 2000}),
        # Its load from PromQL (the ingress's count in a cluster; here a gauge the test
        # sets), out of the path when warm: pods served directly as soon as one is ready
        # (targetBurstCapacity 0: Knative's "activator only at zero").
        "web": policy("web", source="prometheus", query="sum(app_inflight_requests)",
                      maxReplicas=2, targetBurstCapacity=0, stableWindow="10s",
                      scaleToZeroGracePeriod="5m", activator={"timeout": "20s"}),
        # Never gets a ready pod (not simulated): small limits show the activator's answers.
        "tiny": policy("tiny", maxReplicas=1,
                       activator={"timeout": "1s", "maxPendingRequests": 3, "mode": "always"}),
    }
    with Cluster(tmp_path_factory.mktemp("e2e"), policies, simulate={"app": "app", "web": "web"},
                 startup=STARTUP, prometheus_url=prometheus.url) as c:
        c.wait_for(lambda: c.public("web")[0] == "proxy", 10, "the public slice at the "
                                                                "activator")
        yield c


def test_1000_concurrent_requests_at_zero_all_succeed(cluster):
    assert cluster.replicas("app") == 0
    began = time.time()
    load = hey(f"http://127.0.0.1:{cluster.activator.port}/id", n=1000, c=1000, host="app.test",
               background=True)
    out, err = load.communicate(timeout=90)
    rows = parse_rows(out)
    assert len(rows) == 1000, err[-500:]                    # no request lost or failed
    assert {r["status"] for r in rows} == {200}
    # The first scale write followed the first request's arrival at once (a poke, not a
    # metric read), and the first answer waited for the pod's start-up, no less.
    patches = cluster.scale_patches("app")
    first_patch = patches[0].received
    first = min(rows, key=lambda r: r["offset"])
    assert 0 < first_patch - began < 1.0
    assert STARTUP <= first["seconds"] < STARTUP + 5
    held = cluster.activator_metric("scaler_activator_requests_total", policy="app",
                                    outcome="held")
    proxied = cluster.activator_metric("scaler_activator_requests_total", policy="app",
                                       outcome="proxied")
    assert held + proxied == 1000 and held >= 1
    assert cluster.activator_metric("scaler_activator_cold_start_seconds_count",
                                    policy="app") == held
    poked = [line for line in cluster.daemon.lines if line.get("event") == "poked"]
    assert poked and poked[0]["policy"] == "app"
    # 1,000 in flight against 7 per replica: panic mode took it to its maximum.
    cluster.wait_for(lambda: cluster.replicas("app") == 4, 10, "scaled to maxReplicas")


def test_a_promql_policy_at_zero_scales_up_on_the_poke_before_prometheus_sees_anything(
        cluster, prometheus, load_exporter):
    """The real Prometheus still says 0 for the policy's query: the held request's poke
    alone starts the scale-up, and the request is answered once the pod is ready."""
    assert cluster.replicas("web") == 0
    began = time.monotonic()
    status, _headers, body = cluster.get("web.test", "/id")
    waited = time.monotonic() - began
    assert (status, body) == (200, b"web-1")
    assert STARTUP <= waited < STARTUP + 5
    assert "web" in {line["policy"] for line in cluster.daemon.lines
                     if line.get("event") == "poked"}
    assert prometheus.query("sum(app_inflight_requests)")[0]["value"][1] == "0"
    scaled = [t for t in cluster.daemon.ticks("web") if t["action"] == "scaled"]
    assert (scaled[0]["current"], scaled[0]["replicas"]) == (0, 1)
    load_exporter.set("app_inflight_requests", 3.0)     # the ingress now counts it too


def test_warm_traffic_goes_to_the_pods_without_the_activator(cluster):
    """mode whenNeeded, warm: the public Service lists the pods themselves: a request
    to it meets the workload directly (0 added hops: no X-Forwarded-For from a proxy,
    the activator counts nothing)."""
    side, endpoints = cluster.wait_for(
        lambda: (s := cluster.public("web"))[0] == "serve" and s, 10, "the switch to the pods")
    ports = {b.port for b in cluster.pods.backends("web")}
    assert endpoints and {port for _host, port in endpoints} <= ports
    before = cluster.stats()["routes"]["web"]["requests"]
    _host, port = endpoints[0]
    status, _headers, body = cluster.get("web.test", "/echo", port=port)
    seen = json.loads(body)
    assert status == 200 and seen["backend"].startswith("web-")
    assert "x-forwarded-for" not in {k.lower() for k, _v in seen["headers"]}
    assert cluster.stats()["routes"]["web"]["requests"] == before
    # Through the activator (what the public Service lists at zero) the same request is
    # proxied, with the forwarding headers a proxy adds.
    status, _headers, body = cluster.get("web.test", "/echo")
    assert status == 200 and "X-Forwarded-For" in {k for k, _v in json.loads(body)["headers"]}
    assert cluster.stats()["routes"]["web"]["requests"] == before + 1


def test_overflow_and_timeout_answer_503_and_504_with_retry_after(cluster):
    answers: list = []
    lock = threading.Lock()

    def one():
        result = cluster.get("tiny.test", "/id", timeout=10)
        with lock:
            answers.append(result)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    statuses = sorted(status for status, _h, _b in answers)
    assert statuses == [503, 503, 503, 504, 504, 504]
    assert all(headers["Retry-After"] == "1" for _s, headers, _b in answers)
    assert any(b"maxPendingRequests" in body for s, _h, body in answers if s == 503)
    assert any(b"within its timeout (1s)" in body for s, _h, body in answers if s == 504)
    for outcome, count in (("rejected", 3), ("timed_out", 3)):
        assert cluster.activator_metric("scaler_activator_requests_total", policy="tiny",
                                        outcome=outcome) == count


def test_an_activator_killed_mid_load_fails_only_the_requests_it_held(cluster):
    """Two activators behind an ingress; one is killed (SIGKILL) while requests are in
    flight through both. Only requests that were on it fail; the other serves on."""
    second = cluster.start_activator()
    upstreams = [("127.0.0.1", cluster.activator.port), ("127.0.0.1", second.port)]
    with Ingress(upstreams, workers=8, path="/id?delay=0.1", host="app.test") as ingress:
        cluster.wait_for(lambda: sum(ingress.ok.values()) > 40, 10, "load through both")
        in_flight = cluster.stats(second)["routes"]["app"]["in_flight"]
        second.process.send_signal(signal.SIGKILL)
        cluster.wait_for(lambda: ingress.dropped, 5, "the dead one dropped")
        served = sum(ingress.ok.values())
        cluster.wait_for(lambda: sum(ingress.ok.values()) > served + 40, 10, "load goes on")
    assert set(ingress.failed) == {upstreams[1]}                 # none on the survivor
    assert 1 <= ingress.failed[upstreams[1]] <= max(in_flight, 1) + 2
    assert set(ingress.statuses) == {200}
    assert ingress.ok[upstreams[0]] > 0
    cluster.activators.remove(second)


def test_with_the_daemon_down_warm_targets_are_served_and_zero_says_why(cluster):
    cluster.daemon.kill()
    status, _headers, body = cluster.get("app.test", "/id")
    assert status == 200 and body.startswith(b"app-")            # warm: served as before
    began = time.monotonic()
    status, headers, body = cluster.get("tiny.test", "/id")
    assert status == 504 and headers["Retry-After"] == "1"
    assert time.monotonic() - began >= 1.0                       # held for its timeout
    assert b"no daemon answered its last poke" in body and b"refused" in body.lower()

