"""The daemon's HTTP endpoints say no more than they must: no Python version in the
Server header (on a 404 least of all), and nothing but /metrics, /healthz and /readyz."""

from __future__ import annotations

import http.client
import sys

import pytest
from prometheus_client import CollectorRegistry

from scaler.daemon.observability import HealthServer, Metrics, serve_metrics


def get(port: int, path: str, accept: str = "") -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Accept": accept} if accept else {})
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


@pytest.fixture
def servers():
    registry = CollectorRegistry()
    Metrics(registry).desired.labels("web").set(3)
    health = HealthServer(0, healthy=lambda: (True, "ok"),
                          ready=lambda: (False, "no successful metric query yet"),
                          host="127.0.0.1").start()
    metrics = serve_metrics(registry, 0, "127.0.0.1")
    yield health.port, metrics.port
    health.stop()
    metrics.shutdown()


@pytest.mark.parametrize("which, path, status", [
    ("health", "/healthz", 200), ("health", "/readyz", 503), ("health", "/nope", 404),
    ("health", "/healthz/../metrics", 404), ("metrics", "/metrics", 200),
    ("metrics", "/", 404), ("metrics", "/favicon.ico", 404),
])
def test_endpoints_answer_without_naming_python(servers, which, path, status):
    port = servers[0] if which == "health" else servers[1]
    got, headers, body = get(port, path)
    assert got == status
    assert headers["server"] == "scaler"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "Python" not in body and version not in headers["server"]


def test_metrics_are_served_in_the_format_asked_for(servers):
    _, port = servers
    status, headers, body = get(port, "/metrics")
    assert headers["content-type"].startswith("text/plain")
    assert 'scaler_desired_replicas{policy="web"} 3.0' in body
    status, headers, body = get(port, "/metrics",
                                accept="application/openmetrics-text; version=1.0.0")
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_health_bodies_say_why(servers):
    port, _ = servers
    assert get(port, "/readyz")[2] == "no successful metric query yet\n"
    assert get(port, "/healthz?verbose=1")[0] == 200
