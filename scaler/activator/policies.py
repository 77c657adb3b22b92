"""Routes from policy files: every policy with an ``activator`` block is one route.

The daemon and the activator read the same files (one ConfigMap in a cluster), so the
activator routes exactly the policies the daemon scales. A route's namespace is its
target's; its Service, port, hosts, limits and mode are the block's.
"""

from __future__ import annotations

from pathlib import Path

from scaler.activator.config import ConfigError, Route
from scaler.policy import Policy, PolicyError
from scaler.policy import files as policy_files


def route_for(policy: Policy) -> Route:
    block = policy.activator
    assert block is not None
    return Route(policy=policy.name, namespace=policy.scale_target_ref.namespace,
                 service=block.service, port=block.port, hosts=block.hosts,
                 max_pending=block.max_pending_requests, timeout=block.timeout,
                 mode=block.mode)


def load(path: str | Path) -> list[Route]:
    """The routes of every policy under ``path`` that has an activator block. Invalid files
    raise :class:`ConfigError` with the policy errors (file, key, value, range), one each."""
    if not Path(path).exists():
        raise ConfigError([f"{path}: no such file or directory"])
    try:
        policies = policy_files.load(path)
    except PolicyError as exc:
        raise ConfigError(exc.errors) from None
    routes = [route_for(p) for p in policies if p.activator is not None]
    if not routes:
        names = ", ".join(p.name for p in policies)
        raise ConfigError([f"{path}: no policy has spec.activator (found: {names}); the "
                           "activator routes only the policies that name it"])
    return routes


def fingerprint(path: str | Path) -> tuple:
    return policy_files.fingerprint(path)
