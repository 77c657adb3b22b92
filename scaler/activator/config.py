"""What the activator serves: one frozen :class:`Route` per policy, and its loading.

A route is the activator's view of a policy's ``spec.activator`` block: which Host header
values belong to it, where its endpoints come from (the Service and port), how many
requests it may hold at zero and for how long. The daemon's policy files map onto it; a
small routes file (YAML) describes routes directly, for local runs and tests::

    routes:
      - policy: checkout
        namespace: shop
        service: checkout
        port: 8080
        hosts: [checkout.shop.example]
        maxPendingRequests: 1000
        timeout: 60s
        mode: whenNeeded
        endpoints: ["127.0.0.1:9001"]   # static ready endpoints (optional; none = at zero)

Errors name the file, the key, the value and what is allowed, one line each.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.activator.endpoints import Endpoint

MODES = ("always", "whenNeeded")
DEFAULT_MAX_PENDING = 1000
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
MAX_PENDING_LIMIT = 1_000_000

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(Exception):
    """Invalid routes: ``errors`` holds one line per problem, each naming its place."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Route:
    """One policy's routing, resolved and validated."""

    policy: str
    """The policy's name: the key of the activator's stats and metrics."""
    namespace: str
    """Namespace of the target and its Service."""
    service: str
    """The workload's Service, whose EndpointSlices give the ready endpoints."""
    port: int | str
    """Endpoint port (number, or the name of the EndpointSlice port)."""
    hosts: tuple[str, ...]
    """Host header values (lower case, no port) routed to this policy."""
    max_pending: int = DEFAULT_MAX_PENDING
    """Requests held at zero ready endpoints; the next one gets 503 with Retry-After."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds a held request may wait for an endpoint; then 504 with Retry-After."""
    mode: str = "whenNeeded"
    """``always`` in the path, or ``whenNeeded`` (the daemon's serve/proxy switch)."""


def parse_duration(value: Any) -> float | None:
    """Seconds from 60, 60.5, "60s", "500ms", "2m", "1h"; None when not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    match = _DURATION.match(str(value).strip())
    if not match:
        return None
    return float(match.group(1)) * _UNIT[match.group(2)]


def route_from_mapping(doc: Any, where: str
                       ) -> tuple[Route | None, tuple[Endpoint, ...], list[str]]:
    """One route (and its static endpoints, if listed) from a mapping; errors name ``where``."""
    errors: list[str] = []
    if not isinstance(doc, dict):
        return None, (), [f"{where}: must be a mapping, got {type(doc).__name__}"]
    known = {"policy", "namespace", "service", "port", "hosts", "maxPendingRequests", "timeout",
             "mode", "endpoints"}
    for key in sorted(set(doc) - known, key=str):
        errors.append(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(known))})")

    def name(key: str, default: str | None = None) -> str:
        value = doc.get(key, default)
        if not isinstance(value, str) or not _NAME.match(value):
            errors.append(f"{where}.{key}: {value!r} is not a Kubernetes name "
                          "(lower-case letters, digits, '-' and '.')")
            return ""
        return value

    policy = name("policy")
    namespace = name("namespace", "default")
    service = name("service", policy or None)

    port = doc.get("port")
    if isinstance(port, bool) or not (
            (isinstance(port, int) and 1 <= port <= 65535)
            or (isinstance(port, str) and re.match(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$", port))):
        errors.append(f"{where}.port: {port!r} must be a port number 1-65535 or a port name")

    hosts_raw = doc.get("hosts")
    hosts: list[str] = []
    if not isinstance(hosts_raw, list) or not hosts_raw:
        errors.append(f"{where}.hosts: must be a non-empty list of host names, got {hosts_raw!r}")
    else:
        for i, host in enumerate(hosts_raw):
            text = str(host).strip().lower() if isinstance(host, str) else ""
            if not _HOST.match(text):
                errors.append(f"{where}.hosts[{i}]: {host!r} is not a host name "
                              "(no scheme, no port, no path)")
            else:
                hosts.append(text)

    max_pending = doc.get("maxPendingRequests", DEFAULT_MAX_PENDING)
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) \
            or not 0 <= max_pending <= MAX_PENDING_LIMIT:
        errors.append(f"{where}.maxPendingRequests: {max_pending!r} must be an integer "
                      f"from 0 to {MAX_PENDING_LIMIT:,}")

    timeout = parse_duration(doc.get("timeout", DEFAULT_TIMEOUT))
    if timeout is None or not 0 < timeout <= MAX_TIMEOUT:
        errors.append(f"{where}.timeout: {doc.get('timeout')!r} must be a duration above 0 "
                      f"and at most {MAX_TIMEOUT:g}s (e.g. 60s, 500ms, 2m)")

    mode = doc.get("mode", "whenNeeded")
    if mode not in MODES:
        errors.append(f"{where}.mode: {mode!r} must be one of {', '.join(MODES)}")

    endpoints: list[Endpoint] = []
    raw = doc.get("endpoints", [])
    if not isinstance(raw, list):
        errors.append(f"{where}.endpoints: must be a list of HOST:PORT, got {raw!r}")
    else:
        for i, text in enumerate(raw):
            try:
                endpoints.append(Endpoint.parse(str(text)))
            except ValueError as exc:
                errors.append(f"{where}.endpoints[{i}]: {exc}")

    if errors:
        return None, (), errors
    route = Route(policy=policy, namespace=namespace, service=service, port=port,
                  hosts=tuple(hosts), max_pending=max_pending, timeout=timeout, mode=mode)
    return route, tuple(endpoints), []


def check_unique(routes: list[Route], where: str) -> list[str]:
    """Policy names and hosts are each claimed once."""
    errors: list[str] = []
    seen_policy: dict[str, int] = {}
    seen_host: dict[str, str] = {}
    for i, route in enumerate(routes):
        if route.policy in seen_policy:
            errors.append(f"{where}[{i}].policy: {route.policy!r} is already "
                          f"routes[{seen_policy[route.policy]}]")
        seen_policy.setdefault(route.policy, i)
        for host in route.hosts:
            if host in seen_host and seen_host[host] != route.policy:
                errors.append(f"{where}[{i}].hosts: {host!r} is already routed to policy "
                              f"{seen_host[host]!r}")
            seen_host.setdefault(host, route.policy)
    return errors


def load_routes(path: Path) -> tuple[list[Route], dict[str, tuple[Endpoint, ...]]]:
    """Routes and their static endpoints from a routes file (see the module docstring)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{path}: not valid YAML{at}"]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("routes"), list):
        raise ConfigError([f"{path}: routes: must be a list of routes at the top level"])
    routes: list[Route] = []
    endpoints: dict[str, tuple[Endpoint, ...]] = {}
    errors: list[str] = []
    for i, item in enumerate(doc["routes"]):
        route, eps, errs = route_from_mapping(item, f"{path}: routes[{i}]")
        errors.extend(errs)
        if route is not None:
            routes.append(route)
            endpoints[route.policy] = eps
    errors.extend(check_unique(routes, f"{path}: routes"))
    if not routes and not errors:
        errors.append(f"{path}: routes: the list is empty (at least one route is needed)")
    if errors:
        raise ConfigError(errors)
    return routes, endpoints
