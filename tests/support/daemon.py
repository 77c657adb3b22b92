"""Run the real `scaler run` process against the test Prometheus and the fake API server.

    with DaemonProcess(policy_dir, prometheus.url, kubeconfig) as daemon:
        daemon.wait_for_tick(lambda line: line["replicas"] == 3)

The daemon logs one JSON object per line on stdout (it is not a terminal here); the
helper collects them in a thread so tests can wait on what the daemon decided.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from support.prometheus import free_port


def write_kubeconfig(path: Path, server_url: str) -> Path:
    path.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters:
        - name: fake
          cluster: {{server: "{server_url}"}}
        users:
        - name: tester
          user: {{}}
        contexts:
        - name: fake
          context: {{cluster: fake, user: tester, namespace: default}}
        current-context: fake
        """))
    return path


def write_policy(directory: Path, name: str, query: str, **spec: Any) -> Path:
    """A policy file; ``spec`` keys are the YAML spec keys (camelCase)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"  {k}: {json.dumps(v)}" for k, v in spec.items()]
    path = directory / f"{name}.yaml"
    path.write_text("\n".join([
        "apiVersion: scaler/v1", "kind: ScalingPolicy", f"metadata: {{name: {name}}}", "spec:",
        f"  scaleTargetRef: {{name: {name}}}",
        f"  metric: {{query: {json.dumps(query)}}}", *lines]) + "\n")
    return path


class DaemonProcess:
    def __init__(self, policy: Path, prometheus_url: str | None, kubeconfig: Path, *,
                 extra: list[str] | None = None, env: dict[str, str] | None = None,
                 health_port: int | None = None) -> None:
        self.metrics_port = free_port()
        self.health_port = health_port or free_port()
        scaler = Path(sys.executable).parent / "scaler"
        prometheus = ["--prometheus-url", prometheus_url] if prometheus_url else []
        self.argv = [str(scaler), "run", "--policy", str(policy), *prometheus,
                     "--kubeconfig", str(kubeconfig), "--bind-address",
                     "127.0.0.1", "--metrics-port", str(self.metrics_port), "--health-port",
                     str(self.health_port), *(extra or [])]
        self.env = {**os.environ, **(env or {})}
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> DaemonProcess:
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=self.env)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process and self.process.stdout
        for raw in self.process.stdout:
            with self._lock:
                self.raw.append(raw.rstrip())
                try:
                    self.lines.append(json.loads(raw))
                except ValueError:
                    pass

    def ticks(self, policy: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [line for line in self.lines if line.get("event") == "tick"
                    and (policy is None or line.get("policy") == policy)]

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [line for line in self.lines if line.get("event") == name]

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            result = check()
            if result:
                return result
            if self.process and self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}):\n"
                                     + "\n".join(self.raw[-30:]))
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or check}; last lines:\n"
                             + "\n".join(self.raw[-15:]))

    def wait_for_tick(self, predicate: Callable[[dict[str, Any]], bool], *,
                      policy: str | None = None, timeout: float = 30.0, after: int = 0) -> dict:
        def check():
            return next((t for t in self.ticks(policy)[after:] if predicate(t)), None)
        return self.wait_for(check, timeout, "a matching tick")

    def http(self, port: int, path: str) -> tuple[int, str]:
        """(status, body); (0, why) while nothing listens yet (the daemon is starting)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except urllib.error.URLError as exc:
            return 0, str(exc.reason)

    def metric(self, name: str, **labels: str) -> float | None:
        status, body = self.http(self.metrics_port, "/metrics")
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                       if labels else "")
        for line in body.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return None

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        assert self.process
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - began

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
