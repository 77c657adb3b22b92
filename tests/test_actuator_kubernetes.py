"""The live actuator against the fake API server (real HTTP, real kubernetes ApiClient)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support.fakekube import FakeKubeAPIServer, deployment, replicaset, rollout, statefulset

from scaler.actuators import ActuatorError, Conflict, ScaleStatus
from scaler.actuators.kubernetes import KubernetesActuator, from_config
from scaler.clock import ManualClock
from scaler.kube import KubeClient, TransientError
from scaler.policy import ScaleTargetRef

WEB = ScaleTargetRef("web")
TARGETS = {
    "Deployment": (ScaleTargetRef("web"), deployment),
    "StatefulSet": (ScaleTargetRef("db", kind="StatefulSet"), statefulset),
    "ReplicaSet": (ScaleTargetRef("rs", kind="ReplicaSet"), replicaset),
    "Rollout": (ScaleTargetRef("canary", kind="Rollout", api_version="argoproj.io/v1alpha1"),
                rollout),
}
KINDS = [pytest.param(kind, id=kind) for kind in TARGETS]


def write_kubeconfig(path: Path, url: str, token: str = "s3cret") -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "scaler", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "scaler"}}],
    }))
    return path


@pytest.fixture
def server() -> Iterator[FakeKubeAPIServer]:
    with FakeKubeAPIServer() as srv:
        for target, build in TARGETS.values():
            srv.create(build(target.name, replicas=2))
        yield srv


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


@pytest.fixture
def actuator(server: FakeKubeAPIServer, tmp_path: Path,
             stop: threading.Event) -> Iterator[KubernetesActuator]:
    act = from_config(str(write_kubeconfig(tmp_path / "kubeconfig", server.url)), stop=stop,
                      budget=5.0, request_timeout=2.0, backoff_initial=0.01, backoff_max=0.05)
    yield act
    act.close()


def scale_writes(server: FakeKubeAPIServer) -> int:
    return len(server.requests_to("PATCH", r"/scale$"))


# --------------------------------------------------------------------------------------
# read


@pytest.mark.parametrize("kind", KINDS)
def test_read_every_kind(server: FakeKubeAPIServer, actuator: KubernetesActuator,
                         kind: str) -> None:
    target, _ = TARGETS[kind]
    obj = server.get(kind, target.name)
    assert actuator.read(target) == ScaleStatus(
        replicas=2, ready_replicas=2, resource_version=obj["metadata"]["resourceVersion"])


def test_read_counts_only_ready_replicas(tmp_path: Path) -> None:
    with FakeKubeAPIServer(ready_delay=None) as srv:
        srv.create(deployment("web", replicas=3))
        act = from_config(str(write_kubeconfig(tmp_path / "kc", srv.url)))
        # status.readyReplicas is omitted at zero (Go omitempty): that is 0, not an error.
        assert act.read(WEB).ready_replicas == 0
        srv.set_ready("Deployment", "web", 2)
        rv = srv.get("Deployment", "web")["metadata"]["resourceVersion"]
        assert act.read(WEB) == ScaleStatus(replicas=3, ready_replicas=2, resource_version=rv)


@pytest.mark.parametrize("annotations, paused", [
    pytest.param({"scaler/paused": "true"}, True, id="paused"),
    pytest.param({"scaler/paused": "false"}, False, id="explicitly-not-paused"),
    pytest.param({"scaler/paused": "yes"}, False, id="only-true-pauses"),
    pytest.param({"other": "true"}, False, id="other-annotation"),
])
def test_read_paused_annotation(server: FakeKubeAPIServer, actuator: KubernetesActuator,
                                annotations: dict[str, str], paused: bool) -> None:
    server.patch("Deployment", "web", {"metadata": {"annotations": annotations}})
    assert actuator.read(WEB).paused is paused


def test_read_uses_the_kubeconfig_credentials(server: FakeKubeAPIServer,
                                              actuator: KubernetesActuator) -> None:
    actuator.read(WEB)
    assert {r.headers.get("authorization") for r in server.requests} == {"Bearer s3cret"}


def test_read_scale_at_zero(server: FakeKubeAPIServer, actuator: KubernetesActuator) -> None:
    server.patch("Deployment", "web", {"spec": {"replicas": 0}})
    # The Scale's spec.replicas is omitted at zero (omitempty).
    assert (actuator.read(WEB).replicas, actuator.read(WEB).ready_replicas) == (0, 0)


# --------------------------------------------------------------------------------------
# scale


@pytest.mark.parametrize("kind", KINDS)
def test_scale_every_kind(server: FakeKubeAPIServer, actuator: KubernetesActuator,
                          kind: str) -> None:
    target, _ = TARGETS[kind]
    status = actuator.read(target)
    actuator.scale(target, 5, resource_version=status.resource_version, reason="ScaledUp",
                   message="load 480 > 2 x 200")
    assert server.get(kind, target.name)["spec"]["replicas"] == 5
    [patch] = server.requests_to("PATCH", rf"/{target.name}/scale$")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.body == {"metadata": {"resourceVersion": status.resource_version},
                          "spec": {"replicas": 5}}


def test_scale_records_an_event(server: FakeKubeAPIServer, actuator: KubernetesActuator) -> None:
    status = actuator.read(WEB)
    actuator.scale(WEB, 0, resource_version=status.resource_version, reason="ScaledToZero",
                   message="no demand for 30s")
    [event] = server.list("Event", "default")
    obj = server.get("Deployment", "web")
    assert (event["reason"], event["message"], event["type"]) == (
        "ScaledToZero", "no demand for 30s", "Normal")
    assert event["source"]["component"] == "scaler"
    involved = event["involvedObject"]
    assert {k: v for k, v in involved.items() if k != "resourceVersion"} == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "default",
        "uid": obj["metadata"]["uid"]}


def test_stale_resource_version_is_a_conflict(server: FakeKubeAPIServer,
                                              actuator: KubernetesActuator) -> None:
    status = actuator.read(WEB)
    server.patch("Deployment", "web", {"spec": {"replicas": 4}})   # someone else scaled
    with pytest.raises(Conflict) as err:
        actuator.scale(WEB, 7, resource_version=status.resource_version, reason="ScaledUp",
                       message="m")
    assert err.value.target == WEB and err.value.reason == "conflict"
    assert server.get("Deployment", "web")["spec"]["replicas"] == 4     # never overwritten
    assert scale_writes(server) == 1                                    # and never retried
    assert server.list("Event") == []
    # Re-read and decide again: now it goes through.
    actuator.scale(WEB, 7, resource_version=actuator.read(WEB).resource_version,
                   reason="ScaledUp", message="m")
    assert server.get("Deployment", "web")["spec"]["replicas"] == 7


def test_no_op_write_is_skipped(server: FakeKubeAPIServer, actuator: KubernetesActuator) -> None:
    status = actuator.read(WEB)
    actuator.scale(WEB, 2, resource_version=status.resource_version, reason="ScaledUp",
                   message="m")
    assert scale_writes(server) == 0
    assert server.list("Event") == []


def test_write_needs_a_resource_version(actuator: KubernetesActuator) -> None:
    with pytest.raises(ValueError, match="resourceVersion"):
        actuator.scale(WEB, 3, resource_version="", reason="ScaledUp", message="m")


# --------------------------------------------------------------------------------------
# failures


@pytest.mark.parametrize("status", [
    pytest.param(429, id="throttled"),
    pytest.param(500, id="internal-error"),
    pytest.param(503, id="unavailable"),
])
def test_transient_errors_are_retried(server: FakeKubeAPIServer, actuator: KubernetesActuator,
                                      status: int) -> None:
    rv = actuator.read(WEB).resource_version
    server.inject("PATCH", r"/deployments/web/scale$", status=status, times=2)
    with capture_logs() as logs:
        actuator.scale(WEB, 6, resource_version=rv, reason="ScaledUp", message="m")
    assert server.get("Deployment", "web")["spec"]["replicas"] == 6
    assert [r.status for r in server.requests_to("PATCH", r"/scale$")] == [status, status, 200]
    assert [e["attempt"] for e in logs if e["event"] == "kube_request_retry"] == [1, 2]


def test_slow_response_times_out_and_is_retried(server: FakeKubeAPIServer, tmp_path: Path) -> None:
    act = from_config(str(write_kubeconfig(tmp_path / "kc", server.url)), budget=10.0,
                      request_timeout=0.2, backoff_initial=0.01, backoff_max=0.05)
    server.inject("GET", r"/deployments/web/scale$", delay=1.0, times=1)
    with capture_logs() as logs:
        assert act.read(WEB).replicas == 2
    assert len(server.requests_to("GET", r"/deployments/web/scale$")) >= 2
    retries = [e["error"] for e in logs if e["event"] == "kube_request_retry"]
    assert retries and retries[0].startswith("timeout: GET ")


def test_retries_end_at_the_deadline(server: FakeKubeAPIServer, tmp_path: Path) -> None:
    act = from_config(str(write_kubeconfig(tmp_path / "kc", server.url)), budget=1.0,
                      request_timeout=0.5, backoff_initial=0.01, backoff_max=0.05)
    server.inject("*", r"/scale$", status=500, times=None)
    started = time.monotonic()
    with pytest.raises(ActuatorError) as err:
        act.read(WEB)
    assert err.value.reason == "http_500" and "gave up" in err.value.detail
    assert len(server.requests_to("GET", r"/scale$")) >= 2
    assert time.monotonic() - started < 5.0    # generous: the budget is 1 s


def test_a_passed_deadline_sends_nothing(server: FakeKubeAPIServer,
                                         actuator: KubernetesActuator) -> None:
    with pytest.raises(ActuatorError) as err:
        actuator.read(WEB, deadline=time.monotonic() - 1)
    assert err.value.reason == "timeout"
    assert server.requests == []


def test_deadlines_and_events_follow_the_injected_clock(server: FakeKubeAPIServer,
                                                        tmp_path: Path) -> None:
    """Every time the actuator needs comes from its clock: a manual clock that stands
    still at 2026-03-02T00:00:00Z stamps and names the events, and its deadlines bind."""
    clock = ManualClock(1_772_409_600.0)
    client = KubeClient.from_config(str(write_kubeconfig(tmp_path / "kc", server.url)))
    act = KubernetesActuator(client, clock=clock)
    with pytest.raises(ActuatorError) as err:
        act.read(WEB, deadline=clock.monotonic() - 1)   # past on this clock, not the system's
    assert err.value.reason == "timeout" and server.requests == []
    for replicas in (3, 4):   # two scales at the same instant
        status = act.read(WEB)
        act.scale(WEB, replicas, resource_version=status.resource_version, reason="ScaledUp",
                  message="more load")
    events = server.list("Event", "default")
    nanos = 1_772_409_600 * 10**9
    assert {e["metadata"]["name"] for e in events} == {f"web.{nanos:x}", f"web.{nanos + 1:x}"}
    assert {e["firstTimestamp"] for e in events} == {"2026-03-02T00:00:00Z"}
    act.close()


def test_shutdown_stops_retrying_at_once(server: FakeKubeAPIServer, tmp_path: Path,
                                         stop: threading.Event) -> None:
    act = from_config(str(write_kubeconfig(tmp_path / "kc", server.url)), stop=stop,
                      budget=60.0, backoff_initial=1.0, backoff_max=1.0)
    server.inject("GET", r"/scale$", status=503, times=None)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ActuatorError) as err:
        act.read(WEB)
    assert err.value.reason == "shutdown"
    assert time.monotonic() - started < 10.0   # generous: without the event it would be 60 s
    calls = len(server.requests)
    with pytest.raises(ActuatorError):
        act.read(WEB)                           # after shutdown nothing more is sent
    assert len(server.requests) == calls


@pytest.mark.parametrize("status, reason, words", [
    pytest.param(403, "forbidden", "service account needs get/patch on deployments",
                 id="forbidden"),
    pytest.param(404, "not_found", "/deployments/web/scale", id="not-found"),
    pytest.param(422, "http_422", "PATCH", id="invalid"),
])
def test_permanent_errors_name_the_target(server: FakeKubeAPIServer,
                                          actuator: KubernetesActuator, status: int,
                                          reason: str, words: str) -> None:
    rv = actuator.read(WEB).resource_version
    server.inject("PATCH", r"/scale$", status=status, times=None)
    with pytest.raises(ActuatorError) as err:
        actuator.scale(WEB, 3, resource_version=rv, reason="ScaledUp", message="m")
    assert err.value.reason == reason
    assert str(err.value).startswith("Deployment default/web: ")
    assert words in str(err.value)
    assert scale_writes(server) == 1      # not retried


def test_missing_target_is_not_found(actuator: KubernetesActuator) -> None:
    missing = ScaleTargetRef("ghost")
    with pytest.raises(ActuatorError) as err:
        actuator.read(missing)
    assert err.value.reason == "not_found"
    assert str(err.value).startswith(
        'Deployment default/ghost: not_found: deployments.apps "ghost" not found')


@pytest.mark.parametrize("target, reason", [
    pytest.param(ScaleTargetRef("x", kind="Widget", api_version="example.com/v1"),
                 "unknown_kind", id="unserved-group"),
    pytest.param(ScaleTargetRef("x", kind="Widget", api_version="argoproj.io/v1alpha1"),
                 "unknown_kind", id="unserved-kind"),
    pytest.param(ScaleTargetRef("x", kind="Lease", api_version="coordination.k8s.io/v1"),
                 "no_scale_subresource", id="no-scale-subresource"),
])
def test_unscalable_kinds(actuator: KubernetesActuator, target: ScaleTargetRef,
                          reason: str) -> None:
    with pytest.raises(ActuatorError) as err:
        actuator.read(target)
    assert err.value.reason == reason


def test_event_failure_never_fails_the_scale(server: FakeKubeAPIServer,
                                            actuator: KubernetesActuator) -> None:
    rv = actuator.read(WEB).resource_version
    server.inject("POST", r"/events$", status=500, times=None)
    with capture_logs() as logs:
        actuator.scale(WEB, 4, resource_version=rv, reason="ScaledUp", message="m")
    assert server.get("Deployment", "web")["spec"]["replicas"] == 4
    assert len(server.requests_to("POST", r"/events$")) == 1    # one attempt, no retries
    assert [e["reason"] for e in logs if e["event"] == "event_failed"] == ["ScaledUp"]


def test_urllib3_does_not_retry_on_its_own() -> None:
    """tenacity is the only retry layer: one request is one connection attempt."""
    from kubernetes.client import Configuration

    accepted = 0
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.5)

        def accept_and_drop() -> None:
            nonlocal accepted
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted += 1
                conn.close()          # drop the connection without answering

        thread = threading.Thread(target=accept_and_drop, daemon=True)
        thread.start()
        host, port = listener.getsockname()
        client = KubeClient(Configuration(host=f"http://{host}:{port}"))
        with pytest.raises(TransientError) as err:
            client.request("GET", "/version", timeout=2.0)
        thread.join(timeout=2)
    assert err.value.reason == "unavailable"
    assert accepted == 1


# --------------------------------------------------------------------------------------
# from_config


def test_from_config_uses_kubeconfig_env(server: FakeKubeAPIServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", server.url, "env")))
    assert from_config(None).read(WEB).replicas == 2
    assert server.requests[-1].headers["authorization"] == "Bearer env"


def test_from_config_argument_wins_over_env(server: FakeKubeAPIServer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "does-not-exist"))
    path = write_kubeconfig(tmp_path / "kc", server.url, "arg")
    from_config(str(path)).read(WEB)
    assert server.requests[-1].headers["authorization"] == "Bearer arg"


def test_from_config_falls_back_to_in_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from scaler.kubeconfig import KubeconfigError

    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeconfigError, match="KUBERNETES_SERVICE_HOST is not set"):
        from_config(None)
