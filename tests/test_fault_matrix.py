"""The fault matrix: `scaler run` as its own process against the real Prometheus (through a
fault-injecting proxy where the fault is in an answer) and the fake Kubernetes API, with
one fault after another. Each row names the fault, what was expected and what was seen,
and counts what must never happen: wrong scale-downs (a write below what the load
needed), stale writes (a write without the resourceVersion it was decided on) and
overlapping writers (a write by a replica that did not hold the Lease). All 0.

The table is printed at the end of the run (tests/conftest.py) and each test asserts its
rows. Faults that concern one target share one daemon; faults of a whole server (a
Retry-After, a refused connection, SIGTERM) get their own. Windows are short (stable 6 s,
tick 1 s) so each scenario takes seconds.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import DaemonProcess, write_kubeconfig, write_policy
from support.fakekube import FakeKubeAPIServer, deployment
from support.faultmatrix import (
    ROWS,
    Row,
    overlapping_writers,
    scale_writes,
    stale_writes,
    wrong_scale_downs,
)
from support.faultproxy import PrometheusProxy, every_value, point_ahead
from support.fakeprometheus import FakePrometheus, Reply
from support.prometheus import eventually, free_port

pytestmark = pytest.mark.slow

FAST = dict(target=10, targetUtilizationPercentage=100, stableWindow="6s",
            tickInterval="1s", scaleToZeroGracePeriod="2s")
LOAD = 25.0    # at 10 per replica: 3 replicas, the right count in every scenario
RIGHT = 3


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeAPIServer, Path]]:
    with FakeKubeAPIServer() as server:
        yield server, write_kubeconfig(tmp_path / "kubeconfig", server.url)


def with_history(load_exporter, prometheus, names: list[str]) -> None:
    """Each target's load, steady for longer than a stable window before the daemon
    starts, so its first decisions see full windows."""
    for name in names:
        load_exporter.set(f"{name}_load", LOAD)
    for name in names:
        prometheus.wait_for_sample(f"count_over_time({name}_load[8s]) >= 7", timeout=20)


def replicas(server: FakeKubeAPIServer, name: str) -> int:
    return server.get("Deployment", name)["spec"]["replicas"]


def counts(server: FakeKubeAPIServer, name: str) -> dict[str, int]:
    writes = scale_writes(server, name)
    return dict(wrong_scale_downs=wrong_scale_downs(writes, RIGHT),
                stale_writes=stale_writes(writes),
                overlapping_writers=overlapping_writers(server, writes))


def warning_events(server: FakeKubeAPIServer, name: str, reason: str) -> list[dict]:
    return [e for e in server.list("Event") if e["involvedObject"]["name"] == name
            and e["reason"] == reason]


def no_tracebacks(daemon: DaemonProcess) -> bool:
    return not any("Traceback" in line for line in daemon.raw) and not daemon.events(
        "tick failed; holding replicas")


def server_header(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, resp.getheader("Server", "")


def record(*rows: Row) -> None:
    ROWS.extend(rows)
    for row in rows:
        assert row.ok, row


# --------------------------------------------------------------------------------------
# Faults of one target or one query: one daemon, a policy per fault


def test_faults_of_one_target_or_one_answer(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig = kube
    names = ["control", "locked", "late", "fought", "huge", "deep", "ahead"]
    for name in names:
        server.create(deployment(name, replicas=RIGHT if name in ("huge", "deep", "ahead")
                                 else 2 if name == "fought" else 1))
    with_history(load_exporter, prometheus, names)
    policies = tmp_path / "policies"
    for name in names:
        spec = {**FAST, "tickInterval": "2s"} if name == "late" else FAST
        write_policy(policies, name, f"sum({name}_load)", **spec)
    (policies / "nolease.yaml").write_text(
        "apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata: {name: nolease}\nspec:\n"
        "  scaleTargetRef: {apiVersion: coordination.k8s.io/v1, kind: Lease, name: nolease}\n"
        "  metric: {query: sum(control_load)}\n"
        + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in FAST.items()))

    # The faults.
    # A target forbidden by name: a Role pinned with resourceNames, which cannot grant
    # list/watch, so the daemon's watch cache is refused too and it reads each target.
    locked = server.inject("GET", r"/namespaces/default/deployments(/locked(/scale)?)?$",
                           status=403, times=None)
    server.inject("PATCH", r"/deployments/late/scale$", delay=1.3, times=2)
    # Another autoscaler set the replicas last (managedFields say so), and keeps changing
    # them under every write of ours.
    server.patch("Deployment", "fought", {"spec": {"replicas": 1}},
                 field_manager="keda-operator", subresource="scale")
    storm = server.inject("PATCH", r"/deployments/fought/scale$", status=409, times=None)
    with PrometheusProxy(prometheus.url) as proxy:
        proxy.rule("huge_load", rewrite=every_value("1e303"))
        proxy.rule("deep_load", body=b'{"status":"success","data":{"resultType":"matrix",'
                                     b'"result":' + b"[" * 100_000)
        proxy.rule("ahead_load", rewrite=point_ahead(3600, "1000"))
        with DaemonProcess(policies, proxy.url, kubeconfig) as daemon:
            daemon.wait_for(lambda: replicas(server, "control") == RIGHT, 20, "control")
            time.sleep(6)
            fixed = time.monotonic()
            locked.times = locked.hits          # the Role is fixed,
            storm.times = storm.hits            # the other autoscaler is removed
            reads_while_locked = len(server.requests_to("GET", r"/deployments/locked/scale$"))
            daemon.wait_for(lambda: replicas(server, "locked") == RIGHT, 70, "locked fixed")
            recovered_after = time.monotonic() - fixed
            daemon.wait_for(lambda: replicas(server, "fought") == RIGHT, 20, "storm over")
            daemon.wait_for(lambda: daemon.events("scale_confirmed"), 20, "late confirmed")
            ticks = {n: daemon.ticks(n) for n in ("huge", "deep", "ahead")}
            errors = {n: daemon.metric("scaler_metric_errors_total", policy=n, reason=r)
                      for n, r in (("huge", "too_large"), ("deep", "bad_response"),
                                   ("ahead", "bad_response"))}
            health = server_header(daemon.health_port, "/nope")
        clean = no_tracebacks(daemon)
        read_errors = [e for e in daemon.events("cannot read target")]

    def said(policy: str) -> list[dict]:
        return [e for e in read_errors if e["policy"] == policy]

    locked_warn = warning_events(server, "locked", "FailedGetScale")
    record(Row(
        "target forbidden (403 on its GETs), fixed after 6 s",
        "1 error line, 1 Warning Event, reads backed off, scales once fixed",
        f"{len(said('locked'))} error line, {len(locked_warn)} Warning Event, "
        f"{reads_while_locked} reads in ~8 s; {RIGHT} replicas {recovered_after:.0f} s after "
        "the fix",
        held=len(said("locked")) == 1 and len(locked_warn) == 1 and reads_while_locked <= 5,
        **counts(server, "locked")))

    nolease_warn = [e for e in server.list("Event") if e["involvedObject"]["name"] == "nolease"]
    discovery = len(server.requests_to("GET", r"^/apis/coordination.k8s.io/v1$"))
    ticks_run = len(daemon.ticks("control"))
    record(Row(
        "target kind without a scale subresource (Lease)",
        "1 error line, 1 Warning Event, then backoff",
        f"{len(said('nolease'))} error line ({said('nolease')[0]['reason']}), "
        f"{len(nolease_warn)} Warning Event, {discovery} lookups in {ticks_run} ticks",
        # Backoff doubles: about log2(ticks) attempts, not one per tick.
        held=len(said("nolease")) == 1 and len(nolease_warn) == 1
        and discovery <= 2 + math.log2(max(2, ticks_run))
        and said("nolease")[0]["reason"] == "no_scale_subresource"))

    late_events = warning_events(server, "late", "ScaledUp")
    record(Row(
        "scale PATCH timed out on our side but was applied",
        "the next tick sees it: 1 ScaledUp Event, no second write",
        f"{len(late_events)} ScaledUp Event, confirmed in the log, "
        f"{len(scale_writes(server, 'late'))} write landed, at {replicas(server, 'late')}",
        held=len(late_events) == 1 and replicas(server, "late") == RIGHT,
        **counts(server, "late")))

    [conflicting] = daemon.events("scale writes keep conflicting")
    fought_warn = warning_events(server, "fought", "ScaleConflict")
    record(Row(
        "409 storm, another writer in managedFields",
        "1 warning naming it, 1 ScaleConflict Event, nothing written meanwhile",
        f"1 warning naming {conflicting['other_writer']!r} after "
        f"{conflicting['conflicts']} in a row, {len(fought_warn)} Event, "
        f"{len(scale_writes(server, 'fought'))} write (after the storm)",
        held=conflicting["other_writer"] == "keda-operator" and len(fought_warn) == 1
        and len(scale_writes(server, "fought")) == 1,
        **counts(server, "fought")))

    for name, fault, reason in (
            ("huge", "Prometheus value 1e303", "too_large"),
            ("deep", "Prometheus answer nested 100,000 deep", "bad_response"),
            ("ahead", "a point stamped an hour ahead (value 1000)", "bad_response")):
        reasons = {t["no_data"] for t in ticks[name]}
        record(Row(
            fault, f"no data '{reason}' every tick, held at {RIGHT}, no traceback",
            f"{len(ticks[name])} ticks all '{'/'.join(sorted(map(str, reasons)))}' "
            f"({errors[name]:.0f} counted), at {replicas(server, name)}, "
            f"{'no' if clean else 'a'} traceback",
            held=reasons == {reason} and replicas(server, name) == RIGHT and clean
            and errors[name] >= len(ticks[name]) - 1,
            **counts(server, name)))

    record(Row("a 404 from the health server", "a Server header without the Python version",
               f"{health[0]}, Server: {health[1]}",
               held=health[0] == 404 and "Python" not in health[1]))
    assert replicas(server, "control") == RIGHT and counts(server, "control") == dict(
        wrong_scale_downs=0, stale_writes=0, overlapping_writers=0)


# --------------------------------------------------------------------------------------
# Retry-After: the API server's, Prometheus's


def test_api_server_429_with_retry_after(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig = kube
    server.create(deployment("busy", replicas=1))
    with_history(load_exporter, prometheus, ["busy"])
    write_policy(tmp_path / "policies", "busy", "sum(busy_load)", **FAST)
    throttle = server.inject("PATCH", r"/deployments/busy/scale$", status=429, retry_after=5,
                             times=None)
    with DaemonProcess(tmp_path / "policies", prometheus.url, kubeconfig) as daemon:
        daemon.wait_for(lambda: server.requests_to("PATCH", r"/busy/scale$"), 20, "a PATCH")
        began = time.monotonic()
        time.sleep(12)
        patches = [r for r in server.requests_to("PATCH", r"/busy/scale$")
                   if r.status == 429]
        throttle.times = throttle.hits
        daemon.wait_for(lambda: replicas(server, "busy") == RIGHT, 20, "scaled after")
    gaps = [round(b.received - a.received, 1) for a, b in zip(patches, patches[1:])]
    record(Row(
        "API server 429 with Retry-After: 5 on the scale PATCH, for 12 s",
        "at most one PATCH per 5 s (was 55 in 12 s, 28 ms apart)",
        f"{len(patches)} PATCHes in {time.monotonic() - began:.0f}+ s, {gaps} s apart; "
        f"scaled once it ended",
        held=len(patches) <= 4 and all(g >= 4.5 for g in gaps),
        **counts(server, "busy")))


def test_prometheus_429_with_retry_after(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig = kube
    server.create(deployment("pq", replicas=RIGHT))
    with_history(load_exporter, prometheus, ["pq"])
    write_policy(tmp_path / "policies", "pq", "sum(pq_load)", **FAST)
    with PrometheusProxy(prometheus.url) as proxy:
        with DaemonProcess(tmp_path / "policies", proxy.url, kubeconfig) as daemon:
            daemon.wait_for(lambda: len(daemon.ticks("pq")) >= 2, 20, "ticking")
            rule = proxy.rule("pq_load", status=429, retry_after=5)
            began = len(proxy.requests_for("pq_load"))
            time.sleep(12)
            during = proxy.requests_for("pq_load")[began:]
            rule.active = False
            daemon.wait_for_tick(lambda t: t["no_data"] is None, policy="pq",
                                 after=len(daemon.ticks("pq")), timeout=15)
            held = {t["replicas"] for t in daemon.ticks("pq")}
    gaps = [round(b.at - a.at, 1) for a, b in zip(during, during[1:])]
    record(Row(
        "Prometheus 429 with Retry-After: 5, for 12 s",
        "at most one query per 5 s, replicas held, then back",
        f"{len(during)} queries, {gaps} s apart; replicas {sorted(held)}",
        held=len(during) <= 4 and all(g >= 4.5 for g in gaps) and held == {RIGHT},
        **counts(server, "pq")))


# --------------------------------------------------------------------------------------
# SIGTERM to the leader while the API server is slow


def test_sigterm_as_leader_with_a_slow_api_server(tmp_path, kube, load_exporter, prometheus):
    server, kubeconfig = kube
    server.create(deployment("ha", replicas=1))
    with_history(load_exporter, prometheus, ["ha"])
    write_policy(tmp_path / "policies", "ha", "sum(ha_load)", **FAST)
    election = ["--leader-elect", "--lease-namespace", "default"]
    daemons = {name: DaemonProcess(tmp_path / "policies", prometheus.url, kubeconfig,
                                   extra=election, env={"POD_NAME": name}).start()
               for name in ("scaler-a", "scaler-b")}
    try:
        a = daemons["scaler-a"]
        a.wait_for(lambda: replicas(server, "ha") == RIGHT, 30, "3 replicas")
        holder = eventually(lambda: (server.get("Lease", "scaler") or {}).get(
            "spec", {}).get("holderIdentity"), 15)
        leader, standby = daemons[holder], daemons[
            "scaler-b" if holder == "scaler-a" else "scaler-a"]
        slow = server.inject("*", r"^/api", delay=0.8, times=None)
        time.sleep(2.5)                               # requests now in flight everywhere
        code, seconds = leader.terminate()
        spec = server.get("Lease", "scaler")["spec"]
        released = [r for r in server.requests_to("PUT", r"/leases/scaler$")
                    if r.succeeded and r.body["spec"]["holderIdentity"] == ""]
        slow.times = slow.hits
        took_over = time.monotonic()
        eventually(lambda: server.get("Lease", "scaler")["spec"].get("holderIdentity")
                   == standby.env["POD_NAME"], 15)
        took_over = time.monotonic() - took_over
    finally:
        for d in daemons.values():
            d.kill()
    record(Row(
        "SIGTERM to the leader while every API request takes 0.8 s",
        "exit 0 within 5 s, Lease released, the standby takes over",
        f"exit {code} in {seconds:.1f} s, released: {'yes' if released else 'no'} "
        f"(holder then {spec.get('holderIdentity')!r}), standby leading "
        f"{took_over:.1f} s after",
        held=code == 0 and seconds < 5 and len(released) == 1,
        **counts(server, "ha")))


# --------------------------------------------------------------------------------------
# Nothing reachable: a refused API server, a redirecting Prometheus


def test_refused_api_server_and_a_redirecting_prometheus(tmp_path, load_exporter,
                                                          prometheus):
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    write_policy(tmp_path / "policies", "lost", "sum(lost_load)", **FAST)
    with FakePrometheus() as other:
        elsewhere = f"http://localhost:{other.server.server_port}/api/v1/query_range"
        with FakePrometheus([Reply(status=302, body="", headers={"Location": elsewhere})]) \
                as redirecting:
            with DaemonProcess(tmp_path / "policies", redirecting.url, kubeconfig,
                               extra=["--prometheus-header", "X-Scope-OrgID:tenant-secret"]
                               ) as daemon:
                daemon.wait_for(lambda: len(daemon.events("cannot read target")) >= 1
                                and daemon.events("metric has no data; holding replicas"),
                                20, "both failures")
                time.sleep(4)
        asked = len(redirecting.seen)
    read_errors = daemon.events("cannot read target")
    [no_data] = daemon.events("metric has no data; holding replicas")
    timeouts = [line for line in daemon.raw if "timeout" in line or "no answer" in line]
    record(Row(
        "API server refuses connections",
        "'unreachable: ... Connection refused', said once, never 'timeout'",
        f"{len(read_errors)} error line: {read_errors[0]['reason']}: "
        f"{read_errors[0]['detail'].split(': ', 1)[1].split(' (')[0]}; "
        f"{len(timeouts)} lines say timeout",
        held=len(read_errors) == 1 and read_errors[0]["reason"] == "unreachable"
        and "Connection refused" in read_errors[0]["detail"] and not timeouts))
    record(Row(
        "Prometheus redirects to another host",
        "not followed: http_error, nothing reaches the other host",
        f"{no_data['reason']}: '...a redirect to another host...not followed'; {asked} "
        f"asked, {len(other.seen)} requests reached the other host",
        held=no_data["reason"] == "http_error" and "to another host" in no_data["detail"]
        and other.seen == [] and asked >= 2))


# --------------------------------------------------------------------------------------
# A password in the Prometheus URL


def test_a_password_in_the_prometheus_url_is_never_shown(tmp_path, kube, load_exporter,
                                                          prometheus):
    server, kubeconfig = kube
    server.create(deployment("vault", replicas=1))
    with_history(load_exporter, prometheus, ["vault"])
    write_policy(tmp_path / "policies", "vault", "sum(vault_load)", **FAST)
    proxy = PrometheusProxy(prometheus.url).start()
    url = proxy.url.replace("http://", "http://scaler:hunter2@")
    try:
        with DaemonProcess(tmp_path / "policies", url, kubeconfig) as daemon:
            daemon.wait_for(lambda: replicas(server, "vault") == RIGHT, 20, "scaled")
            proxy.stop()                               # Prometheus goes away
            daemon.wait_for(lambda: daemon.metric("scaler_metric_errors_total",
                                                  policy="vault", reason="unreachable"),
                            20, "errors")
            metrics = daemon.http(daemon.metrics_port, "/metrics")[1]
            [serving] = daemon.events("serving")
    finally:
        proxy.stop()
    events = json.dumps(server.list("Event"))
    leaks = [where for where, text in (("logs", "\n".join(daemon.raw)), ("/metrics", metrics),
                                       ("Events", events)) if "hunter2" in text]
    [no_data] = daemon.events("metric has no data; holding replicas")
    record(Row(
        "a password in the Prometheus URL, then Prometheus gone",
        "never in logs, /metrics, errors or Events",
        f"in {', '.join(leaks) or 'none of them'} ({len(daemon.raw)} log lines, "
        f"{len(server.list('Event'))} Events); serving line shows {serving['prometheus']}",
        held=not leaks and serving["prometheus"] == proxy.url
        and no_data["reason"] == "unreachable",
        **counts(server, "vault")))


# Missing data (the query lacks seconds, a flaky target, a recording's resolution) has
# its own rows, added with the windows' handling of unknown seconds.
