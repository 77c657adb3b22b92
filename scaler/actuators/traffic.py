"""The serve/proxy switch: where a policy's public Service sends its traffic.

With ``activator.mode: whenNeeded`` the ingress sends a workload's traffic to a
selector-less *public* Service, whose one EndpointSlice the daemon writes (Knative's
ServerlessService does the same): the pods' ready endpoints when the target is warm
(*serve*: no proxy hop), the activators' when it is at or near zero (*proxy*: requests are
held, counted, and released as pods become ready). The slice and its Service come from the
manifests (``deploy/components/activator``); the daemon only reads and updates that one
slice (RBAC: get/update on it by name) and lists the workload's own slices.

Each call writes only when something changed: the side, the endpoints, the port. The
endpoints keep the slice's address family (a slice's ``addressType`` cannot change) and
its one port's name (what the public Service's port refers to). A side that cannot be
served falls back to the other: *serve* with no ready pod, or pods on several ports, is
*proxy*; *proxy* with no activator known keeps what the slice has. Writes carry the
resourceVersion they were read at: a 409 waits for the next tick.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import structlog

from scaler.actuators import ActuatorError
from scaler.clock import Clock, SystemClock
from scaler.endpointslices import (
    MANAGED_BY_LABEL,
    SERVICE_LABEL,
    collection_path,
    list_slices,
    ready_endpoints,
)
from scaler.kube import KubeClient, TransportError
from scaler.policy import Policy

log = structlog.get_logger(__name__)

SIDE_ANNOTATION = "scaler/traffic"       # serve | proxy: what the slice points at now
MANAGED_BY = "scaler"
SERVE, PROXY = "serve", "proxy"


def _fits(address: str, family: str) -> bool:
    if family == "FQDN":
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == (4 if family == "IPv4" else 6)


class TrafficSwitch:
    def __init__(self, client: KubeClient, *, clock: Clock | None = None,
                 request_timeout: float = 1.0, dry_run: bool = False) -> None:
        self._client = client
        self._clock = clock or SystemClock()
        self._timeout = request_timeout
        self.dry_run = dry_run

    def point(self, policy: Policy, serve: bool | None, activators: list[tuple[str, int]],
              *, deadline: float) -> str | None:
        """Point ``policy``'s public slice at the pods (``serve`` True) or the activators
        (False); None keeps its side and refreshes its endpoints. Returns the side in
        effect (None: unknown, nothing written)."""
        block = policy.activator
        assert block is not None
        ns = policy.scale_target_ref.namespace
        path = f"{collection_path(ns)}/{block.public}"
        current = self._call("GET", path, policy, deadline)
        family = current.get("addressType") or "IPv4"
        ports = current.get("ports") or [{}]
        port_name = ports[0].get("name") or ""
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        side_now = annotations.get(SIDE_ANNOTATION)
        want = (SERVE if serve else PROXY) if serve is not None else (side_now or PROXY)
        endpoints, port, why = (self._pods(policy, family, deadline) if want == SERVE
                                else ([], None, ""))
        if want == SERVE and not endpoints:
            want = PROXY
        if want == PROXY:
            endpoints, port = self._activators(activators, family)
            if not endpoints:
                if side_now != want:
                    log.warning("no activator to point at; the public Service keeps its "
                                "endpoints", policy=policy.name, slice=path)
                return side_now
        desired = {"endpoints": endpoints,
                   "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}
        if not port_name:
            desired["ports"][0].pop("name")
        same = (side_now == want and current.get("endpoints") == endpoints
                and [{k: v for k, v in p.items() if k in ("name", "port", "protocol")}
                     for p in current.get("ports") or []] == desired["ports"])
        if same:
            return want
        if side_now != want:
            log.info("traffic switched", policy=policy.name, to=want, was=side_now,
                     endpoints=len(endpoints), port=port, why=why or None,
                     dry_run=self.dry_run or None)
        if self.dry_run:
            return side_now
        body = dict(current, **desired)
        meta = dict(current.get("metadata") or {})
        meta["annotations"] = dict(annotations, **{SIDE_ANNOTATION: want})
        labels = dict(meta.get("labels") or {})
        labels.setdefault(SERVICE_LABEL, block.public)
        labels[MANAGED_BY_LABEL] = MANAGED_BY
        meta["labels"] = labels
        meta.pop("managedFields", None)
        body["metadata"] = meta
        self._call("PUT", path, policy, deadline, body=body)
        return want

    def _pods(self, policy: Policy, family: str, deadline: float):
        block = policy.activator
        ns = policy.scale_target_ref.namespace
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            raise ActuatorError(policy.scale_target_ref, "timeout",
                                "no time left to read the workload's endpoints")
        try:
            slices = list_slices(self._client, ns, block.service,
                                 timeout=min(self._timeout, remaining))
        except (LookupError, TransportError) as exc:
            raise ActuatorError(policy.scale_target_ref, "endpoints", str(exc)) from None
        ready = ready_endpoints(slices, block.port, families=[family])
        ports = {e.port for e in ready}
        if len(ports) > 1:
            return [], None, f"the pods serve port {block.port!r} on {sorted(ports)}"
        endpoints = []
        for e in ready:
            endpoint: dict[str, Any] = {"addresses": [e.address], "conditions": {
                "ready": True, "serving": True, "terminating": False}}
            if e.target_ref:
                endpoint["targetRef"] = dict(e.target_ref)
            if e.node_name:
                endpoint["nodeName"] = e.node_name
            if e.zone:
                endpoint["zone"] = e.zone
            endpoints.append(endpoint)
        return endpoints, (ports.pop() if ports else None), ("" if endpoints
                                                             else "no ready pod")

    @staticmethod
    def _activators(activators: list[tuple[str, int]], family: str):
        fitting = sorted({(a, p) for a, p in activators if p and _fits(a, family)})
        if not fitting:
            return [], None
        ports = sorted({p for _a, p in fitting})
        port = ports[0]
        return [{"addresses": [a], "conditions": {"ready": True, "serving": True,
                                                  "terminating": False}}
                for a, p in fitting if p == port], port

    def _call(self, method: str, path: str, policy: Policy, deadline: float,
              body: Any = None) -> dict:
        target = policy.scale_target_ref
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            raise ActuatorError(target, "timeout", f"{method} {path}: no time left")
        try:
            response = self._client.request(method, path, body=body,
                                            timeout=min(self._timeout, remaining))
        except TransportError as exc:
            raise ActuatorError(target, exc.reason, exc.detail) from None
        if 200 <= response.status < 300:
            return response.body if isinstance(response.body, dict) else {}
        message = (response.body.get("message") if isinstance(response.body, dict)
                   else str(response.body)[:200]) or f"HTTP {response.status}"
        if response.status == 404:
            raise ActuatorError(target, "not_found", (
                f"{path}: the public EndpointSlice does not exist; create it with its "
                "selector-less Service (deploy/components/activator) or set "
                "spec.activator.mode: always"))
        if response.status == 403:
            raise ActuatorError(target, "forbidden", (
                f"{message} (the daemon's Role needs get/update on this EndpointSlice by "
                "name and list on endpointslices)"))
        if response.status == 409:
            raise ActuatorError(target, "conflict", f"{path}: changed since it was read; "
                                                    "the next tick writes again")
        raise ActuatorError(target, f"http_{response.status}", f"{method} {path}: {message}")
