"""A Service's EndpointSlices read as Kubernetes means them: which endpoints are ready, on
which port. Shared by the activator (where to forward) and the daemon (the pods and the
activators it points a policy's public Service at).

Rules (discovery.k8s.io/v1):

* a Service's slices are the ones labelled ``kubernetes.io/service-name: <service>``; all of
  them together are its endpoints (the controller splits them at 100 per slice, and a
  dual-stack Service has one family per slice);
* an endpoint counts when its ``ready`` condition is true or absent ("unknown: consumers
  should interpret it as ready"); a terminating endpoint has ``ready: false``;
* only its first address is used ("fungible; clients may choose to only use the first");
* the port: a number is used as given; a name is looked up in each slice's ``ports``, and
  a slice without a port of that name contributes nothing (its pods do not serve it);
* one pod listed in two slices (IPv4 and IPv6 of a dual-stack Service) counts once, in the
  first family of ``FAMILIES``.

Pure: parsed JSON in, endpoints out. :func:`list_slices` is the one call to an API server,
through any client with ``request(method, path, *, timeout)`` (``scaler.kube.KubeClient``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

FAMILIES = ("IPv4", "IPv6", "FQDN")
SERVICE_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"


@dataclass(frozen=True)
class ReadyEndpoint:
    """One ready endpoint: where to connect, and what the slice said about it."""

    address: str
    port: int
    address_type: str = "IPv4"
    target_ref: tuple[tuple[str, str], ...] = ()   # the pod (kind, name, namespace, uid)
    node_name: str | None = None
    zone: str | None = None

    @property
    def hostport(self) -> tuple[str, int]:
        return self.address, self.port


def collection_path(namespace: str) -> str:
    return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


def selector(service: str) -> str:
    return f"labelSelector={quote(f'{SERVICE_LABEL}={service}')}"


def slice_port(slice_: dict, port: int | str) -> int | None:
    """The port number ``port`` means in this slice (None: the slice does not serve it)."""
    if isinstance(port, int):
        return port
    for entry in slice_.get("ports") or []:
        if isinstance(entry, dict) and entry.get("name") == port:
            number = entry.get("port")
            return number if isinstance(number, int) and 1 <= number <= 65535 else None
    return None


def _is_ready(endpoint: dict) -> bool:
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False


def ready_endpoints(slices: Iterable[dict], port: int | str, *,
                    families: Iterable[str] = FAMILIES) -> list[ReadyEndpoint]:
    """Every ready endpoint of these slices on ``port``, each pod once, in a stable order."""
    allowed = tuple(families)
    order = {family: i for i, family in enumerate(allowed)}
    usable = [s for s in slices if isinstance(s, dict) and s.get("addressType") in order]
    usable.sort(key=lambda s: (order[s["addressType"]],
                               str((s.get("metadata") or {}).get("name", ""))))
    seen: set[Any] = set()
    out: list[ReadyEndpoint] = []
    for slice_ in usable:
        number = slice_port(slice_, port)
        if number is None:
            continue
        family = slice_["addressType"]
        for endpoint in slice_.get("endpoints") or []:
            if not isinstance(endpoint, dict) or not _is_ready(endpoint):
                continue
            addresses = endpoint.get("addresses") or []
            if not addresses or not isinstance(addresses[0], str):
                continue
            ref = endpoint.get("targetRef") or {}
            pod = (ref.get("uid") or (ref.get("namespace"), ref.get("name"))) \
                if ref.get("name") else None
            key = ("pod", pod, number) if pod else ("address", addresses[0], number)
            if key in seen:
                continue
            seen.add(key)
            out.append(ReadyEndpoint(
                address=addresses[0], port=number, address_type=family,
                target_ref=tuple(sorted((k, str(v)) for k, v in ref.items()
                                        if k in ("kind", "name", "namespace", "uid"))),
                node_name=endpoint.get("nodeName"), zone=endpoint.get("zone")))
    return out


def url_host(address: str) -> str:
    """An address as the host of a URL or HOST:PORT (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def list_slices(client: Any, namespace: str, service: str, *, timeout: float) -> list[dict]:
    """The Service's slices now (a LIST; raises ``LookupError`` with the API's answer when it
    is not 200, and whatever the client raises when no answer came)."""
    path = f"{collection_path(namespace)}?{selector(service)}"
    response = client.request("GET", path, timeout=timeout)
    if response.status != 200:
        body = response.body if isinstance(response.body, dict) else {}
        raise LookupError(f"GET {path}: HTTP {response.status}: "
                          f"{body.get('message') or str(response.body)[:200]}")
    return [item for item in (response.body or {}).get("items") or []
            if isinstance(item, dict)]
