"""ScalingPolicy objects run as policies and carry their status, proven with real kubectl.

The fake API server serves the generated CRD (deploy/crd/crd.yaml); kubectl applies the
objects, the daemon's loop (manual clock, the bundled default recording as its metric,
the real Kubernetes actuator) runs them, the status writer writes their status, and
kubectl reads it back: ``get`` (the printer columns), ``describe``, ``-o yaml``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from support.daemon import write_kubeconfig, write_policy
from support.fakekube import FakeKubeAPIServer, deployment

from scaler import app
from scaler.actuators.kubernetes import KubernetesActuator
from scaler.clock import ManualClock
from scaler.daemon.loop import Daemon
from scaler.daemon.observability import Metrics
from scaler.daemon.policy_objects import to_policy
from scaler.kube import KubeClient
from scaler.sources.recording import RecordingSource
from scaler.sources.recording import load as load_recording

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "deploy" / "crd" / "crd.yaml"
KUBECTL = Path(sys.executable).parent / "kubectl"
BASE = 1_772_409_600          # the default recording's first second

POLICY = textwrap.dedent("""\
    apiVersion: scaler.dev/v1alpha1
    kind: ScalingPolicy
    metadata:
      name: web
      namespace: default
    spec:
      scaleTargetRef: {name: web}
      metric: {query: sum(web_inflight_requests)}
      minReplicas: 1
      maxReplicas: 10
    """)


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.kubeconfig, self.home = kubeconfig, home

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True):
        done = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), "--cache-dir",
             str(self.home / "cache"), *args],
            input=stdin, capture_output=True, text=True, timeout=30,
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin"})
        if check:
            assert done.returncode == 0, done.stderr
        return done


@pytest.fixture
def cluster(tmp_path):
    with FakeKubeAPIServer(ready_delay=0.0) as server:
        server.create(deployment("web", replicas=1))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        kubectl = Kubectl(kubeconfig, tmp_path)
        kubectl("apply", "-f", str(CRD))
        yield server, kubectl, kubeconfig


def _daemon(kubeconfig: Path, *, dry_run: bool = False):
    clock = ManualClock(BASE + 120)
    client = KubeClient.from_config(str(kubeconfig), user_agent="scaler")
    actuator = KubernetesActuator(client, clock=clock)
    source = RecordingSource(load_recording(ROOT / "scaler/recordings/default.csv"))
    from scaler.actuators.dry_run import DryRunActuator

    daemon = Daemon([], source=source, actuator=DryRunActuator(actuator) if dry_run else actuator,
                    clock=clock, metrics=Metrics(CollectorRegistry()), evaluation_delay=0.5)
    runner = app.policy_objects(daemon, client, "default", elector=None, dry_run=dry_run,
                                stop=threading.Event())
    runner.writer.min_interval = 0.0
    return daemon, runner, clock


def _pass(daemon, runner, clock, seconds: float = 4.0) -> None:
    end = clock.now() + seconds
    while clock.now() < end:
        runner.poll_once()
        daemon.run_once()
        runner.writer.flush()
        clock.advance(1.0)


def test_an_applied_scalingpolicy_runs_and_kubectl_shows_its_status(cluster):
    server, kubectl, kubeconfig = cluster
    kubectl("apply", "-f", "-", stdin=POLICY)
    daemon, runner, clock = _daemon(kubeconfig)
    _pass(daemon, runner, clock)
    assert "default/web" in daemon.targets
    got = kubectl("get", "scalingpolicies").stdout
    header, row = got.splitlines()[:2]
    assert header.split() == ["NAME", "TARGET", "METRIC", "DESIRED", "READY", "PANIC", "AGE"]
    cells = row.split()
    assert cells[:2] == ["web", "web"] and cells[5] in ("true", "false")
    obj = yaml.safe_load(kubectl("get", "scalingpolicy", "web", "-o", "yaml").stdout)
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["desiredReplicas"] == int(cells[3]) >= 1
    assert float(status["currentMetricValue"]) > 0     # the recording's load
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["MetricAvailable"]["status"] == "True"
    assert conditions["Active"]["status"] == "True"
    assert conditions["ScalingLimited"]["reason"] in ("DesiredWithinRange", "TooFewReplicas",
                                                       "TooManyReplicas")
    # The desired count is what the daemon wrote to the target.
    assert server.get("Deployment", "web")["spec"]["replicas"] == status["desiredReplicas"]
    described = kubectl("describe", "scalingpolicy", "web").stdout
    assert "Ready" in described and "MetricAvailable" in described
    assert "Observed Generation" in described


def test_status_is_written_only_on_change(cluster):
    server, kubectl, kubeconfig = cluster
    kubectl("apply", "-f", "-", stdin=POLICY)
    daemon, runner, clock = _daemon(kubeconfig)
    _pass(daemon, runner, clock)
    writes = len(server.writes(kind="ScalingPolicy"))
    assert writes >= 1
    # Nothing changes between two flushes without a tick: no write.
    runner.writer.flush()
    runner.writer.flush()
    assert len(server.writes(kind="ScalingPolicy")) == writes
    # The rate limit holds back a change for min_interval.
    runner.writer.min_interval = 3600.0
    clock.advance(600)          # the recording's burst: a new decision
    _pass(daemon, runner, clock, 10)
    assert len(server.writes(kind="ScalingPolicy")) == writes


def test_an_invalid_edit_keeps_the_old_version_running_and_says_why(cluster):
    server, kubectl, kubeconfig = cluster
    kubectl("apply", "-f", "-", stdin=POLICY)
    daemon, runner, clock = _daemon(kubeconfig)
    _pass(daemon, runner, clock)
    running = daemon.targets["default/web"].policy
    # A duration in days passes the server's schema (CEL cannot read days) but not the
    # validator: stableWindow must be 6s..1h.
    kubectl("patch", "scalingpolicy", "web", "--type=merge", "-p",
            json.dumps({"spec": {"stableWindow": "1d", "maxReplicas": 8}}))
    _pass(daemon, runner, clock)
    assert daemon.targets["default/web"].policy == running       # the old version runs
    obj = yaml.safe_load(kubectl("get", "scalingpolicy", "web", "-o", "yaml").stdout)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.stableWindow" in ready["message"] and "6s..1h" in ready["message"]
    assert "generation 1 keeps running" in ready["message"]
    assert obj["status"]["observedGeneration"] == 2
    # Fixed: the new generation runs.
    kubectl("patch", "scalingpolicy", "web", "--type=merge", "-p",
            json.dumps({"spec": {"stableWindow": "2m"}}))
    _pass(daemon, runner, clock)
    assert daemon.targets["default/web"].policy.stable_window == 120
    assert daemon.targets["default/web"].policy.max_replicas == 8


def test_the_server_refuses_what_the_validator_refuses_through_kubectl(cluster):
    _server, kubectl, _ = cluster
    bad = POLICY.replace("maxReplicas: 10", "maxReplicas: 10\n  stableWindow: 5s")
    done = kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert done.returncode != 0
    assert "spec.stableWindow" in done.stderr and "must be 6s..1h" in done.stderr


def test_a_target_in_another_namespace_is_refused():
    obj = yaml.safe_load(POLICY)
    obj["spec"]["scaleTargetRef"]["namespace"] = "kube-system"
    policy, errors = to_policy(obj, "default")
    assert policy is None
    assert errors[0].startswith("spec.scaleTargetRef.namespace: 'kube-system' is not")


def test_a_file_and_an_object_on_one_target_the_file_wins(cluster, tmp_path):
    server, kubectl, kubeconfig = cluster
    kubectl("apply", "-f", "-", stdin=POLICY)
    daemon, runner, clock = _daemon(kubeconfig)
    from scaler.policy import files

    path = write_policy(tmp_path, "web", "sum(x)")
    daemon.set_policies("files", files.load(path))
    _pass(daemon, runner, clock)
    assert set(daemon.targets) == {"web"}
    obj = yaml.safe_load(kubectl("get", "scalingpolicy", "web", "-o", "yaml").stdout)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Conflict" and "already scaled by" in ready["message"]


def test_dry_run_writes_nothing_at_all(cluster):
    server, kubectl, kubeconfig = cluster
    kubectl("apply", "-f", "-", stdin=POLICY)
    server.clear_requests()
    daemon, runner, clock = _daemon(kubeconfig, dry_run=True)
    # Any write would fail: the dry run needs read access only.
    server.inject("(POST|PUT|PATCH|DELETE)", ".*", status=403, times=1000)
    _pass(daemon, runner, clock, 10)
    assert "default/web" in daemon.targets
    assert server.writes() == []
    assert not [r for r in server.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def test_an_open_schedule_shows_in_the_status(cluster):
    server, kubectl, kubeconfig = cluster
    # The clock is Monday 2026-03-02 00:02 UTC: inside a daily window from midnight.
    scheduled = POLICY + textwrap.indent(textwrap.dedent("""\
        schedules:
          - {cron: "0 0 * * *", duration: 1h, minReplicas: 5, timezone: UTC}
        """), "  ")
    kubectl("apply", "-f", "-", stdin=scheduled)
    daemon, runner, clock = _daemon(kubeconfig)
    _pass(daemon, runner, clock)
    status = yaml.safe_load(kubectl("get", "scalingpolicy", "web", "-o", "yaml").stdout)["status"]
    assert status["activeSchedule"] == "0 0 * * * UTC"
    assert status["desiredReplicas"] == 5
    limited = next(c for c in status["conditions"] if c["type"] == "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "ScheduleFloor")
    assert "schedule 0 0 * * * UTC sets 5" in limited["message"]


def test_no_data_shows_with_the_logs_reason_and_a_missing_target_as_inactive(cluster):
    server, kubectl, kubeconfig = cluster
    kubectl("apply", "-f", "-", stdin=POLICY)
    daemon, runner, clock = _daemon(kubeconfig)
    _pass(daemon, runner, clock)
    from scaler.sources import Reading

    class Unreachable:
        def read(self, query, start, end, *, deadline):
            return Reading(error="unreachable", detail="connection refused")

        history = None

    daemon.source = Unreachable()
    _pass(daemon, runner, clock)
    status = yaml.safe_load(kubectl("get", "scalingpolicy", "web", "-o", "yaml").stdout)["status"]
    metric = next(c for c in status["conditions"] if c["type"] == "MetricAvailable")
    assert (metric["status"], metric["reason"]) == ("False", "unreachable")
    # The target goes away: Active False, as the log says it.
    kubectl("delete", "deployment", "web")
    _pass(daemon, runner, clock)
    status = yaml.safe_load(kubectl("get", "scalingpolicy", "web", "-o", "yaml").stdout)["status"]
    active = next(c for c in status["conditions"] if c["type"] == "Active")
    assert (active["status"], active["reason"]) == ("False", "FailedGetScale")
    assert "not_found" in active["message"]


def test_scaler_run_with_policy_source_kubernetes_end_to_end(cluster, tmp_path):
    """The command itself: no policy file, objects only, its thread lists them and writes
    their status (Prometheus is down here: MetricAvailable says so with the log's reason)."""
    import signal
    import time

    from support.prometheus import free_port

    server, kubectl, kubeconfig = cluster
    kubectl("apply", "-f", "-", stdin=POLICY)
    scaler = Path(sys.executable).parent / "scaler"
    proc = subprocess.Popen(
        [str(scaler), "run", "--policy-source", "kubernetes", "--kubeconfig", str(kubeconfig),
         "--prometheus-url", f"http://127.0.0.1:{free_port()}", "--bind-address", "127.0.0.1",
         "--metrics-port", str(free_port()), "--health-port", str(free_port()),
         "--log-format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        conditions = {}
        while time.monotonic() < deadline and "MetricAvailable" not in conditions:
            time.sleep(0.5)
            status = server.get("ScalingPolicy", "web").get("status") or {}
            conditions = {c["type"]: c for c in status.get("conditions", [])}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert conditions["Ready"]["status"] == "True", out
    assert (conditions["MetricAvailable"]["status"],
            conditions["MetricAvailable"]["reason"]) == ("False", "unreachable")
    # The namespace came from the kubeconfig context (default), the name is namespaced.
    assert '"policies": ["default/web"]' in out


def test_without_the_crd_the_command_says_how_to_install_it(tmp_path):
    from support.prometheus import free_port

    with FakeKubeAPIServer() as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        done = subprocess.run(
            [str(Path(sys.executable).parent / "scaler"), "run", "--policy-source",
             "kubernetes", "--kubeconfig", str(kubeconfig), "--bind-address", "127.0.0.1",
             "--metrics-port", str(free_port()), "--health-port", str(free_port())],
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: --policy-source kubernetes: the ScalingPolicy CRD "
                                  "is not installed (kubectl apply -f deploy/crd/crd.yaml)")
    assert "Traceback" not in done.stderr


def test_run_needs_policy_files_or_objects(capsys):
    from scaler.cli import main

    assert main(["run"]) == 2
    assert "give --policy PATH (policy files), --policy-source kubernetes" in \
        capsys.readouterr().err
