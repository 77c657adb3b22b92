"""The activator as its own process: ``python -m scaler.activator`` with a routes file,
SIGHUP to publish endpoints, SIGTERM to drain, one log line per state change."""

from __future__ import annotations

import http.client
import signal
import threading

from support.activator import ActivatorProcess, admin_get, write_routes
from support.backends import Backend


def get(port: int, path: str, host: str = "app.test", timeout: float = 30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_sighup_publishes_endpoints_to_held_requests_and_sigterm_drains(tmp_path):
    routes = tmp_path / "routes.yaml"
    spec = {"policy": "app", "port": 8080, "hosts": ["app.test"], "timeout": "20s"}
    write_routes(routes, [{**spec, "endpoints": []}])
    with Backend("b1") as backend, ActivatorProcess(routes) as activator:
        answers: list = []
        waiting = threading.Thread(target=lambda: answers.append(get(activator.port, "/id")))
        waiting.start()
        activator.wait_for(lambda: activator.stats()["routes"]["app"]["pending"] == 1, 10,
                           "a held request")
        write_routes(routes, [{**spec, "endpoints": [backend.address]}])
        activator.signal(signal.SIGHUP)
        waiting.join(10)
        assert answers == [(200, b"b1")]

        for _ in range(50):                          # requests are not logged one by one
            assert get(activator.port, "/id")[0] == 200
        assert get(activator.port, "/id", host="other.test")[0] == 404
        assert admin_get(activator.admin_port, "/readyz") == (200, b"ok\n")

        backend.close_gate()
        slow: list = []
        in_flight = threading.Thread(target=lambda: slow.append(get(activator.port, "/gate")))
        in_flight.start()
        activator.wait_for(lambda: backend.gate_in_flight == 1, 10, "a request in flight")
        activator.signal(signal.SIGTERM)
        activator.wait_for(lambda: any(l.get("event") == "draining" for l in activator.lines),
                           10, "draining")
        backend.open_gate()
        in_flight.join(10)
        assert slow == [(200, b"b1")]                # finished before the process left
        assert activator.stop() == 0
        events = [line["event"] for line in activator.lines]
        assert events == ["endpoints changed", "activator started", "holding requests",
                          "endpoints changed", "hold ended", "draining", "activator stopped"]
        stopped = activator.lines[-1]
        assert stopped["cut_short"] == 0
        assert all(line["level"] in ("info", "warning") for line in activator.lines)


def test_a_bad_routes_file_on_sighup_keeps_the_last_endpoints(tmp_path):
    routes = tmp_path / "routes.yaml"
    with Backend("b1") as backend:
        write_routes(routes, [{"policy": "app", "port": 8080, "hosts": ["app.test"],
                               "endpoints": [backend.address]}])
        with ActivatorProcess(routes) as activator:
            routes.write_text("routes: [")
            activator.signal(signal.SIGHUP)
            activator.wait_for(lambda: any("not reloaded" in l.get("event", "")
                                           for l in activator.lines), 10, "reload refused")
            assert get(activator.port, "/id") == (200, b"b1")
            refused = [l for l in activator.lines if "not reloaded" in l.get("event", "")][0]
            assert refused["level"] == "error"
            assert refused["errors"] == [f"{routes}: not valid YAML (line 1, column 10)"]
