"""A small pod simulator: the part of a cluster that turns replicas into ready endpoints.

It watches the fake API server's Deployments (a real watch over HTTP, as a controller
would) and keeps, for each one it simulates, one real HTTP backend per replica on
127.0.0.1 (:class:`support.backends.Backend`). A new pod's backend starts at once, but its
endpoint is published only ``startup`` seconds later — in an EndpointSlice of the
Deployment's Service, as the endpointslice controller writes it — and only then does the
Deployment's ``readyReplicas`` count it. Scaling down removes the newest pods first: their
endpoint goes, then their backend stops.

Kubernetes refuses loopback addresses in IPv4 slices, so each pod's slice is an ``FQDN``
slice naming ``127.0.0.1`` (one slice per pod, each with its pod's port).

    with PodSimulator(server, {"app": "app"}, startup=1.0) as pods:
        ...                                      # scale the Deployment; pods follow
        pods.scale_events                        # (time, deployment, replicas) as seen
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from support.backends import Backend
from support.fakekube import FakeKubeAPIServer


@dataclass
class Pod:
    name: str
    backend: Backend
    started: float
    ready_at: float | None = None
    timer: threading.Timer | None = None


@dataclass
class Workload:
    deployment: str
    service: str
    pods: list[Pod] = field(default_factory=list)
    serial: int = 0
    replicas: int | None = None           # spec.replicas as last seen


class PodSimulator:
    def __init__(self, server: FakeKubeAPIServer, workloads: dict[str, str], *,
                 startup: float = 1.0, namespace: str = "default",
                 backend_delay: float = 0.0) -> None:
        """``workloads`` maps a Deployment's name to its Service's name."""
        self.server = server
        self.namespace = namespace
        self.startup = startup
        self.backend_delay = backend_delay
        self.workloads = {d: Workload(d, s) for d, s in workloads.items()}
        self.scale_events: list[tuple[float, str, int]] = []
        self.ready_events: list[tuple[float, str, int]] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pods", daemon=True)
        self._conn: http.client.HTTPConnection | None = None
        self._watching = threading.Event()

    def __enter__(self) -> PodSimulator:
        self._thread.start()
        if not self._watching.wait(10):
            raise RuntimeError("the pod simulator could not watch deployments")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._conn is not None:
            try:
                self._conn.sock and self._conn.sock.shutdown(2)
            except OSError:
                pass
        self._thread.join(5)
        with self._lock:
            for workload in self.workloads.values():
                for pod in workload.pods:
                    if pod.timer:
                        pod.timer.cancel()
                    pod.backend.stop()
                workload.pods.clear()

    # -- what tests read -----------------------------------------------------------------
    def backends(self, deployment: str) -> list[Backend]:
        with self._lock:
            return [p.backend for p in self.workloads[deployment].pods]

    def ready(self, deployment: str) -> int:
        with self._lock:
            return sum(1 for p in self.workloads[deployment].pods if p.ready_at is not None)

    # -- the controller ------------------------------------------------------------------
    def _watch(self) -> None:
        url = urlsplit(self.server.url)
        version = ""
        while not self._stop.is_set():
            try:
                self._conn = http.client.HTTPConnection(url.hostname, url.port, timeout=3600)
                path = (f"/apis/apps/v1/namespaces/{self.namespace}/deployments?watch=1"
                        + (f"&resourceVersion={version}" if version else ""))
                self._conn.request("GET", path)
                response = self._conn.getresponse()
                self._watching.set()
                while not self._stop.is_set():
                    line = response.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        name = obj["metadata"]["name"]
                        replicas = (obj.get("spec") or {}).get("replicas", 1)
                        if name in self.workloads:
                            self._reconcile(name, replicas)
            except (OSError, http.client.HTTPException, ValueError):
                if self._stop.is_set():
                    return
                time.sleep(0.05)

    def _reconcile(self, name: str, replicas: int) -> None:
        with self._lock:
            workload = self.workloads[name]
            if workload.replicas == replicas:
                return
            workload.replicas = replicas
            self.scale_events.append((time.monotonic(), name, replicas))
            while len(workload.pods) < replicas:
                workload.serial += 1
                pod_name = f"{name}-{workload.serial}"
                backend = Backend(pod_name, delay=self.backend_delay).start()
                pod = Pod(pod_name, backend, time.monotonic())
                pod.timer = threading.Timer(self.startup, self._ready, (workload, pod))
                pod.timer.daemon = True
                pod.timer.start()
                workload.pods.append(pod)
            while len(workload.pods) > replicas:
                pod = workload.pods.pop()
                if pod.timer:
                    pod.timer.cancel()
                if pod.ready_at is not None:
                    self._unpublish(workload, pod)
                threading.Timer(0.5, pod.backend.stop).start()   # in-flight answers finish
            self._set_ready(workload)

    def _ready(self, workload: Workload, pod: Pod) -> None:
        with self._lock:
            if pod not in workload.pods:
                return
            pod.ready_at = time.monotonic()
            self.server.create({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": pod.name, "namespace": self.namespace, "labels": {
                    "kubernetes.io/service-name": workload.service,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                "addressType": "FQDN",
                "endpoints": [{"addresses": ["127.0.0.1"],
                               "conditions": {"ready": True, "serving": True,
                                              "terminating": False},
                               "targetRef": {"kind": "Pod", "name": pod.name,
                                             "namespace": self.namespace}}],
                "ports": [{"name": "http", "port": pod.backend.port, "protocol": "TCP"}]})
            self._set_ready(workload)
            self.ready_events.append((pod.ready_at, workload.deployment,
                                      self.ready(workload.deployment)))

    def _unpublish(self, workload: Workload, pod: Pod) -> None:
        url = urlsplit(self.server.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        try:
            conn.request("DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/"
                                   f"endpointslices/{pod.name}")
            conn.getresponse().read()
        finally:
            conn.close()

    def _set_ready(self, workload: Workload) -> None:
        ready = sum(1 for p in workload.pods if p.ready_at is not None)
        self.server.set_ready("Deployment", workload.deployment, ready, self.namespace)
