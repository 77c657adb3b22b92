"""A whole scale-from-zero setup on 127.0.0.1, from real parts, for the end-to-end tests and
benchmarks: the fake API server, the pod simulator (real backends whose endpoints appear
after a start-up delay), the activator processes (``scaler activator --policy``) and the
daemon process (``scaler run``), wired as in a cluster: the activators poke the daemon, the
daemon reads every activator, and the daemon points each whenNeeded policy's public
Service at the pods or at the activators.

    with Cluster(tmp_path, {"app": policy(...)}, simulate={"app": "app"}) as cluster:
        cluster.get("app.test", "/id")

Each policy's workload is a Deployment at zero replicas with a Service of its name; a
policy with an activator block in ``whenNeeded`` mode also gets its public Service and an
empty FQDN EndpointSlice (FQDN: the only family that may name 127.0.0.1).
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from support.activator import ActivatorProcess, admin_get
from support.daemon import DaemonProcess, write_kubeconfig
from support.fakekube import FakeKubeAPIServer, deployment, service
from support.pods import PodSimulator
from support.prometheus import free_port


def policy(name: str, *, hosts: list[str] | None = None, source: str = "activator",
           query: str | None = None, activator: dict | None = None, **spec: Any) -> dict:
    """A policy document for a workload called ``name`` (camelCase spec keys)."""
    metric: dict = {"type": "concurrency", "source": source}
    if query:
        metric["query"] = query
    block = {"service": name, "port": "http", "hosts": hosts or [f"{name}.test"],
             **(activator or {})}
    return {"apiVersion": "scaler/v1", "kind": "ScalingPolicy", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": name}, "metric": metric, "activator": block,
                     "tickInterval": "1s", **spec}}


class Cluster:
    def __init__(self, directory: Path, policies: dict[str, dict], *,
                 simulate: dict[str, str] | None = None, startup: float = 1.0,
                 activators: int = 1, prometheus_url: str | None = None,
                 backend_delay: float = 0.0) -> None:
        self.directory = directory
        self.policies = policies
        self.simulate = simulate if simulate is not None else {n: n for n in policies}
        self.startup = startup
        self.n_activators = activators
        self.prometheus_url = prometheus_url
        self.backend_delay = backend_delay
        self.api: FakeKubeAPIServer | None = None
        self.pods: PodSimulator | None = None
        self.activators: list[ActivatorProcess] = []
        self.daemon: DaemonProcess | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.api = FakeKubeAPIServer(ready_delay=None).start()
        policy_dir = self.directory / "policies"
        policy_dir.mkdir(parents=True, exist_ok=True)
        for name, doc in self.policies.items():
            self.api.create(deployment(name, replicas=0))
            self.api.create(service(name, port=80, target_port="http"))
            block = doc["spec"].get("activator")
            if block and block.get("mode", "whenNeeded") == "whenNeeded":
                self._public(block.get("publicService") or f"{block['service']}-public")
            (policy_dir / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        self.kubeconfig = write_kubeconfig(self.directory / "kubeconfig", self.api.url)
        self.pods = PodSimulator(self.api, self.simulate, startup=self.startup,
                                 backend_delay=self.backend_delay).__enter__()
        self.health_port = free_port()
        for _ in range(self.n_activators):
            self.start_activator()
        urls = [f"--activator-url=http://127.0.0.1:{a.admin_port}" for a in self.activators]
        self.daemon = DaemonProcess(policy_dir, self.prometheus_url, self.kubeconfig,
                                    extra=urls, health_port=self.health_port).start()
        self.daemon.wait_for(lambda: self.daemon_ready(), 30, "the daemon ready")

    def daemon_ready(self) -> bool:
        try:
            return self.daemon.http(self.daemon.health_port, "/readyz")[0] == 200
        except OSError:
            return False

    def start_activator(self) -> ActivatorProcess:
        activator = ActivatorProcess(
            self.directory / "policies", option="--policy",
            command=[str(Path(sys.executable).parent / "scaler"), "activator"],
            extra=["--kubeconfig", str(self.kubeconfig),
                   "--daemon-url", f"http://127.0.0.1:{self.health_port}"]).__enter__()
        activator.wait_for(lambda: admin_get(activator.admin_port, "/readyz")[0] == 200, 15,
                           "the activator ready")
        self.activators.append(activator)
        return activator

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.__exit__()
        for activator in self.activators:
            activator.stop()
        if self.pods is not None:
            self.pods.__exit__()
        if self.api is not None:
            self.api.stop()

    def _public(self, name: str) -> None:
        public = service(name, port=80)
        public["spec"].pop("selector")
        self.api.create(public)
        self.api.create({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "FQDN", "endpoints": [],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})

    # -- reading the state --------------------------------------------------------------------
    @property
    def activator(self) -> ActivatorProcess:
        return self.activators[0]

    def public(self, name: str) -> tuple[str | None, list[tuple[str, int]]]:
        """The public slice's side (serve/proxy) and endpoints."""
        obj = self.api.get("EndpointSlice", f"{name}-public")
        side = (obj["metadata"].get("annotations") or {}).get("scaler/traffic")
        port = obj["ports"][0]["port"]
        return side, [(e["addresses"][0], port) for e in obj.get("endpoints") or []]

    def replicas(self, name: str) -> int:
        return self.api.get("Deployment", name)["spec"].get("replicas", 0)

    def scale_patches(self, name: str) -> list:
        return [r for r in self.api.requests_to("PATCH", f"deployments/{name}/scale")
                if 200 <= r.status < 300]

    def activator_metric(self, name: str, activator: ActivatorProcess | None = None,
                         **labels: str) -> float:
        activator = activator or self.activator
        body = admin_get(activator.admin_port, "/metrics")[1].decode()
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                       if labels else "")
        for line in body.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def get(self, host: str, path: str, *, port: int | None = None,
            timeout: float = 30.0) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.activator.port,
                                          timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def wait_for(self, check, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.02)
        tail = "\n".join(self.daemon.raw[-10:]) if self.daemon else ""
        raise AssertionError(f"timed out waiting for {what}\n{tail}")

    def stats(self, activator: ActivatorProcess | None = None) -> dict:
        return json.loads(admin_get((activator or self.activator).admin_port,
                                    "/v1/stats")[1])
