"""The activator process's parts, wired: routes, endpoint watches, proxy and admin listeners,
the upstream pool, pokes, and a graceful drain.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry

from scaler.activator.admin import AdminConnection, admin_pages
from scaler.activator.config import Route
from scaler.activator.endpoints import EndpointSource
from scaler.activator.observability import Metrics
from scaler.activator.poke import Poker
from scaler.activator.proxy import ClientConnection
from scaler.activator.routing import FAILED, RouteState
from scaler.activator.upstream import UpstreamPool

SWEEP_INTERVAL = 5.0
WATCH_RETRY = 1.0
UPSTREAM_ERROR_LOG_INTERVAL = 10.0


class _Quiet:
    def info(self, *args: object, **kwargs: object) -> None:
        pass

    warning = error = exception = info


class Activator:
    """One activator: call :meth:`start` on a running loop, then :meth:`drain` and
    :meth:`stop`."""

    def __init__(self, routes: Iterable[Route], source: EndpointSource, *,
                 registry: CollectorRegistry | None = None, daemon_urls: Iterable[str] = (),
                 log=None, connect_timeout: float = 5.0, upstream_idle_timeout: float = 30.0,
                 client_idle_timeout: float = 90.0, poke_timeout: float = 0.5,
                 clock=time.monotonic, wall=time.time) -> None:
        self.id = secrets.token_hex(6)
        self.routes = list(routes)
        self.source = source
        self.log = log or _Quiet()
        self._clock = clock
        self._wall = wall
        self.client_idle_timeout = client_idle_timeout
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.pool = UpstreamPool(connect_timeout=connect_timeout,
                                 idle_timeout=upstream_idle_timeout, clock=clock)
        self.poker = Poker(list(daemon_urls), activator_id=self.id, timeout=poke_timeout,
                           log=self.log, clock=clock, wall=wall,
                           count=lambda result: self.metrics.pokes.labels(result).inc())
        self.states: dict[str, RouteState] = {}
        self.hosts: dict[bytes, RouteState] = {}
        self.connections: set[ClientConnection] = set()
        self.unrouted = 0
        self.started_at = clock()
        self.draining = False
        self.port = 0
        self.admin_port = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task] = []
        self._watches: dict[str, asyncio.Task] = {}
        self._upstream_errors_logged: dict[str, float] = {}
        self.metrics.watch_routes(lambda: self.states.values(), lambda: self.unrouted)

    # -- used by the data plane -------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def route_for(self, host: bytes) -> RouteState | None:
        state = self.hosts.get(host)
        if state is None:
            name = host.strip().lower()
            if not name.startswith(b"["):
                name = name.rsplit(b":", 1)[0] if b":" in name else name
            elif b"]:" in name:
                name = name.rsplit(b":", 1)[0]
            state = self.hosts.get(name.rstrip(b"."))
        return state

    def log_upstream_failure(self, policy: str, reason: str) -> None:
        self.metrics.upstream_errors.labels(policy).inc()
        now = self._clock()
        if now - self._upstream_errors_logged.get(policy, -1e18) >= UPSTREAM_ERROR_LOG_INTERVAL:
            self._upstream_errors_logged[policy] = now
            self.log.warning("endpoint failing", policy=policy, reason=reason,
                             note=f"logged at most every {UPSTREAM_ERROR_LOG_INTERVAL:g}s; "
                                  "see scaler_activator_upstream_errors_total")

    def log_internal_error(self, exc: BaseException) -> None:
        self.log.error("internal error while parsing a request", exc_info=exc)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, listen: tuple[str, int] = ("0.0.0.0", 8080),
                    admin: tuple[str, int] | None = ("0.0.0.0", 9090)) -> Activator:
        loop = asyncio.get_running_loop()
        for route in self.routes:
            self._add_route(route)
        server = await loop.create_server(lambda: ClientConnection(self), listen[0], listen[1],
                                          backlog=4096, reuse_address=True)
        self._servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        if admin is not None:
            pages = admin_pages(stats=self.stats, registry=self.registry,
                                healthy=self.healthy, ready=self.ready)
            admin_server = await loop.create_server(lambda: AdminConnection(pages), admin[0],
                                                    admin[1], reuse_address=True)
            self._servers.append(admin_server)
            self.admin_port = admin_server.sockets[0].getsockname()[1]
        self._tasks.append(loop.create_task(self._sweep()))
        return self

    # -- routes: at start, and when the policies change ---------------------------------------
    def _add_route(self, route: Route) -> None:
        state = RouteState(route, call_later=asyncio.get_running_loop().call_later,
                           clock=self._clock, log=self.log,
                           on_zero_arrival=self._zero_arrival, on_released=self._released,
                           on_endpoints_removed=self.pool.drop)
        self.states[route.policy] = state
        for host in route.hosts:
            self.hosts[host.encode()] = state
        self._watches[route.policy] = asyncio.get_running_loop().create_task(
            self._watch(state))

    def set_routes(self, routes: Iterable[Route]) -> dict[str, list[str]]:
        """Apply a new set of routes (validated already): new ones start at zero and watch
        their endpoints; removed ones answer their held requests 503; changed limits and
        hosts apply to new arrivals; a changed Service or port watches anew, keeping the
        last ready set until the new watch delivers. Returns what changed, by kind."""
        routes = list(routes)
        new = {r.policy: r for r in routes}
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for policy in list(self.states):
            if policy not in new:
                state = self.states.pop(policy)
                self._watches.pop(policy).cancel()
                for waiter in state.take_held():
                    waiter.respond(503, f"scaler activator: policy {policy!r} was removed "
                                        "while this request was held; retry",
                                   outcome=FAILED, retry_after=1)
                changes["removed"].append(policy)
        for route in routes:
            state = self.states.get(route.policy)
            if state is None:
                self._add_route(route)
                changes["added"].append(route.policy)
            elif state.route != route:
                old, state.route = state.route, route
                if (old.namespace, old.service, old.port) != \
                        (route.namespace, route.service, route.port):
                    self._watches[route.policy].cancel()
                    self._watches[route.policy] = asyncio.get_running_loop().create_task(
                        self._watch(state))
                changes["changed"].append(route.policy)
        self.routes = routes
        self.hosts = {host.encode(): self.states[r.policy] for r in routes for host in r.hosts}
        return changes

    def spawn(self, coroutine) -> asyncio.Task:
        """Run a helper (e.g. daemon discovery) for the life of the activator."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.append(task)
        return task

    def _zero_arrival(self, state: RouteState) -> None:
        self.poker.poke(state)

    def _released(self, state: RouteState, waited: float) -> None:
        self.metrics.cold_start.labels(state.policy).observe(waited)

    async def _watch(self, state: RouteState) -> None:
        route = state.route
        while True:
            try:
                async for ready in self.source.watch(route):
                    state.set_endpoints(ready)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # noqa: BLE001 (a source's failure must not end routing)
                self.log.error("endpoint watch failed; keeping the last ready set",
                               policy=state.policy, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(WATCH_RETRY)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.pool.sweep()
            cutoff = self._clock() - self.client_idle_timeout
            for conn in list(self.connections):
                if conn.idle() and conn.last_active < cutoff:
                    conn.transport.close()

    def stats(self) -> dict:
        """The figures the daemons read every second (wire format: see the package doc)."""
        return {"activator": self.id, "sampled_at": round(self._wall(), 3),
                "uptime": round(self._clock() - self.started_at, 6),
                "proxy_port": self.port,
                "routes": {policy: state.snapshot() for policy, state in self.states.items()}}

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining: not taking new connections"
        waiting = [p for p, s in self.states.items() if not s.synced]
        if waiting:
            return False, f"endpoints not known yet for: {', '.join(sorted(waiting))}"
        return True, "ok"

    def in_flight(self) -> int:
        return sum(state.in_flight for state in self.states.values())

    async def drain(self, timeout: float) -> int:
        """Stop taking connections, let requests in flight finish (held ones included, for up
        to ``timeout``), answer 503 to those still held. Returns the requests cut short."""
        self.draining = True
        if self._servers:
            self._servers[0].close()
        for conn in list(self.connections):
            conn.closing = True
            if conn.idle():
                conn.transport.close()
        deadline = self._clock() + timeout
        while self.in_flight() and self._clock() < deadline:
            await asyncio.sleep(0.05)
        for state in self.states.values():
            for waiter in state.take_held():
                waiter.respond(503, "scaler activator: shutting down before an endpoint of "
                                    f"policy {state.policy!r} became ready; retry",
                               outcome=FAILED, retry_after=1)
        left = self.in_flight()
        await asyncio.sleep(0)
        return left

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        tasks = self._tasks + list(self._watches.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._watches.clear()
        self.poker.close()
        for conn in list(self.connections):
            conn.transport.abort()
        self.pool.close()
        for server in self._servers:
            await server.wait_closed()
