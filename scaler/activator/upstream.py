"""Connections to the workload's endpoints: a keep-alive pool, and the response parser.

One :class:`UpstreamConnection` carries one request at a time (HTTP/1.1, no pipelining
upstream). Between requests it waits in the pool, most recently used first, and is closed
after ``idle_timeout`` unused, when its endpoint leaves the ready set, or as soon as the
workload closes it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from scaler.activator.endpoints import Endpoint

if TYPE_CHECKING:
    from scaler.activator.proxy import Exchange


class UpstreamConnection(asyncio.Protocol):
    __slots__ = ("pool", "endpoint", "transport", "parser", "exchange", "reused", "idle_since",
                 "closed", "tunnel", "headers", "reason", "got_bytes", "__weakref__")

    def __init__(self, pool: UpstreamPool, endpoint: Endpoint) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.reused = False
        self.idle_since = 0.0
        self.closed = False
        self.tunnel = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.got_bytes = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.transport.close()     # nothing was asked: a confused or closing server
            return
        if self.tunnel:
            exchange.tunnel_to_client(data)
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as upgrade:
            self.tunnel = True
            exchange.flush_client()
            rest = data[upgrade.args[0]:]
            if rest:
                exchange.tunnel_to_client(rest)
            return
        except HttpParserError as exc:
            exchange.upstream_broken(f"invalid response from {self.endpoint}: {exc}")
            return
        exchange.flush_client()

    def eof_received(self) -> bool:
        exchange = self.exchange
        if exchange is not None:
            if self.tunnel:
                return exchange.tunnel_upstream_eof()
            exchange.upstream_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost(self, exc)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_paused(False)

    # -- httptools callbacks ----------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers, self.headers = self.headers, []
        self.exchange.on_response_head(self.parser.get_status_code(), self.reason, headers)

    def on_body(self, data: bytes) -> None:
        self.exchange.on_response_body(data)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.on_response_complete()

    # -- for the exchange -------------------------------------------------------------------
    def keep_alive(self) -> bool:
        return self.parser.should_keep_alive()

    def fresh_parser(self) -> None:
        """After a response without a body the parser cannot know of (HEAD): start anew."""
        self.parser = HttpResponseParser(self)

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        self.exchange = None
        if not self.closed and self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections per endpoint; connects on demand, with a timeout."""

    def __init__(self, *, connect_timeout: float = 5.0, idle_timeout: float = 30.0,
                 max_idle_per_endpoint: int = 256, clock=time.monotonic) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle_per_endpoint
        self._clock = clock
        self._idle: dict[Endpoint, list[UpstreamConnection]] = {}
        self._connecting: set[asyncio.Task] = set()
        self._waiting: dict[Endpoint, deque[Exchange]] = {}
        self.connects = 0

    def acquire(self, endpoint: Endpoint, exchange: Exchange, *, fresh: bool = False) -> None:
        """Hand ``exchange`` a connection to ``endpoint``: an idle one now, or the next one
        that connects. New connections go to waiting exchanges oldest first, so requests
        released together reach the endpoint in the order they arrived."""
        idle = self._idle.get(endpoint)
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                conn.got_bytes = False
                conn.exchange = exchange
                exchange.attach(conn)
                return
        waiting = self._waiting.get(endpoint)
        if waiting is None:
            waiting = self._waiting[endpoint] = deque()
        waiting.append(exchange)
        task = asyncio.get_running_loop().create_task(self._connect(endpoint))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    def _next_waiting(self, endpoint: Endpoint) -> Exchange | None:
        waiting = self._waiting.get(endpoint)
        while waiting:
            exchange = waiting.popleft()
            if not exchange.gone and not exchange.done:
                return exchange
        self._waiting.pop(endpoint, None)
        return None

    async def _connect(self, endpoint: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        self.connects += 1
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self, endpoint),
                                       endpoint.host, endpoint.port),
                self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            reason = ("connect timed out" if isinstance(exc, TimeoutError)
                      else exc.strerror or type(exc).__name__)
            exchange = self._next_waiting(endpoint)
            if exchange is not None:
                exchange.connect_failed(f"{endpoint}: {reason}")
            return
        exchange = self._next_waiting(endpoint)
        if exchange is None:
            self.release(conn)      # its request went away meanwhile: keep it for the next
            return
        conn.exchange = exchange
        exchange.attach(conn)

    def release(self, conn: UpstreamConnection) -> None:
        """The exchange is done with ``conn`` and its last response was complete."""
        conn.exchange = None
        if conn.closed:
            return
        if not conn.transport.is_reading():
            # Its response ended while the client was behind (reading paused for it); the
            # next request on it must be answered, and an idle close must be seen.
            conn.transport.resume_reading()
        idle = self._idle.setdefault(conn.endpoint, [])
        if len(idle) >= self.max_idle:
            conn.transport.close()
            return
        conn.idle_since = self._clock()
        idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.endpoint)
        if idle and conn in idle:
            idle.remove(conn)

    def drop(self, endpoints) -> None:
        """Endpoints left the ready set: close their idle connections (busy ones finish, and
        are not kept)."""
        for endpoint in endpoints:
            for conn in self._idle.pop(endpoint, ()):
                conn.transport.close()

    def sweep(self) -> int:
        """Close connections idle longer than ``idle_timeout``; returns how many."""
        cutoff = self._clock() - self.idle_timeout
        closed = 0
        for endpoint, idle in list(self._idle.items()):
            keep = [c for c in idle if c.idle_since > cutoff and not c.closed]
            for conn in idle:
                if conn.idle_since <= cutoff and not conn.closed:
                    conn.transport.close()
                    closed += 1
            if keep:
                self._idle[endpoint] = keep
            else:
                del self._idle[endpoint]
        return closed

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        for idle in self._idle.values():
            for conn in idle:
                conn.transport.close()
        self._idle.clear()
