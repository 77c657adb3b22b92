"""Routes: a frozen Route per policy, loaded from a routes file with errors that name the
file, the key, the value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scaler.activator.config import ConfigError, Route, load_routes, parse_duration
from scaler.activator.endpoints import Endpoint

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
routes:
  - policy: checkout
    namespace: shop
    service: checkout-svc
    port: http
    hosts: [Checkout.Shop.Example, checkout.internal]
    maxPendingRequests: 50
    timeout: 2m
    mode: always
    endpoints: ["10.0.0.7:8080", "[fd00::7]:8080"]
  - policy: search
    port: 8080
    hosts: [search.example]
"""


def test_a_routes_file_gives_frozen_routes_and_their_endpoints(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(GOOD)
    routes, endpoints = load_routes(path)
    assert routes == [
        Route(policy="checkout", namespace="shop", service="checkout-svc", port="http",
              hosts=("checkout.shop.example", "checkout.internal"), max_pending=50,
              timeout=120.0, mode="always"),
        Route(policy="search", namespace="default", service="search", port=8080,
              hosts=("search.example",), max_pending=1000, timeout=60.0, mode="whenNeeded"),
    ]
    assert endpoints == {"checkout": (Endpoint("10.0.0.7", 8080), Endpoint("fd00::7", 8080)),
                         "search": ()}
    with pytest.raises(AttributeError):
        routes[0].timeout = 1     # frozen


@pytest.mark.parametrize("snippet, message", [
    pytest.param("policy: Bad_Name", "routes[0].policy: 'Bad_Name' is not a Kubernetes name",
                 id="policy-name"),
    pytest.param("port: 70000", "routes[0].port: 70000 must be a port number 1-65535",
                 id="port-range"),
    pytest.param("hosts: []", "routes[0].hosts: must be a non-empty list", id="no-hosts"),
    pytest.param("hosts: ['http://a.example/']", "routes[0].hosts[0]: 'http://a.example/' is "
                 "not a host name", id="host-with-scheme"),
    pytest.param("maxPendingRequests: -1", "routes[0].maxPendingRequests: -1 must be an "
                 "integer from 0 to 1,000,000", id="max-pending"),
    pytest.param("timeout: 5x", "routes[0].timeout: '5x' must be a duration above 0",
                 id="timeout-unit"),
    pytest.param("timeout: 0s", "routes[0].timeout: '0s' must be a duration above 0",
                 id="timeout-zero"),
    pytest.param("mode: sometimes", "routes[0].mode: 'sometimes' must be one of always, "
                 "whenNeeded", id="mode"),
    pytest.param("endpoints: ['10.0.0.1']", "routes[0].endpoints[0]: '10.0.0.1' is not "
                 "HOST:PORT", id="endpoint-no-port"),
    pytest.param("colour: blue", "routes[0].colour: unknown key", id="unknown-key"),
])
def test_each_bad_value_is_named_with_its_place(tmp_path, snippet, message):
    base = {"policy": "app", "port": 8080, "hosts": "[app.example]"}
    key = snippet.split(":")[0]
    lines = [f"    {k}: {v}" for k, v in base.items() if k != key]
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - " + snippet + "\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert any(line == f"{path}: {message}" or line.startswith(f"{path}: {message}")
               for line in caught.value.errors), caught.value.errors


def test_a_host_claimed_by_two_policies_is_refused(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n"
                    "  - {policy: a, port: 80, hosts: [shared.example]}\n"
                    "  - {policy: b, port: 80, hosts: [Shared.Example]}\n"
                    "  - {policy: a, port: 80, hosts: [other.example]}\n")
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert caught.value.errors == [
        f"{path}: routes[1].hosts: 'shared.example' is already routed to policy 'a'",
        f"{path}: routes[2].policy: 'a' is already routes[0]"]


@pytest.mark.parametrize("text, message", [
    pytest.param("routes: [", "not valid YAML (line 1", id="yaml"),
    pytest.param("policies: []", "routes: must be a list of routes at the top level",
                 id="no-routes-key"),
    pytest.param("routes: []", "routes: the list is empty", id="empty"),
])
def test_a_broken_file_says_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert caught.value.errors[0].startswith(f"{path}: {message}")


@pytest.mark.parametrize("value, seconds", [
    (60, 60.0), (1.5, 1.5), ("60s", 60.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0),
    ("90", 90.0), ("x", None), ("-1s", None), (True, None), (float("nan"), None)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("text, endpoint", [
    ("10.1.2.3:8080", Endpoint("10.1.2.3", 8080)), ("[fd00::1]:80", Endpoint("fd00::1", 80)),
    ("localhost:1", Endpoint("localhost", 1))])
def test_endpoints_parse_and_print_back(text, endpoint):
    assert Endpoint.parse(text) == endpoint
    assert str(endpoint) == text


@pytest.mark.parametrize("text", ["10.0.0.1", "10.0.0.1:0", "10.0.0.1:99999", ":80",
                                  "fd00::1:80", "[nope]:80"])
def test_bad_endpoints_are_refused(text):
    with pytest.raises(ValueError):
        Endpoint.parse(text)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaler.activator", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_command_refuses_a_bad_routes_file_with_exit_2_and_no_traceback(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - {policy: app, port: 80, hosts: [a.example], timeout: soon}\n")
    result = run_cli("--routes", str(path))
    assert result.returncode == 2
    assert result.stderr == (f"error: {path}: routes[0].timeout: 'soon' must be a duration "
                             "above 0 and at most 3600s (e.g. 60s, 500ms, 2m)\n")


@pytest.mark.parametrize("args, message", [
    pytest.param(["--listen", "nowhere"], "argument --listen: 'nowhere' is not HOST:PORT",
                 id="listen"),
    pytest.param(["--daemon-url", "ftp://x"], "--daemon-url: 'ftp://x' is not an "
                 "http://HOST[:PORT] URL", id="daemon-url"),
    pytest.param(["--drain-timeout", "-1"], "argument --drain-timeout: '-1' must be seconds",
                 id="drain-timeout"),
])
def test_the_command_refuses_bad_flags_with_exit_2(tmp_path, args, message):
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - {policy: app, port: 80, hosts: [a.example]}\n")
    result = run_cli("--routes", str(path), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_routes_file_is_one_line(tmp_path):
    result = run_cli("--routes", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'nope.yaml'}: cannot read: No such file or " \
                            "directory\n"
