"""`scaler run` end to end: the real Prometheus (Debian package) scraping a test exporter
every second, the project's fake Kubernetes API, and the daemon as its own process.

Policies use short windows (stable 6 s, tick 1 s, grace 2 s) so each scenario takes
seconds; the rules are the same ones the default 60 s windows follow.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from support.daemon import DaemonProcess, write_kubeconfig, write_policy
from support.fakekube import FakeKubeAPIServer, deployment

pytestmark = pytest.mark.slow

FAST = dict(target=10, targetUtilizationPercentage=100, stableWindow="6s",
            tickInterval="1s", scaleToZeroGracePeriod="2s")


@pytest.fixture
def kube(tmp_path):
    with FakeKubeAPIServer() as server:
        yield server, write_kubeconfig(tmp_path / "kubeconfig", server.url)


def replicas(server, name):
    return server.get("Deployment", name)["spec"]["replicas"]


def setup(tmp_path, kube, load_exporter, name, *, initial=1, schedule=None, **spec):
    server, kubeconfig = kube
    server.create(deployment(name, replicas=initial))
    if schedule is None:
        load_exporter.set(f"{name}_load", 0.0)
    else:
        load_exporter.play(f"{name}_load", schedule)
    policies = tmp_path / "policies"
    write_policy(policies, name, f"sum({name}_load)", **{**FAST, **spec})
    return server, kubeconfig, policies


@contextmanager
def at_three_replicas(tmp_path, kube, load_exporter, prometheus, name):
    """The daemon scaling ``name`` on 25 in flight at 10 per replica: up to 3 replicas."""
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, name)
    load_exporter.set(f"{name}_load", 25.0)
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        daemon.wait_for(lambda: replicas(server, name) == 3, 20, "3 replicas")
        yield server, policies, daemon


def test_load_up_down_to_zero_and_back(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "web")
    load_exporter.set("web_load", 35.0)
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        # Load rises: 35 in flight at 10 per replica → 4 replicas within a few ticks.
        daemon.wait_for(lambda: replicas(server, "web") == 4, 20, "4 replicas")
        load_exporter.set("web_load", 0.0)
        # Load drops to zero: 0 after the 6 s stable window and the 2 s grace.
        dropped = time.monotonic()
        daemon.wait_for(lambda: replicas(server, "web") == 0, 30, "scale to zero")
        assert time.monotonic() - dropped >= 6
        tick = daemon.wait_for_tick(lambda t: t["replicas"] == 0 and t["action"] == "none")
        assert tick["stable"] == 0
        # Demand returns: scaled from zero.
        load_exporter.set("web_load", 12.0)
        daemon.wait_for(lambda: replicas(server, "web") == 2, 20, "scale from zero")
        events = [e for e in server.list("Event") if e["involvedObject"]["name"] == "web"]
        assert {"ScaledUp", "ScaledToZero"} <= {e["reason"] for e in events}
        # The write lands on the API server before the daemon ends its tick (the Event, then
        # the counter): wait up to 5 s for the counter rather than race it.
        daemon.wait_for(lambda: (daemon.metric("scaler_scale_actions_total", policy="web",
                                               direction="up") or 0) >= 2,
                        5, "both scale-ups counted")
        code, seconds = daemon.terminate()
    assert code == 0 and seconds < 5


def test_prometheus_down_holds_replicas_and_recovers(tmp_path, kube, load_exporter,
                                                     prometheus):
    with at_three_replicas(tmp_path, kube, load_exporter, prometheus, "api") as (
            server, _, daemon):
        prometheus.kill()
        try:
            daemon.wait_for(lambda: daemon.metric("scaler_metric_errors_total", policy="api",
                                                  reason="unreachable"), 20, "errors counted")
            time.sleep(8)   # longer than stable window + grace: nothing may change
            assert replicas(server, "api") == 3
            assert daemon.http(daemon.health_port, "/healthz")[0] == 200
        finally:
            prometheus.restart()
        load_exporter.set("api_load", 45.0)
        daemon.wait_for(lambda: replicas(server, "api") == 5, 30, "recovery")
        assert daemon.events("metric recovered")


def test_empty_query_never_scales_to_zero(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "jobs", initial=3)
    write_policy(policies, "jobs", "sum(jobs_load_that_does_not_exist)", **FAST)
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        daemon.wait_for(lambda: len(daemon.ticks("jobs")) >= 12, 30, "12 ticks")
        assert replicas(server, "jobs") == 3
        assert {t["action"] for t in daemon.ticks("jobs")} == {"hold"}
        assert daemon.metric("scaler_metric_errors_total", policy="jobs", reason="empty") >= 10
        assert daemon.http(daemon.health_port, "/readyz")[0] == 503


@pytest.mark.parametrize("status,times", [
    pytest.param(409, 1, id="conflict"),
    pytest.param(429, 2, id="throttled"),
    pytest.param(500, 2, id="server-error"),
])
def test_api_faults_are_retried_without_lost_or_stale_updates(tmp_path, kube, load_exporter,
                                                              prometheus, status, times):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "cart")
    server.inject("PATCH", r"/deployments/cart/scale", status=status, times=times)
    load_exporter.set("cart_load", 55.0)
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        daemon.wait_for(lambda: replicas(server, "cart") == 6, 30, "6 replicas")
        if status == 409:
            assert daemon.metric("scaler_patch_conflicts_total", policy="cart") >= 1


def test_slow_api_does_not_stall_the_loop(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "slow")
    server.inject("GET", r"/deployments/slow", delay=0.8, times=3)
    load_exporter.set("slow_load", 15.0)
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        daemon.wait_for(lambda: replicas(server, "slow") == 2, 30, "2 replicas")
        assert daemon.http(daemon.health_port, "/healthz")[0] == 200


def test_someone_else_scaling_is_not_overwritten_blindly(tmp_path, kube, load_exporter,
                                                         prometheus):
    with at_three_replicas(tmp_path, kube, load_exporter, prometheus, "shop") as (
            server, _, daemon):
        writes = len(server.requests_to("PATCH", r"/deployments/shop/scale"))
        assert writes >= 1
        assert all("resourceVersion" in (r.body or {}).get("metadata", {})
                   for r in server.requests_to("PATCH", r"/deployments/shop/scale"))


def test_bad_policy_reload_keeps_the_old_policy(tmp_path, kube, load_exporter, prometheus):
    with at_three_replicas(tmp_path, kube, load_exporter, prometheus, "blog") as (
            server, policies, daemon):
        (policies / "blog.yaml").write_text("apiVersion: scaler/v1\nkind: ScalingPolicy\n"
                                            "spec: {stableWindow: forever}\n")
        daemon.wait_for(lambda: daemon.metric("scaler_policy_reload_success") == 0, 15,
                        "reload failure")
        load_exporter.set("blog_load", 45.0)
        daemon.wait_for(lambda: replicas(server, "blog") == 5, 20, "old policy still works")
        write_policy(policies, "blog", "sum(blog_load)", **{**FAST, "target": 5})
        daemon.wait_for(lambda: replicas(server, "blog") == 9, 20, "new policy applied")
        assert daemon.metric("scaler_policy_reload_success") == 1


def test_paused_target_is_left_alone(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "admin")
    server.patch("Deployment", "admin", {"metadata": {"annotations": {"scaler/paused": "true"}}})
    load_exporter.set("admin_load", 45.0)
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        daemon.wait_for_tick(lambda t: t["action"] == "paused", policy="admin")
        assert replicas(server, "admin") == 1
        assert daemon.metric("scaler_paused", policy="admin") == 1


def test_two_daemons_one_writer_and_failover(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "ha")
    load_exporter.set("ha_load", 25.0)
    election = ["--leader-elect", "--lease-namespace", "default"]
    first = DaemonProcess(policies, prometheus.url, kubeconfig, extra=election,
                          env={"POD_NAME": "scaler-a"}).start()
    second = DaemonProcess(policies, prometheus.url, kubeconfig, extra=election,
                           env={"POD_NAME": "scaler-b"}).start()
    try:
        first.wait_for(lambda: replicas(server, "ha") == 3, 30, "3 replicas")
        leaders = lambda: [d for d in (first, second) if d.metric("scaler_leader") == 1]
        first.wait_for(lambda: len(leaders()) == 1, 10, "one leader")
        leader, standby = (first, second) if leaders()[0] is first else (second, first)
        standby.wait_for_tick(lambda t: t["action"] in ("none", "standby"), policy="ha")
        assert all(t["action"] != "scaled" for t in standby.ticks("ha"))
        leader.kill()   # dies without releasing the lease
        load_exporter.set("ha_load", 45.0)
        standby.wait_for(lambda: replicas(server, "ha") == 5, 40, "failover")
        assert standby.metric("scaler_leader") == 1
    finally:
        for d in (first, second):
            d.kill()


def test_restart_refills_windows_before_deciding(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "orders",
                                         stableWindow="30s")
    load_exporter.set("orders_load", 45.0)
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        daemon.wait_for(lambda: replicas(server, "orders") == 5, 30, "5 replicas")
        time.sleep(2)
        daemon.kill()
    writes = len(server.requests_to("PATCH", r"/deployments/orders/scale"))
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        first = daemon.wait_for_tick(lambda t: True, policy="orders")
        # The first decision already sees a full window of history, not one sample.
        assert first["stable"] == pytest.approx(45.0, abs=1.0)
        daemon.wait_for(lambda: len(daemon.ticks("orders")) >= 5, 20, "5 ticks")
    assert len(server.requests_to("PATCH", r"/deployments/orders/scale")) == writes
    assert replicas(server, "orders") == 5


def test_dry_run_writes_nothing(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "dry")
    load_exporter.set("dry_load", 45.0)
    with DaemonProcess(policies, prometheus.url, kubeconfig, extra=["--dry-run"]) as daemon:
        daemon.wait_for_tick(lambda t: t["action"] == "would_scale", policy="dry")
    assert replicas(server, "dry") == 1
    assert not server.requests_to("PATCH", r"/deployments/dry/scale")


def test_replay_of_the_recorded_load_predicts_the_live_decisions(tmp_path, kube,
                                                                 load_exporter, prometheus):
    """A load played into the exporter drives the live daemon; `scaler record` then saves
    the same query from Prometheus and `scaler replay` runs it: same decisions per tick."""
    import csv
    import math

    from scaler import cli

    spec = dict(target=10, targetUtilizationPercentage=100, stableWindow="10s",
                tickInterval="2s", scaleToZeroGracePeriod="4s")

    def schedule(t: float) -> float:   # baseline, a burst, a middle level, then nothing
        return 5.0 if t < 14 else 60.0 if t < 26 else 25.0 if t < 36 else 0.0

    played_from = time.time()
    server, kubeconfig, policies = setup(tmp_path, kube, load_exporter, "echo",
                                         schedule=schedule, **spec)
    time.sleep(3)   # some history before the daemon starts, as in production
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        # Zero load from 36 s: 10 s stable window, halving per tick, 4 s grace → 0 by ~54 s;
        # watch to 70 s so a slow machine still sees it.
        daemon.wait_for(lambda: time.time() - played_from > 70, 85, "the played load")
        live = {int(t["t"]): t["replicas"] for t in daemon.ticks("echo")}
    assert {0, 6} <= set(live.values()), live     # it panicked up and scaled to zero

    recording = tmp_path / "echo.csv"
    assert cli.main(["record", str(recording), "--prometheus-url", prometheus.url,
                     "--query", "sum(echo_load)", "--start", str(math.floor(played_from)),
                     "--end", str(max(live))]) == 0
    out = tmp_path / "replay"
    assert cli.main(["replay", str(recording), "--policy", str(policies / "echo.yaml"),
                     "--out", str(out), "--no-chart"]) == 0
    with open(out / "decisions.csv") as f:
        predicted = {int(r["timestamp"]): int(r["desired_replicas"]) for r in csv.DictReader(f)}
    common = sorted(set(live) & set(predicted))
    assert len(common) >= 20
    assert [live[t] for t in common] == [predicted[t] for t in common]
