"""Where a route's traffic may go: its ready endpoints, delivered by an EndpointSource.

An :class:`EndpointSource` hands the activator, per route, the *full* set of ready
endpoints: the current set as soon as it is known, then a new full set after every change
(never deltas, so a missed update cannot leave a stale endpoint behind). An empty set means
the route is at zero: the activator holds its requests. :class:`StaticEndpoints` is the
source for local runs and tests; the Kubernetes source watches the Service's
EndpointSlices and plugs in through the same ``watch``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from scaler.activator.config import Route


@dataclass(frozen=True, order=True)
class Endpoint:
    """One ready address and port of a workload (a pod IP, or 127.0.0.1 in tests)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``10.0.0.7:8080``, ``[fd00::7]:8080`` or ``localhost:8080``."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{text!r} is not HOST:PORT with a port from 1 to 65535")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        elif not host or ":" in host or " " in host:
            raise ValueError(f"{text!r} is not HOST:PORT (write IPv6 addresses in brackets)")
        return cls(host, int(port))


class EndpointSource(Protocol):
    def watch(self, route: Route) -> AsyncIterator[frozenset[Endpoint]]:
        """The route's full set of ready endpoints: the current one first, then every change.

        The iterator runs for the life of the activator; an empty set means zero ready
        endpoints (requests are held). A source that loses its connection keeps the last
        set it delivered until it knows better (no news is not zero endpoints).
        """


class StaticEndpoints:
    """Endpoints given by hand: at start, then through :meth:`set` (from any thread).

    Used by local runs (the routes file, re-read on SIGHUP) and by tests, which publish
    endpoints while the activator holds requests.
    """

    def __init__(self, initial: Mapping[str, Iterable[Endpoint]] | None = None) -> None:
        self._sets: dict[str, frozenset[Endpoint]] = {
            policy: frozenset(eps) for policy, eps in (initial or {}).items()}
        self._watchers: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    def set(self, policy: str, endpoints: Iterable[Endpoint]) -> None:
        """Publish the full ready set of ``policy``; watchers see it at once."""
        with self._lock:
            self._sets[policy] = frozenset(endpoints)
            watchers = list(self._watchers.get(policy, ()))
        for loop, changed in watchers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(changed.set)

    def get(self, policy: str) -> frozenset[Endpoint]:
        with self._lock:
            return self._sets.get(policy, frozenset())

    async def watch(self, route: Route) -> AsyncIterator[frozenset[Endpoint]]:
        changed = asyncio.Event()
        me = (asyncio.get_running_loop(), changed)
        with self._lock:
            self._watchers.setdefault(route.policy, []).append(me)
        try:
            last = None
            while True:
                changed.clear()
                current = self.get(route.policy)
                if current != last:
                    last = current
                    yield current
                await changed.wait()
        finally:
            with self._lock:
                self._watchers[route.policy].remove(me)
