"""The proxy's data plane: client connections, and one :class:`Exchange` per request.

A :class:`ClientConnection` parses requests with httptools (llhttp) and queues them; the
first in the queue is active (HTTP/1.1 answers in order). Its Exchange resolves the route
by Host header, asks the route for an endpoint (now, later from the hold queue, or never:
503), takes a pooled upstream connection and streams: request head and body up (chunk by
chunk, flow-controlled, never the whole upload in memory), response head and body down.
A WebSocket (any 101 Switching Protocols) becomes a byte tunnel until either side closes.

Framing is re-done on each side: bodies are forwarded as they are parsed, with the
Content-Length kept when the sender gave one and chunked encoding otherwise (trailers are
dropped). Hop-by-hop headers stay on their hop; X-Forwarded-For gets the client's address
appended, X-Forwarded-Proto and X-Forwarded-Host are set when the client did not send them
(a proxy in front of the activator, the ingress, is trusted to have set them).
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from scaler.activator import http1
from scaler.activator.http1 import CRLF, HOP_BY_HOP, LAST_CHUNK, chunk, simple_response
from scaler.activator.routing import (CANCELLED, FAILED, HELD, HOLD, PROXIED, REJECT, REJECTED,
                                      TIMED_OUT, EndpointState, RouteState)

if TYPE_CHECKING:
    from scaler.activator.server import Activator
    from scaler.activator.upstream import UpstreamConnection

BODY_BUFFER_LIMIT = 64 * 1024     # request body kept while no upstream is attached yet
MAX_ATTEMPTS = 3                  # connect attempts per request (refused, timed out)

# Why the client connection's reading is paused (bits: any set keeps it paused).
PAUSE_BUFFER, PAUSE_UPSTREAM, PAUSE_UPGRADE = 1, 2, 4
LIVENESS_INTERVAL = 1.0           # how often a paused client is checked for having left
LINGER_SECONDS = 2.0              # how long a refused client may go on sending (nginx: 5 s)
TCP_ESTABLISHED = 1               # tcp_info.tcpi_state (linux/tcp_states.h)

# How a response body reaches the client.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = 0, 1, 2, 3


def peer_closed(transport: asyncio.Transport) -> bool:
    """True once the peer closed or reset the connection, read from the kernel's TCP state
    (a peek would see the unread data queued ahead of the close instead)."""
    raw = transport.get_extra_info("socket")
    if raw is None:
        return False
    sock = socket.socket(fileno=raw.fileno())
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_ESTABLISHED
    except OSError:
        return True
    finally:
        sock.detach()         # the fd stays the transport's


class ClientConnection(asyncio.Protocol):
    __slots__ = ("activator", "parser", "transport", "peer", "queue", "parsing", "url",
                 "headers", "in_head", "head_bytes", "paused", "write_paused", "tunnel", "upgrade_rest",
                 "last_active", "lost", "closing", "liveness", "lingering", "__weakref__")

    def __init__(self, activator: Activator) -> None:
        self.activator = activator
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = b""
        self.queue: deque[Exchange] = deque()
        self.parsing: Exchange | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.in_head = False
        self.head_bytes = 0
        self.paused = 0
        self.write_paused = False       # the client is behind: our buffer to it is full
        self.tunnel: Exchange | None = None
        self.upgrade_rest: bytes | None = None
        self.last_active = 0.0
        self.lost = False
        self.closing = False
        self.liveness: asyncio.TimerHandle | None = None
        self.lingering = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if peer else b""
        self.last_active = self.activator.now()
        self.activator.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return                  # refused and answered: what still arrives is dropped
        if self.tunnel is not None:
            self.tunnel.tunnel_to_upstream(data)
            return
        if self.upgrade_rest is not None:
            # Bytes after an upgrade request: they belong to the tunnel if the workload
            # agrees to switch, to the next request if it does not.
            self.upgrade_rest += data
            return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as upgrade:
            self.upgrade_rest = data[upgrade.args[0]:]
            self.pause(PAUSE_UPGRADE)
        except HttpParserError as exc:
            self.bad_request(exc)
            return
        if self.in_head:
            self.head_bytes += len(data)
            if self.head_bytes > http1.MAX_HEAD_BYTES:
                self.reply_and_close(431, "scaler activator: request head larger than "
                                          f"{http1.MAX_HEAD_BYTES // 1024} KiB")

    def eof_received(self) -> bool:
        if self.tunnel is not None:
            return self.tunnel.tunnel_client_eof()
        # A client that stops sending while its response is pending has gone away (HTTP
        # has no half-close): its requests are cancelled, the workload's work with them.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.liveness is not None:
            self.liveness.cancel()
        self.activator.connections.discard(self)
        exchanges = list(self.queue)
        self.queue.clear()
        self.parsing = None
        for exchange in exchanges:
            exchange.client_gone()

    def pause_writing(self) -> None:
        self.write_paused = True
        exchange = self.tunnel or (self.queue[0] if self.queue else None)
        if exchange is not None:
            exchange.client_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        exchange = self.tunnel or (self.queue[0] if self.queue else None)
        if exchange is not None:
            exchange.client_paused(False)

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        exchange = Exchange(self, parser.get_method(), self.url, self.headers,
                            parser.get_http_version() == "1.0", parser.should_keep_alive(),
                            parser.should_upgrade())
        self.headers = []
        self.parsing = exchange
        self.queue.append(exchange)
        if len(self.queue) == 1:
            exchange.start()

    def on_body(self, data: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_body(data)

    def on_message_complete(self) -> None:
        exchange, self.parsing = self.parsing, None
        if exchange is not None:
            exchange.request_complete()

    # -- for exchanges ----------------------------------------------------------------------
    def pause(self, reason: int) -> None:
        if not self.paused and not self.lost:
            self.transport.pause_reading()
            self.liveness = asyncio.get_running_loop().call_later(
                LIVENESS_INTERVAL, self._check_alive)
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and not self.lost:
            self.transport.resume_reading()
            if self.liveness is not None:
                self.liveness.cancel()
                self.liveness = None

    def _check_alive(self) -> None:
        """While reading is paused a client's close goes unseen; peek at the socket so a
        client that gave up still cancels its request (and the workload's work)."""
        self.liveness = None
        if self.lost or not self.paused:
            return
        if peer_closed(self.transport):
            self.transport.abort()
            return
        self.liveness = asyncio.get_running_loop().call_later(LIVENESS_INTERVAL,
                                                              self._check_alive)

    def exchange_done(self, exchange: Exchange, close: bool) -> None:
        """The active exchange wrote its whole response; start the next one, or close."""
        if self.lost:
            return
        if self.queue and self.queue[0] is exchange:
            self.queue.popleft()
        self.last_active = self.activator.now()
        if close or self.closing:
            self.transport.close()
            return
        if self.queue:
            asyncio.get_running_loop().call_soon(self.queue[0].start)
        rest, self.upgrade_rest = self.upgrade_rest, None
        if rest is not None:
            # The workload answered an upgrade request without switching: plain HTTP goes on.
            self.resume(PAUSE_UPGRADE)
            if rest:
                self.data_received(rest)

    def bad_request(self, exc: Exception) -> None:
        if exc.__context__ is not None and not isinstance(exc.__context__, HttpParserError):
            self.activator.log_internal_error(exc.__context__)
        if self.queue:
            self.transport.abort()     # mid-body garbage: nothing sensible can be answered
        else:
            self.reply_and_close(400, f"scaler activator: malformed request: {exc}")

    def reply_and_close(self, status: int, text: str) -> None:
        """Answer and close with a lingering close, as nginx does: a client that is still
        sending (an oversized head, a refused upload) would otherwise get a reset from our
        close before it reads the answer. Half-close, drop what still arrives, and close
        when the client does or after LINGER_SECONDS."""
        if self.lost or self.lingering:
            return
        self.transport.write(simple_response(status, text, close=True))
        self.lingering = True
        if self.paused:
            self.transport.resume_reading()      # drain, so the close finds nothing unread
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)

    def idle(self) -> bool:
        return not self.queue and self.tunnel is None and not self.in_head


