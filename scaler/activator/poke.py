"""Pokes: telling every daemon at once that a request arrived at a route at zero.

Fire and forget, off the request path: :meth:`Poker.poke` only schedules. Per daemon and
route, at most one poke is in flight; more arrivals meanwhile, or within ``interval`` of the
last one, are coalesced into one more poke when the interval is over (if the route still
holds requests). Each poke is one short HTTP/1.1 POST with a timeout; an unreachable daemon
is logged when it becomes unreachable and when it answers again, not per poke.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from scaler.activator.routing import RouteState

POKE_PATH = "/v1/poke"


class DaemonURL:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url!r} is not an http://HOST[:PORT] URL")
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path.rstrip("/") or "") + POKE_PATH
        self.host_header = parts.netloc


class Poker:
    def __init__(self, daemons: list[str], *, activator_id: str, timeout: float = 0.5,
                 interval: float = 1.0, log=None, count: Callable[[str], None] | None = None,
                 clock=time.monotonic, wall=time.time) -> None:
        self.daemons = [DaemonURL(url) for url in daemons]
        self.activator_id = activator_id
        self.timeout = timeout
        self.interval = interval
        self._log = log
        self._count = count or (lambda result: None)
        self._clock = clock
        self._wall = wall
        self._busy: set[tuple[str, str]] = set()          # (daemon, policy) in flight
        self._last: dict[tuple[str, str], float] = {}     # when the last poke went
        self._again: dict[tuple[str, str], RouteState] = {}
        self._down: set[str] = set()
        self._reasons: dict[str, str] = {}                # why each daemon in _down is
        self._tasks: set[asyncio.Task] = set()
        self.sent = 0

    def set_daemons(self, urls: list[str]) -> None:
        """The daemons to poke from now on (discovery found them, or lost some)."""
        daemons = []
        for url in urls:
            try:
                daemons.append(DaemonURL(url))
            except ValueError as exc:
                if self._log:
                    self._log.warning("daemon address ignored", url=url, reason=str(exc))
        before = {d.url for d in self.daemons}
        self.daemons = daemons
        now = {d.url for d in daemons}
        self._down &= now
        if now != before and self._log:
            self._log.info("daemons to poke", daemons=sorted(now))

    def why_not_scaling(self) -> str:
        """Why held requests may wait in vain, for the activator's own 503/504 answers:
        no daemon to poke, or none answered its last poke. Empty when a daemon answered."""
        if not self.daemons:
            return "no daemon is configured or discovered to poke"
        if all(d.url in self._down for d in self.daemons):
            return "no daemon answered its last poke (" + "; ".join(
                f"{d.url}: {self._reasons.get(d.url, 'unreachable')}"
                for d in self.daemons) + ")"
        return ""

    def poke(self, route: RouteState) -> None:
        """A request arrived at ``route`` with no ready endpoint."""
        for daemon in self.daemons:
            key = (daemon.url, route.policy)
            if key in self._busy or key in self._again:
                self._again.setdefault(key, route)
                continue
            wait = self._last.get(key, -1e18) + self.interval - self._clock()
            if wait > 0:
                self._again[key] = route
                asyncio.get_running_loop().call_later(wait, self._retry, daemon, key)
                continue
            self._start(daemon, key, route)

    def _retry(self, daemon: DaemonURL, key: tuple[str, str]) -> None:
        if key in self._busy:
            return                                       # _done will come back here
        route = self._again.pop(key, None)
        if route is not None and route.pending:
            self._start(daemon, key, route)

    def _start(self, daemon: DaemonURL, key: tuple[str, str], route: RouteState) -> None:
        self._busy.add(key)
        self._last[key] = self._clock()
        body = json.dumps({
            "activator": self.activator_id, "policy": route.policy,
            "namespace": route.route.namespace, "pending": route.pending,
            "in_flight": route.in_flight, "sent_at": round(self._wall(), 3)},
            separators=(",", ":")).encode()
        task = asyncio.get_running_loop().create_task(self._send(daemon, body))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, daemon, key))

    async def _send(self, daemon: DaemonURL, body: bytes) -> int:
        request = (f"POST {daemon.path} HTTP/1.1\r\nHost: {daemon.host_header}\r\n"
                   "Content-Type: application/json\r\nConnection: close\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body

        async def exchange() -> int:
            reader, writer = await asyncio.open_connection(daemon.host, daemon.port)
            try:
                writer.write(request)
                status_line = await reader.readline()
                parts = status_line.split()
                if len(parts) < 2 or not parts[1].isdigit():
                    raise ConnectionError(f"not an HTTP answer: {status_line[:40]!r}")
                return int(parts[1])
            finally:
                writer.close()

        return await asyncio.wait_for(exchange(), self.timeout)

    def _done(self, task: asyncio.Task, daemon: DaemonURL, key: tuple[str, str]) -> None:
        self._tasks.discard(task)
        self._busy.discard(key)
        if task.cancelled():
            return
        exc = task.exception()
        ok = exc is None and 200 <= task.result() < 300
        self.sent += 1
        self._count("sent" if ok else "failed")
        if ok and daemon.url in self._down:
            self._down.discard(daemon.url)
            self._reasons.pop(daemon.url, None)
            if self._log:
                self._log.info("daemon reachable again", daemon=daemon.url)
        elif not ok:
            reason = (f"HTTP {task.result()}" if exc is None else
                      "timed out" if isinstance(exc, asyncio.TimeoutError)
                      else f"{type(exc).__name__}: {exc}")
            self._reasons[daemon.url] = reason
        if not ok and daemon.url not in self._down:
            self._down.add(daemon.url)
            if self._log:
                self._log.warning("daemon unreachable: held requests wait for its next "
                                  "metric read", daemon=daemon.url, reason=reason)
        if key in self._again:
            wait = self._last[key] + self.interval - self._clock()
            asyncio.get_running_loop().call_later(max(0.0, wait), self._retry, daemon, key)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
