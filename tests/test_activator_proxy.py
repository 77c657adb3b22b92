"""Pass-through: what a client sends reaches the workload, and what the workload answers
reaches the client — methods, headers, bodies streamed both ways, chunked encoding,
WebSocket tunnels, cancellation. Real aiohttp backends, real clients, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import socket
import struct
import time

import aiohttp
import pytest

from support.activator import ActivatorThread, route
from support.backends import Backend


@pytest.fixture(scope="module")
def backend():
    with Backend("b1") as b:
        yield b


@pytest.fixture(scope="module")
def activator(backend):
    with ActivatorThread([route("app", hosts=["app.test", "127.0.0.1"]),
                          route("dead", hosts=["dead.test"])],
                         {"app": [backend.address]}) as a:
        yield a


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        part = sock.recv(65536)
        if not part:
            return data
        data += part


def read_until(sock: socket.socket, marker: bytes, data: bytes = b"") -> bytes:
    while marker not in data:
        part = sock.recv(65536)
        if not part:
            raise AssertionError(f"closed before {marker!r}: {data[:200]!r}")
        data += part
    return data


def echo(body: bytes) -> dict:
    return json.loads(body)


def header(seen: dict, name: str) -> list[str]:
    return [v for k, v in seen["headers"] if k.lower() == name.lower()]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_paths_queries_and_bodies_pass_through(activator, method):
    body = None if method in ("GET", "OPTIONS") else os.urandom(3000)
    status, _, raw = activator.request(method, "/echo/a%20b/c?x=1&y=%2F", body=body)
    assert status == 200
    seen = echo(raw)
    assert (seen["method"], seen["target"]) == (method, "/echo/a%20b/c?x=1&y=%2F")
    assert seen["body_bytes"] == len(body or b"")
    assert seen["body_sha256"] == hashlib.sha256(body or b"").hexdigest()


def test_forwarded_headers_are_added_and_hop_by_hop_headers_stay_on_their_hop(activator):
    status, headers, raw = activator.get("/echo", host="App.Test:8080", headers={
        "X-Forwarded-For": "203.0.113.9", "X-Custom": "kept", "Keep-Alive": "timeout=9",
        "Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "dropped", "TE": "trailers",
        "Proxy-Authorization": "Basic eA==", "Authorization": "Bearer kept"})
    assert status == 200
    seen = echo(raw)
    assert header(seen, "Host") == ["App.Test:8080"]
    assert header(seen, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    assert header(seen, "X-Forwarded-Proto") == ["http"]
    assert header(seen, "X-Forwarded-Host") == ["App.Test:8080"]
    assert header(seen, "X-Custom") == ["kept"] and header(seen, "Authorization") == [
        "Bearer kept"]
    for gone in ("Keep-Alive", "X-Secret-Hop", "TE", "Proxy-Authorization", "Connection"):
        assert header(seen, gone) == [], gone
    # ... and on the way back: the workload's Keep-Alive stays between it and the activator.
    assert headers["X-Custom-Answer"] == "yes" and "Keep-Alive" not in headers
    assert int(headers["Content-Length"]) == len(raw)


def test_forwarded_proto_and_host_from_a_proxy_in_front_are_kept(activator):
    seen = echo(activator.get("/echo", headers={"X-Forwarded-Proto": "https",
                                                "X-Forwarded-Host": "shop.example"})[2])
    assert header(seen, "X-Forwarded-Proto") == ["https"]
    assert header(seen, "X-Forwarded-Host") == ["shop.example"]


def test_an_unknown_host_gets_404_with_a_clear_body(activator):
    status, headers, body = activator.get("/echo", host="nobody.test")
    assert status == 404
    assert body == (b"scaler activator: no route for host 'nobody.test': no policy lists it "
                    b"in activator.hosts\n")
    assert activator.sample("scaler_activator_unrouted_requests_total") >= 1


def test_a_request_without_host_gets_400(activator):
    sock = connect(activator.port)
    sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"the request has no Host header, so it cannot be routed to a "
                           b"policy\n")


def test_a_large_upload_streams_the_workload_sees_bytes_before_the_upload_ends(activator,
                                                                                  backend):
    total = 64 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    backend.first_body_at = None
    backend.upload_chunks = 0
    sock = connect(activator.port)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n"
                 % total + block)
    deadline = time.monotonic() + 10
    while backend.first_body_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.first_body_at is not None, "the workload saw nothing of the upload yet"
    for _ in range(total // len(block) - 1):
        sock.sendall(block)
    answer = read_until(sock, b"}")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body) == {"bytes": total, "sha256": hashlib.sha256(block * 64).hexdigest()}
    assert backend.upload_chunks > 64     # it arrived in pieces, not as one buffered blob


def test_a_chunked_upload_arrives_whole_and_chunked(activator):
    parts = [os.urandom(n) for n in (1, 4096, 70000, 3)]
    conn = http.client.HTTPConnection("127.0.0.1", activator.port, timeout=10)
    conn.request("POST", "/echo", body=iter(parts), encode_chunked=True,
                 headers={"Host": "app.test", "Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    seen = echo(response.read())
    assert response.status == 200
    assert seen["body_bytes"] == sum(map(len, parts))
    assert seen["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert header(seen, "Transfer-Encoding") == ["chunked"]
    assert header(seen, "Content-Length") == []


def test_a_chunked_response_streams_chunk_by_chunk(activator):
    sock = connect(activator.port)
    started = time.monotonic()
    sock.sendall(b"GET /chunked?n=5&delay=0.2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    first = read_until(sock, b"chunk 0\n")
    first_after = time.monotonic() - started
    rest = read_until(sock, b"\r\n0\r\n\r\n", first)
    total_after = time.monotonic() - started
    assert b"Transfer-Encoding: chunked" in rest.split(b"\r\n\r\n")[0]
    assert b"chunk 4\n" in rest
    assert first_after < 0.5 and total_after >= 0.8   # the first chunk did not wait for the last


def test_a_large_download_with_content_length(activator):
    status, headers, body = activator.get("/bytes?n=20000000", timeout=30)
    assert status == 200 and len(body) == 20_000_000 == int(headers["Content-Length"])


def test_head_204_and_304_have_no_body_and_keep_the_connection_usable(activator):
    conn = http.client.HTTPConnection("127.0.0.1", activator.port, timeout=10)
    headers = {"Host": "app.test"}
    answers = []
    for method, path in [("HEAD", "/echo"), ("GET", "/status?code=204"),
                         ("GET", "/status?code=304"), ("HEAD", "/bytes?n=5"),
                         ("GET", "/echo")]:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        answers.append((response.status, response.read()[:10], response.getheader(
            "Content-Length")))
    assert [a[0] for a in answers] == [200, 204, 304, 200, 200]
    assert [a[1] for a in answers[:4]] == [b""] * 4
    assert answers[3][2] == "5"                 # HEAD keeps the Content-Length it would have
    assert answers[4][1].startswith(b'{"method"')


def test_keep_alive_connections_to_the_workload_are_reused(activator):
    before = activator.activator.pool.connects
    conn = http.client.HTTPConnection("127.0.0.1", activator.port, timeout=10)
    for _ in range(20):
        conn.request("GET", "/id", headers={"Host": "app.test"})
        assert conn.getresponse().read() == b"b1"
    assert activator.activator.pool.connects - before <= 1


def test_pipelined_requests_are_answered_in_order(activator):
    sock = connect(activator.port)
    sock.sendall(b"GET /chunked?n=2&delay=0.1 HTTP/1.1\r\nHost: app.test\r\n\r\n"
                 b"GET /id HTTP/1.1\r\nHost: app.test\r\n\r\n"
                 b"GET /echo HTTP/1.1\r\nHost: nobody.test\r\nConnection: close\r\n\r\n")
    answer = read_all(sock)
    assert answer.count(b"HTTP/1.1 ") == 3
    first, second, third = (answer.index(b"chunk 1"), answer.index(b"\r\n\r\nb1"),
                            answer.index(b"HTTP/1.1 404"))
    assert first < second < third


def test_an_http_1_0_client_gets_the_body_delimited_by_the_close(activator):
    sock = connect(activator.port)
    sock.sendall(b"GET /chunked?n=3 HTTP/1.0\r\nHost: app.test\r\n\r\n")
    head, body = read_all(sock).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"


def test_expect_100_continue_is_answered_by_the_workload(activator):
    sock = connect(activator.port)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    interim = read_until(sock, b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
    sock.sendall(b"hello")
    answer = read_until(sock, b'"backend": "b1"}', interim)
    assert b"HTTP/1.1 200 OK" in answer and b'"body_bytes": 5' in answer


def test_websocket_upgrades_become_a_tunnel(activator):
    async def talk():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{activator.port}/ws",
                                          headers={"Host": "app.test"}) as ws:
                await ws.send_str("hello")
                text = await ws.receive_str(timeout=5)
                await ws.send_bytes(b"\x00\x01" * 40000)
                data = await ws.receive_bytes(timeout=5)
                in_flight = activator.route_stats()["in_flight"]
                return text, data, in_flight

    text, data, in_flight = asyncio.run(talk())
    assert text == "echo: hello" and data == b"\x00\x01" * 40000
    assert in_flight == 1          # an open WebSocket is a request in flight
    activator.wait_for(lambda: activator.route_stats()["in_flight"] == 0, what="tunnel closed")


def test_a_client_that_goes_away_cancels_its_request_upstream(activator, backend):
    backend.close_gate()
    seen, cancelled = backend.gate_seen, backend.gate_cancelled
    before = activator.sample("scaler_activator_requests_total", policy="app",
                              outcome="cancelled") or 0
    sock = connect(activator.port)
    sock.sendall(b"GET /gate HTTP/1.1\r\nHost: app.test\r\n\r\n")
    activator.wait_for(lambda: backend.gate_seen == seen + 1, what="request at the backend")
    assert activator.route_stats()["in_flight"] == 1
    sock.close()
    activator.wait_for(lambda: backend.gate_cancelled == cancelled + 1,
                       what="the backend's handler cancelled")
    assert activator.route_stats()["in_flight"] == 0
    assert activator.sample("scaler_activator_requests_total", policy="app",
                            outcome="cancelled") == before + 1
    backend.open_gate()


def test_a_malformed_request_gets_400_and_the_connection_closes(activator):
    sock = connect(activator.port)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost app.test\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 400 Bad Request")


def test_an_oversized_request_head_gets_431(activator):
    sock = connect(activator.port)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n")
    try:
        for _ in range(100):
            sock.sendall(b"X-Filler: " + b"y" * 1000 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert read_all(sock).startswith(b"HTTP/1.1 431 Request Header Fields Too Large")


def test_connect_refused_tries_another_endpoint(backend):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()                                  # nothing listens there now
    with ActivatorThread([route("app")], {"app": [f"127.0.0.1:{dead_port}",
                                                  backend.address]}) as a:
        statuses = [a.get("/id")[0] for _ in range(10)]
        assert statuses == [200] * 10
        assert a.sample("scaler_activator_upstream_errors_total", policy="app") >= 1


def test_no_reachable_endpoint_gives_502_with_the_reason():
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    with ActivatorThread([route("app")], {"app": [f"127.0.0.1:{dead_port}"]}) as a:
        status, _, body = a.get("/id")
        assert status == 502
        assert body.startswith(b"scaler activator: could not reach an endpoint of policy 'app' "
                               b"(127.0.0.1:%d: " % dead_port)
        assert a.sample("scaler_activator_requests_total", policy="app",
                        outcome="failed") == 1
        assert a.route_stats()["in_flight"] == 0
        assert len(a.log.named("endpoint failing")) == 1


def test_a_restarted_workload_is_reached_again_through_fresh_connections():
    with Backend("first") as first:
        port = first.port
        with ActivatorThread([route("app")], {"app": [first.address]}) as a:
            assert a.get("/id")[2] == b"first"
            first.stop()
            with Backend("second", port=port):
                assert [a.get("/id")[2] for _ in range(3)] == [b"second"] * 3


def test_a_request_with_both_content_length_and_chunked_is_refused(activator, backend):
    hits = backend.hits
    sock = connect(activator.port)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 400 Bad Request")
    assert backend.hits == hits              # nothing smuggled through


def test_an_open_websocket_counts_until_closed_and_ends_as_proxied(activator):
    before = activator.sample("scaler_activator_requests_total", policy="app",
                              outcome="proxied")

    async def talk():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{activator.port}/ws",
                                          headers={"Host": "app.test"}) as ws:
                await ws.send_str("x")
                await ws.receive_str(timeout=5)

    asyncio.run(talk())
    activator.wait_for(lambda: activator.route_stats()["in_flight"] == 0, what="tunnel closed")
    assert activator.sample("scaler_activator_requests_total", policy="app",
                            outcome="proxied") == before + 1


def raw_route(raw) -> ActivatorThread:
    return ActivatorThread([route("app")], {"app": [raw.address]})


def test_transfer_codings_before_chunked_travel_on_and_the_body_is_re_chunked():
    from support.backends import RawBackend

    def reply(request: bytes):
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n", False)

    with RawBackend(reply, read_body=len(b"2\r\nhi\r\n0\r\n\r\n")) as raw, raw_route(raw) as a:
        sock = connect(a.port)
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked"
                     b"\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        answer = read_until(sock, b"0\r\n\r\n")
        head, body = answer.split(b"\r\n\r\n", 1)
        assert b"Transfer-Encoding: gzip, chunked" in head
        assert body == b"3\r\nabc\r\n0\r\n\r\n"
        sent = raw.received[0]
        assert b"\r\nTransfer-Encoding: gzip, chunked\r\n" in sent
        assert sent.endswith(b"\r\n\r\n2\r\nhi\r\n0\r\n\r\n")


def test_a_body_delimited_by_the_workload_closing_reaches_the_client_chunked():
    from support.backends import RawBackend

    with RawBackend(lambda request: (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                                     b"until the end", True)) as raw, raw_route(raw) as a:
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
        for _ in range(2):                           # the client's connection stays usable
            conn.request("GET", "/", headers={"Host": "app.test"})
            response = conn.getresponse()
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.read() == b"until the end"
        assert a.route_stats()["in_flight"] == 0


def test_a_workload_that_dies_mid_response_cuts_the_client_off():
    from support.backends import RawBackend

    with RawBackend(lambda request: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                                     b"only part", True)) as raw, raw_route(raw) as a:
        sock = connect(a.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        try:
            answer = read_all(sock)
        except ConnectionResetError:
            answer = b"(reset)"
        assert not answer.endswith(b"\r\n\r\n" + b"x" * 100)
        assert b"only part" in answer or answer == b"(reset)"
        a.wait_for(lambda: a.sample("scaler_activator_requests_total", policy="app",
                                    outcome="failed") == 1, what="counted as failed")
        assert a.route_stats()["in_flight"] == 0


def test_a_workload_that_answers_before_the_upload_ends_gets_its_answer_through():
    from support.backends import RawBackend

    with RawBackend(lambda request: (b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4"
                                     b"\r\nConnection: close\r\n\r\nbig!", True)) as raw, \
            raw_route(raw) as a:
        sock = connect(a.port)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10000000\r\n\r\n"
                     + b"x" * 1000)
        answer = read_until(sock, b"big!")
        assert answer.startswith(b"HTTP/1.1 413 Payload Too Large")
        assert a.route_stats()["in_flight"] == 0
        sock.settimeout(5)
        assert read_all(sock) == b""                 # then the connection closes


def test_a_slow_reader_pauses_the_workload_instead_of_filling_memory(activator):
    """Flow control downstream: a client that does not read leaves the bytes in the
    workload's socket, not in the activator."""
    sock = connect(activator.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /bytes?n=300000000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    time.sleep(1.0)                                   # read nothing for a second
    buffered = activator.call(lambda: [c.transport.get_write_buffer_size()
                                       for c in activator.activator.connections
                                       if c.queue and c.queue[0].url.startswith(b"/bytes")])
    assert len(buffered) == 1 and buffered[0] <= 1024 * 1024, buffered
    received = 0
    while received < 300_000_000:
        part = sock.recv(1 << 20)
        assert part
        received += len(part)
    assert received >= 300_000_000


def test_a_connection_back_from_a_slow_reader_is_reading_when_reused(backend):
    """A response can end while its client is still behind (the workload's connection
    paused for it): the connection goes back to the pool reading again, so the next
    request on it gets its answer."""
    with ActivatorThread([route("app", hosts=["app.test"])], {"app": [backend.address]}) as a:
        for _ in range(5):
            sock = connect(a.port)
            sock.sendall(b"GET /bytes?n=30000000 HTTP/1.1\r\nHost: app.test\r\n"
                         b"Connection: close\r\n\r\n")
            time.sleep(0.3)                       # behind: the activator pauses the workload
            data = read_all(sock)
            sock.close()
            assert data.startswith(b"HTTP/1.1 200") and len(data) > 30_000_000
            status, _, body = a.get("/bytes?n=5", timeout=5)
            assert status == 200 and body == b"x" * 5
        assert a.activator.pool.connects == 1     # one workload connection, reused


def test_a_stalled_workload_pauses_the_upload_instead_of_filling_memory():
    """Flow control upstream: a workload that does not read leaves the upload in the
    client's socket."""
    stalled = socket.create_server(("127.0.0.1", 0), backlog=8)   # never accepts
    try:
        address = f"127.0.0.1:{stalled.getsockname()[1]}"
        with ActivatorThread([route("app")], {"app": [address]}) as a:
            sock = connect(a.port)
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: "
                         b"1000000000\r\n\r\n")
            sock.setblocking(False)
            sent, deadline = 0, time.monotonic() + 1
            block = b"u" * 65536
            while time.monotonic() < deadline:
                try:
                    sent += sock.send(block)
                except BlockingIOError:
                    time.sleep(0.05)
            kept = a.call(lambda: [(ex.buffered, ex.upstream.transport.get_write_buffer_size()
                                    if ex.upstream else 0)
                                   for c in a.activator.connections for ex in c.queue])
            assert sent < 1_000_000_000
            assert len(kept) == 1 and sum(kept[0]) <= 1024 * 1024, kept
            # A client that gives up resets (its unsent upload would hold a FIN back
            # behind data the activator does not read): its request is cancelled.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            a.wait_for(lambda: a.route_stats()["in_flight"] == 0, what="cancelled")
    finally:
        stalled.close()
