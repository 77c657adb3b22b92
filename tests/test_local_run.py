"""A local run: ports that leave Prometheus' alone and say which one is taken, output that
can be piped into `head`, and the daemon finding the kubeconfig kubectl finds."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.daemon import write_kubeconfig, write_policy
from support.fakekube import FakeKubeAPIServer, deployment
from support.prometheus import free_port

from scaler.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
SCALER = Path(sys.executable).parent / "scaler"


def test_default_ports_are_not_prometheus_nor_a_workloads():
    args = _parser().parse_args(["run", "--policy", "x"])
    assert (args.metrics_port, args.health_port) == (9464, 8081)
    assert {args.metrics_port, args.health_port}.isdisjoint({9090, 8080})


@pytest.mark.parametrize("which", ["metrics", "health"])
def test_a_port_in_use_is_named(tmp_path, which):
    with FakeKubeAPIServer() as server, socket.socket() as taken:
        server.create(deployment("web", replicas=1))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = {"metrics": free_port(), "health": free_port()}
        ports[which] = busy
        policy = write_policy(tmp_path, "web", "sum(x)")
        done = subprocess.run(
            [str(SCALER), "run", "--policy", str(policy), "--prometheus-url",
             f"http://127.0.0.1:{free_port()}", "--kubeconfig",
             str(write_kubeconfig(tmp_path / "kc", server.url)), "--bind-address", "127.0.0.1",
             "--metrics-port", str(ports["metrics"]), "--health-port", str(ports["health"])],
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"error: --{which}-port {busy}: cannot listen on 127.0.0.1:{busy}: Address already " \
           "in use" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [
    "replay --no-chart --out {out}",
    "validate policies",
    "--help",
])
def test_output_piped_into_head_ends_quietly(tmp_path, command):
    argv = command.format(out=tmp_path / "out")
    # `head -1` leaves after the first line; scaler must not print a BrokenPipe traceback.
    done = subprocess.run(f"{SCALER} {argv} | head -1", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_the_daemon_finds_home_kube_config(tmp_path):
    """No --kubeconfig, no KUBECONFIG: ~/.kube/config, as kubectl (a dry run says where it
    would scale, then SIGTERM)."""
    import signal
    import time

    with FakeKubeAPIServer() as server:
        server.create(deployment("web", replicas=1))
        home = tmp_path / "home"
        write_kubeconfig((home / ".kube").mkdir(parents=True) or home / ".kube" / "config",
                         server.url)
        policy = write_policy(tmp_path, "web", "sum(x)")
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
        proc = subprocess.Popen(
            [str(SCALER), "run", "--policy", str(policy), "--dry-run", "--prometheus-url",
             f"http://127.0.0.1:{free_port()}", "--bind-address", "127.0.0.1",
             "--metrics-port", str(free_port()), "--health-port", str(free_port()),
             "--log-format", "json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not server.requests_to("GET", "/apis/apps/v1/"
                                                                         "namespaces/default/"
                                                                         "deployments/web"):
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
    assert '"event": "serving"' in out and server.url.split("//")[1] in out, err


def test_one_cold_start_is_one_episode(tmp_path, capsys):
    from scaler.cli import main

    assert main(["replay", "--startup-delay", "10", "--no-chart", "--out",
                 str(tmp_path / "out")]) == 0
    assert "cold starts         1 episode, 10 s with demand" in capsys.readouterr().out