class Exchange:
    """One request and its response, from arrival to the last byte (or the tunnel's end)."""

    __slots__ = ("client", "method", "url", "http10", "keep_alive", "upgrade", "host",
                 "route", "head", "body_framing", "buffer", "buffered", "request_done",
                 "upstream", "endpoint", "attempts", "was_held", "started", "gone", "done",
                 "response_framing", "response_started", "out", "interim",
                 "switching", "upgrade_header", "has_body", "client_eof", "upstream_eof_seen",
                 "until_eof")

    def __init__(self, client: ClientConnection, method: bytes, url: bytes,
                 headers: list[tuple[bytes, bytes]], http10: bool, keep_alive: bool,
                 upgrade: bool) -> None:
        self.client = client
        self.method = method
        self.url = url
        self.http10 = http10
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.request_done = False
        self.upstream: UpstreamConnection | None = None
        self.endpoint: EndpointState | None = None
        self.attempts = 0
        self.was_held = False
        self.started = False
        self.gone = False
        self.done = False
        self.response_framing = NO_BODY
        self.until_eof = False            # the workload's body ends when it closes
        self.response_started = False
        self.out: list[bytes] = []
        self.interim = False
        self.switching = False
        self.upgrade_header = b""
        self.client_eof = False
        self.upstream_eof_seen = False
        self.head = b""
        self.host = None
        self.body_framing = NO_BODY
        self.has_body = False
        self.route: RouteState | None = None
        self._read_headers(headers)
        self.request_done = not self.has_body     # llhttp reports its end right after
        if self.host is not None:
            self.route = client.activator.route_for(self.host)
            if self.route is not None:
                self.route.arrive()

    def _read_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Find the Host and framing; build the request head the workload will get."""
        lines = [b"%b %b HTTP/1.1" % (self.method, self.url)]
        forwarded_for = forwarded_proto = forwarded_host = None
        connection = b""
        length = None
        chunked = False
        codings = b""
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                if lname == b"connection":
                    connection += b"," + value
                elif lname == b"transfer-encoding":
                    codings = codings + b", " + value if codings else value
                    chunked = value.lower().rstrip().endswith(b"chunked")
                elif lname == b"upgrade":
                    self.upgrade_header = value
                continue
            if lname == b"host":
                self.host = value
            elif lname == b"content-length":
                length = value
            elif lname == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
                continue
            elif lname == b"x-forwarded-proto":
                forwarded_proto = value
            elif lname == b"x-forwarded-host":
                forwarded_host = value
            lines.append(name + b": " + value)
        if connection:
            # Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
            named = http1.connection_tokens(connection) - {b"close", b"keep-alive", b"upgrade"}
            if named:
                lines = [line for line in lines
                         if line.split(b":", 1)[0].lower() not in named or line is lines[0]]
        peer = self.client.peer
        lines.append(b"X-Forwarded-For: " + (forwarded_for + b", " + peer if forwarded_for
                                             else peer))
        if forwarded_proto is None:
            lines.append(b"X-Forwarded-Proto: http")
        if forwarded_host is None and self.host is not None:
            lines.append(b"X-Forwarded-Host: " + self.host)
        if chunked:
            # Re-chunked here; codings applied before chunked (gzip, ...) travel on.
            self.body_framing = CHUNKED
            self.has_body = True
            lines.append(b"Transfer-Encoding: " + codings)
        elif length is not None and length.strip() != b"0":
            self.body_framing = LENGTH
            self.has_body = True
        if self.upgrade and self.upgrade_header:
            lines.append(b"Connection: Upgrade")
            lines.append(b"Upgrade: " + self.upgrade_header)
        lines.append(b"")
        lines.append(b"")
        self.head = CRLF.join(lines)

    # -- request side -----------------------------------------------------------------------
    def start(self) -> None:
        """This request is the connection's active one: route it."""
        if self.started or self.gone:
            return
        self.started = True
        route = self.route
        if route is None:
            self._answer_unrouted()
            return
        if self.method == b"CONNECT":
            self.respond(405, "scaler activator: CONNECT is not supported (not a forward proxy)",
                         outcome=FAILED)
            return
        self._admit()

    def _admit(self) -> None:
        decision = self.route.admit(self)
        if decision is HOLD:
            self.was_held = True
        elif decision is REJECT:
            route = self.route.route
            self.respond(503, f"scaler activator: policy {route.policy!r} has no ready "
                              f"endpoint and already holds {route.max_pending} requests "
                              f"(maxPendingRequests){self._scaling_note()}; retry later",
                         outcome=REJECTED, retry_after=1)
        else:
            self.forward(decision)

    def _answer_unrouted(self) -> None:
        activator = self.client.activator
        activator.unrouted += 1
        if self.host is None:
            self.respond(400, "scaler activator: the request has no Host header, so it "
                              "cannot be routed to a policy", outcome=None)
        else:
            host = self.host.decode("latin-1")
            self.respond(404, f"scaler activator: no route for host {host!r}: no policy "
                              "lists it in activator.hosts", outcome=None)

    def request_body(self, data: bytes) -> None:
        if self.done:
            return
        if self.body_framing == CHUNKED:
            data = chunk(data)
        upstream = self.upstream
        if upstream is not None:
            upstream.write(data)
            return
        self.buffer.append(data)
        self.buffered += len(data)
        if self.buffered > BODY_BUFFER_LIMIT:
            self.client.pause(PAUSE_BUFFER)

    def request_complete(self) -> None:
        self.request_done = True
        if self.done:
            return
        if self.body_framing == CHUNKED:
            if self.upstream is not None:
                self.upstream.write(LAST_CHUNK)
            else:
                self.buffer.append(LAST_CHUNK)

    # -- routing callbacks (Waiter) ----------------------------------------------------------
    def forward(self, endpoint: EndpointState) -> None:
        self.endpoint = endpoint
        self.client.activator.pool.acquire(endpoint.endpoint, self)

    def hold_expired(self) -> None:
        route = self.route.route
        self.respond(504, f"scaler activator: policy {route.policy!r} had no ready endpoint "
                          f"within its timeout ({route.timeout:g}s){self._scaling_note()}; "
                          "retry later",
                     outcome=TIMED_OUT, retry_after=1)

    def _scaling_note(self) -> str:
        """Why the workload may not be coming: the daemons could not be told."""
        why = self.client.activator.poker.why_not_scaling()
        return f": {why}" if why else ""

    # -- upstream connection ----------------------------------------------------------------
    def attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        if self.client.write_paused:
            # Still behind on the previous response: this one waits in the workload's socket.
            conn.transport.pause_reading()
        if self.buffer:
            conn.transport.write(self.head + b"".join(self.buffer))
            self.buffer = []
            self.buffered = 0
            self.client.resume(PAUSE_BUFFER)
        else:
            conn.transport.write(self.head)

    def connect_failed(self, reason: str) -> None:
        self._leave_endpoint()
        if self.gone or self.done:
            return
        self.client.activator.log_upstream_failure(self.route.policy, reason)
        self.attempts += 1
        if self.attempts < MAX_ATTEMPTS:
            self._admit()      # another endpoint, or held again if none is left
            return
        self.respond(502, f"scaler activator: could not reach an endpoint of policy "
                          f"{self.route.policy!r} ({reason})", outcome=FAILED)

    def _leave_endpoint(self) -> None:
        if self.endpoint is not None:
            self.endpoint.in_flight -= 1
            self.endpoint = None

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self.client.pause(PAUSE_UPSTREAM)
        else:
            self.client.resume(PAUSE_UPSTREAM)

    def client_paused(self, paused: bool) -> None:
        upstream = self.upstream
        if upstream is not None and not upstream.closed:
            if paused:
                upstream.transport.pause_reading()
            else:
                upstream.transport.resume_reading()

    # -- response side ----------------------------------------------------------------------
    def on_response_head(self, status: int, reason: bytes, headers: list) -> None:
        if status < 200 and status != 101:
            # 100 Continue, 103 Early Hints: pass on to HTTP/1.1 clients, then the real one.
            self.interim = True
            if not self.http10:
                self.out.append(b"HTTP/1.1 %d %b\r\n%b\r\n" % (
                    status, reason, b"".join(n + b": " + v + CRLF for n, v in headers
                                             if n.lower() not in HOP_BY_HOP)))
            return
        self.response_started = True
        lines = [b"HTTP/1.1 %d %b" % (status, reason)]
        length = None
        codings = b""
        upgrade = self.upgrade_header
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                if lname == b"transfer-encoding":
                    codings = codings + b", " + value if codings else value
                elif lname == b"upgrade":
                    upgrade = value
                continue
            if lname == b"content-length":
                length = value
            lines.append(name + b": " + value)
        if status == 101:
            self.switching = True
            lines.append(b"Connection: Upgrade")
            if upgrade:
                lines.append(b"Upgrade: " + upgrade)
        elif self.method == b"HEAD" or status == 204 or status == 304:
            self.response_framing = NO_BODY
        elif length is not None:
            self.response_framing = LENGTH
        else:
            # Chunked, or delimited by the workload closing: re-framed for the client.
            self.until_eof = not codings.lower().rstrip().endswith(b"chunked")
            if self.http10:
                self.response_framing = UNTIL_CLOSE
                self.keep_alive = False
            else:
                # Transfer-codings the workload applied before chunked travel on.
                self.response_framing = CHUNKED
                if codings and self.until_eof:
                    codings += b", chunked"
                lines.append(b"Transfer-Encoding: " + (codings or b"chunked"))
        if status != 101:
            if not self.keep_alive or self.client.closing:
                lines.append(b"Connection: close")
            elif self.http10:
                lines.append(b"Connection: keep-alive")
        lines.append(b"")
        lines.append(b"")
        self.out.append(CRLF.join(lines))
        if self.method == b"HEAD" and self.upstream is not None:
            # The response ends with its head, which llhttp cannot know (it would wait for
            # the Content-Length's body). Some servers send that body anyway, so the
            # connection is not trusted with another request.
            self.upstream.fresh_parser()
            self._complete(False)

    def on_response_body(self, data: bytes) -> None:
        if self.response_framing == CHUNKED:
            self.out.append(chunk(data))
        else:
            self.out.append(data)

    def on_response_complete(self) -> None:
        if self.done:
            return
        if self.interim:
            self.interim = False
            return
        if self.switching:
            self.start_tunnel()
            return
        upstream = self.upstream
        self._complete(upstream is not None and upstream.keep_alive())

    def _complete(self, reusable: bool) -> None:
        if self.response_framing == CHUNKED:
            self.out.append(LAST_CHUNK)
        self.flush_client()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if not self.request_done:
                upstream.abort()          # it answered before the upload ended: cut it off
            elif (reusable and not self.until_eof
                  and not (self.endpoint is not None and self.endpoint.removed)):
                self.client.activator.pool.release(upstream)
            else:
                upstream.exchange = None
                if not upstream.closed:
                    upstream.transport.close()
        self._finish(HELD if self.was_held else PROXIED,
                     close=not self.keep_alive or not self.request_done)

    def flush_client(self) -> None:
        out = self.out
        if out:
            if not self.gone:
                self.client.transport.write(b"".join(out) if len(out) > 1 else out[0])
            out.clear()

    def upstream_eof(self) -> None:
        """The workload closed its side: the end of a body delimited by the close."""
        if self.response_started and self.until_eof and not self.done:
            self.on_response_complete()

    def upstream_broken(self, reason: str) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        self._upstream_failed(upstream, reason)

    def upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        if self.done:
            return
        if self.switching and self.response_started:
            self.end_tunnel()
            return
        if self.response_started and self.until_eof:
            self.upstream = None
            self._complete(False)
            return
        self.upstream = None
        if (not self.response_started and conn.reused and not conn.got_bytes
                and not self.has_body and not self.gone):
            # A kept-alive connection the workload closed just as it was reused: nothing
            # reached the workload's handler, so a fresh connection is safe.
            endpoint = self.endpoint
            if endpoint is not None:
                self.client.activator.pool.acquire(endpoint.endpoint, self, fresh=True)
                return
        self._upstream_failed(conn, f"{conn.endpoint} closed the connection"
                                    + (f" ({exc})" if exc else ""))

    def _upstream_failed(self, conn, reason: str) -> None:
        if self.done or self.gone:
            return
        self.client.activator.log_upstream_failure(self.route.policy, reason)
        if self.response_started:
            # Part of the response is out: the only honest signal left is a cut connection.
            self.flush_client()
            self.client.transport.abort()
            self._finish(FAILED, close=True)
        else:
            self.out.clear()
            self.respond(502, f"scaler activator: the endpoint of policy "
                              f"{self.route.policy!r} failed: {reason}", outcome=FAILED)

    # -- WebSocket (and any 101) tunnel ------------------------------------------------------
    def tunnel_to_client(self, data: bytes) -> None:
        if not self.gone:
            self.client.transport.write(data)

    def tunnel_to_upstream(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is not None:
            upstream.write(data)

    def tunnel_client_eof(self) -> bool:
        self.client_eof = True
        upstream = self.upstream
        if upstream is not None and not upstream.closed and upstream.transport.can_write_eof():
            upstream.transport.write_eof()
        if self.upstream_eof_seen:
            self.end_tunnel()
            return False
        return True

    def tunnel_upstream_eof(self) -> bool:
        self.upstream_eof_seen = True
        if not self.gone and self.client.transport.can_write_eof():
            self.client.transport.write_eof()
        if self.client_eof:
            self.end_tunnel()
            return False
        return True

    def start_tunnel(self) -> None:
        client = self.client
        client.tunnel = self
        if self.upstream is not None:
            self.upstream.tunnel = True
        rest, client.upgrade_rest = client.upgrade_rest, None
        client.resume(PAUSE_UPGRADE)
        if rest:
            self.tunnel_to_upstream(rest)

    def end_tunnel(self) -> None:
        if self.done:
            return
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.exchange = None
            if not upstream.closed:
                upstream.transport.close()
        if not self.gone:
            self.client.tunnel = None
        self._finish(HELD if self.was_held else PROXIED, close=True)

    # -- endings ----------------------------------------------------------------------------
    def respond(self, status: int, text: str, *, outcome: str | None,
                retry_after: int | None = None) -> None:
        """Answer on the activator's own behalf (the workload never saw this request)."""
        close = not self.keep_alive or not self.request_done or self.client.closing
        if not self.gone:
            self.client.transport.write(simple_response(
                status, text, close=close, retry_after=retry_after,
                head_only=self.method == b"HEAD", http10=self.http10,
                keep_alive_10=self.keep_alive))
        self._finish(outcome, close=close)

    def client_gone(self) -> None:
        if self.done:
            return
        self.gone = True
        route = self.route
        if route is not None:
            route.forget(self)
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()       # the workload sees its request cancelled
        self._finish(CANCELLED)

    def _finish(self, outcome: str | None, close: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self._leave_endpoint()
        if self.route is not None:
            self.route.depart(outcome)
        self.buffer = []
        if not self.gone:
            # Done with its workload connection, which can no longer hold the client up.
            self.client.resume(PAUSE_BUFFER | PAUSE_UPSTREAM)
            self.client.exchange_done(self, close)
