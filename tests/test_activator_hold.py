"""At zero ready endpoints: requests are held in arrival order (bounded, each for at most the
route's timeout), the daemons are poked at once, and endpoints that appear release the
queue. Overflow and timeout answer 503/504 with Retry-After, and everything is counted."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from support.activator import ActivatorThread, PokeReceiver, admin_get, route
from support.backends import Backend


@pytest.fixture(scope="module")
def backend():
    with Backend("b1") as b:
        yield b


class Requests:
    """Requests sent from threads, each one recorded with its answer."""

    def __init__(self, activator: ActivatorThread) -> None:
        self.activator = activator
        self.answers: dict[str, tuple] = {}
        self.threads: list[threading.Thread] = []

    def send(self, key: str, path: str, **kw) -> None:
        def run() -> None:
            started = time.monotonic()
            try:
                answer = self.activator.get(path, timeout=30, **kw)
            except OSError as exc:
                answer = (None, {}, repr(exc).encode())
            self.answers[key] = (*answer, time.monotonic() - started)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(30)


def held(activator: ActivatorThread, n: int, policy: str = "app") -> None:
    activator.wait_for(lambda: activator.route_stats(policy)["pending"] == n,
                       what=f"{n} held requests")


def test_held_requests_are_released_in_arrival_order_when_endpoints_appear(backend):
    backend.order.clear()
    with ActivatorThread([route("app")], {"app": []}) as a:
        requests = Requests(a)
        for i in range(10):
            requests.send(str(i), f"/order?i={i}")
            held(a, i + 1)
        stats = a.route_stats()
        assert (stats["in_flight"], stats["pending"], stats["ready_endpoints"]) == (10, 10, 0)
        a.set_endpoints("app", [backend.address])
        requests.join()
        assert [requests.answers[str(i)][:1] for i in range(10)] == [(200,)] * 10
        assert [requests.answers[str(i)][2] for i in range(10)] == [str(i).encode()
                                                                    for i in range(10)]
        assert backend.order == [str(i) for i in range(10)]
        stats = a.route_stats()
        assert (stats["in_flight"], stats["pending"], stats["requests"]) == (0, 0, 10)
        assert a.sample("scaler_activator_requests_total", policy="app", outcome="held") == 10
        assert a.sample("scaler_activator_cold_start_seconds_count", policy="app") == 10
        waited = a.sample("scaler_activator_cold_start_seconds_sum", policy="app")
        assert 0 < waited < 10 * 30
        ended = a.log.named("hold ended")
        assert len(a.log.named("holding requests")) == 1 and len(ended) == 1
        assert ended[0]["released"] == 10 and ended[0]["held"] == 10


def test_beyond_max_pending_requests_get_503_with_retry_after(backend):
    with ActivatorThread([route("app", max_pending=2)], {"app": []}) as a:
        requests = Requests(a)
        requests.send("0", "/id")
        requests.send("1", "/id")
        held(a, 2)
        status, headers, body = a.get("/id")
        assert status == 503 and headers["Retry-After"] == "1"
        assert body == (b"scaler activator: policy 'app' has no ready endpoint and already "
                        b"holds 2 requests (maxPendingRequests): no daemon is configured or "
                        b"discovered to poke; retry later\n")
        a.set_endpoints("app", [backend.address])
        requests.join()
        assert [requests.answers[k][0] for k in "01"] == [200, 200]
        assert a.sample("scaler_activator_requests_total", policy="app",
                        outcome="rejected") == 1
        assert a.sample("scaler_activator_requests_total", policy="app", outcome="held") == 2
        assert a.route_stats()["in_flight"] == 0


def test_the_504_says_when_no_daemon_answered_and_not_when_one_did():
    # A port bound but not listening refuses connections, and no one else can take it.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with closed, ActivatorThread([route("app", timeout=0.5)], {"app": []},
                                 daemon_urls=[down]) as a:
        status, _headers, body = a.get("/id")
        assert status == 504
        assert body.startswith(b"scaler activator: policy 'app' had no ready endpoint within "
                               b"its timeout (0.5s): no daemon answered its last poke (" +
                               down.encode() + b": ConnectionRefusedError")
    with PokeReceiver() as daemon, ActivatorThread([route("app", timeout=0.5)], {"app": []},
                                                   daemon_urls=[daemon.url]) as a:
        status, _headers, body = a.get("/id")
        assert (status, body) == (504, b"scaler activator: policy 'app' had no ready "
                                       b"endpoint within its timeout (0.5s); retry later\n")


def test_a_request_held_past_the_timeout_gets_504_with_retry_after():
    with ActivatorThread([route("app", timeout=0.3)], {"app": []}) as a:
        started = time.monotonic()
        status, headers, body = a.get("/id")
        elapsed = time.monotonic() - started
        assert status == 504 and headers["Retry-After"] == "1"
        assert body == (b"scaler activator: policy 'app' had no ready endpoint within its "
                        b"timeout (0.3s): no daemon is configured or discovered to poke; "
                        b"retry later\n")
        assert elapsed >= 0.3
        assert a.sample("scaler_activator_requests_total", policy="app",
                        outcome="timed_out") == 1
        stats = a.route_stats()
        assert (stats["in_flight"], stats["pending"]) == (0, 0)
        assert a.sample("scaler_activator_cold_start_seconds_count", policy="app") is None


def test_a_held_request_whose_client_leaves_is_dropped_from_the_queue(backend):
    with ActivatorThread([route("app")], {"app": []}) as a:
        sock = socket.create_connection(("127.0.0.1", a.port))
        sock.sendall(b"GET /id HTTP/1.1\r\nHost: app.test\r\n\r\n")
        held(a, 1)
        sock.close()
        held(a, 0)
        assert a.route_stats()["in_flight"] == 0
        assert a.sample("scaler_activator_requests_total", policy="app",
                        outcome="cancelled") == 1
        hits = backend.hits
        a.set_endpoints("app", [backend.address])
        assert a.get("/id")[0] == 200
        assert backend.hits == hits + 1        # the cancelled request never reached it


def test_a_held_upload_is_buffered_only_up_to_a_limit_and_then_streams(backend):
    """A large body at zero: the activator keeps a little and stops reading the rest until
    an endpoint is there (the client's TCP window fills instead of the activator's memory)."""
    import hashlib
    import os

    from scaler.activator.proxy import BODY_BUFFER_LIMIT

    body = os.urandom(32 * 1024 * 1024)
    with ActivatorThread([route("app")], {"app": []}) as a:
        sock = socket.create_connection(("127.0.0.1", a.port))
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n"
                     % len(body))
        sent = 0
        sock.setblocking(False)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:           # push until the activator stops reading
            try:
                sent += sock.send(body[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.05)
        held(a, 1)
        buffered = a.call(lambda: [ex.buffered for conn in a.activator.connections
                                   for ex in conn.queue])
        assert sent < len(body)                      # the client was made to wait
        assert len(buffered) == 1 and 0 < buffered[0] <= BODY_BUFFER_LIMIT + 256 * 1024
        a.set_endpoints("app", [backend.address])
        sock.setblocking(True)
        sock.sendall(body[sent:])
        answer = b""
        while b"}" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        assert hashlib.sha256(body).hexdigest().encode() in answer


def test_a_request_at_zero_pokes_every_daemon_at_once_with_the_wire_format(backend):
    with PokeReceiver() as d1, PokeReceiver() as d2, \
            ActivatorThread([route("app")], {"app": []},
                            daemon_urls=[d1.url, d2.url + "/"]) as a:
        requests = Requests(a)
        requests.send("0", "/id")
        a.wait_for(lambda: len(d1.pokes) == 1 and len(d2.pokes) == 1, 5, "pokes")
        assert a.route_stats()["pending"] == 1       # poked while the request is held
        for receiver in (d1, d2):
            _, path, body = receiver.pokes[0]
            assert path == "/v1/poke"
            assert set(body) == {"activator", "policy", "namespace", "pending", "in_flight",
                                 "sent_at"}
            assert (body["activator"], body["policy"], body["namespace"], body["pending"],
                    body["in_flight"]) == (a.activator.id, "app", "default", 1, 1)
            assert abs(body["sent_at"] - time.time()) < 5
        a.set_endpoints("app", [backend.address])
        requests.join()
        assert requests.answers["0"][0] == 200
        assert a.sample("scaler_activator_pokes_total", result="sent") == 2


def test_pokes_are_coalesced_while_requests_keep_arriving_at_zero(backend):
    with PokeReceiver() as daemon, \
            ActivatorThread([route("app")], {"app": []}, daemon_urls=[daemon.url]) as a:
        requests = Requests(a)
        for i in range(20):
            requests.send(str(i), "/id")
        held(a, 20)
        time.sleep(0.3)
        assert len(daemon.pokes) == 1                # one at once, the rest coalesced
        a.wait_for(lambda: len(daemon.pokes) == 2, 3, "the coalesced poke")
        gap = daemon.pokes[1][0] - daemon.pokes[0][0]
        assert 0.9 <= gap <= 2.0                     # one more, a second later
        assert daemon.pokes[1][2]["pending"] == 20
        a.set_endpoints("app", [backend.address])
        requests.join()
        time.sleep(1.2)
        assert len(daemon.pokes) == 2                # nothing held: no more pokes


def test_an_unreachable_or_slow_daemon_never_delays_requests(backend):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()
    with PokeReceiver(delay=3.0) as slow, \
            ActivatorThread([route("app")], {"app": []},
                            daemon_urls=[dead_url, slow.url]) as a:
        requests = Requests(a)
        requests.send("0", "/id")
        held(a, 1)
        a.set_endpoints("app", [backend.address])
        requests.join()
        status, _, _, elapsed = requests.answers["0"]
        assert status == 200 and elapsed < 2.5       # not waiting on the 3 s daemon
        a.wait_for(lambda: a.sample("scaler_activator_pokes_total", result="failed") == 2,
                   5, "both pokes to fail (refused, timed out)")
        unreachable = a.log.named("daemon unreachable: held requests wait for its next "
                                  "metric read")
        assert sorted(e["daemon"] for e in unreachable) == sorted([dead_url, slow.url])
        assert a.get("/id")[0] == 200                # warm: no pokes, no waiting


def test_back_to_zero_holds_again_and_endpoints_coming_back_release(backend):
    with ActivatorThread([route("app")], {"app": [backend.address]}) as a:
        assert a.get("/id")[0] == 200
        a.set_endpoints("app", [])
        a.wait_for(lambda: a.route_stats()["ready_endpoints"] == 0, what="zero endpoints")
        requests = Requests(a)
        requests.send("0", "/id")
        held(a, 1)
        a.set_endpoints("app", [backend.address])
        requests.join()
        assert requests.answers["0"][0] == 200
        changes = [e["ready"] for e in a.log.named("endpoints changed")]
        assert changes == [1, 0, 1]


def test_routes_are_independent(backend):
    with ActivatorThread([route("cold", max_pending=1), route("warm")],
                         {"cold": [], "warm": [backend.address]}) as a:
        requests = Requests(a)
        requests.send("0", "/id", host="cold.test")
        held(a, 1, "cold")
        assert a.get("/id", host="cold.test")[0] == 503
        assert a.get("/id", host="warm.test")[0] == 200
        stats = a.stats()["routes"]
        assert (stats["cold"]["pending"], stats["warm"]["pending"]) == (1, 0)
        assert (stats["cold"]["requests"], stats["warm"]["requests"]) == (2, 1)


def test_admin_port_serves_stats_metrics_and_probes(backend):
    with ActivatorThread([route("app")], {"app": [backend.address]}) as a:
        a.get("/id")
        status, body = admin_get(a.admin_port, "/metrics")
        text = body.decode()
        assert status == 200
        for line in ['scaler_activator_requests_total{outcome="proxied",policy="app"} 1.0',
                     'scaler_activator_in_flight{policy="app"} 0.0',
                     'scaler_activator_pending_requests{policy="app"} 0.0',
                     'scaler_activator_ready_endpoints{policy="app"} 1.0',
                     "# TYPE scaler_activator_cold_start_seconds histogram"]:
            assert line in text, line
        assert admin_get(a.admin_port, "/healthz") == (200, b"ok\n")
        assert admin_get(a.admin_port, "/readyz") == (200, b"ok\n")
        assert admin_get(a.admin_port, "/nope")[0] == 404
        stats = a.stats()
        assert set(stats) == {"activator", "sampled_at", "uptime", "proxy_port", "routes"}
        assert stats["proxy_port"] == a.port          # where the daemon points traffic
        assert set(stats["routes"]["app"]) == {"namespace", "mode", "in_flight", "pending",
                                               "ready_endpoints", "requests",
                                               "in_flight_seconds"}


def test_not_ready_until_every_route_knows_its_endpoints():
    with ActivatorThread([route("a"), route("b")], {"a": []}) as a:
        # "b" has no static entry: StaticEndpoints still delivers an (empty) first set.
        a.wait_for(lambda: admin_get(a.admin_port, "/readyz")[0] == 200, what="ready")
        a.call(lambda: setattr(a.activator.states["b"], "synced", False))
        assert admin_get(a.admin_port, "/readyz") == (503, b"endpoints not known yet for: b\n")


def test_with_max_pending_zero_a_request_at_zero_is_refused_but_still_pokes():
    with PokeReceiver() as daemon, \
            ActivatorThread([route("app", max_pending=0)], {"app": []},
                            daemon_urls=[daemon.url]) as a:
        assert a.get("/id")[0] == 503
        a.wait_for(lambda: len(daemon.pokes) == 1, 5, "a poke")
        assert daemon.pokes[0][2]["pending"] == 0
