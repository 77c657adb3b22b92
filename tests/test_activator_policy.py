"""The activator block of a policy: parsed and validated like every other key, turned into
the activator's routes, and applied to a running activator when the files change."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from scaler.activator.config import Route
from scaler.activator.policies import load as load_routes
from scaler.policy import PolicyError, check_unique, parse_policies
from support.activator import ActivatorProcess, ActivatorThread, route
from support.backends import Backend
from support.daemon import write_kubeconfig
from support.fakekube import FakeKubeAPIServer

BIN = Path(sys.executable).parent


def doc(name="checkout", activator=None, metric=None, namespace="shop", **spec) -> dict:
    body = {"scaleTargetRef": {"name": name, "namespace": namespace},
            "metric": metric if metric is not None else {"type": "concurrency",
                                                         "source": "activator"}}
    if activator is not None:
        body["activator"] = activator
    body.update(spec)
    return {"apiVersion": "scaler/v1", "kind": "ScalingPolicy", "metadata": {"name": name},
            "spec": body}


def parse(*docs):
    return parse_policies(yaml.safe_dump_all(docs), "policies/p.yaml")


def test_defaults_and_what_validate_prints():
    (policy,) = parse(doc(activator={"port": "http", "hosts": ["Checkout.Shop.Example."]},
                          targetBurstCapacity=-1))
    block = policy.activator
    assert (block.service, block.port, block.hosts, block.max_pending_requests, block.timeout,
            block.mode, block.public) == ("checkout", "http", ("checkout.shop.example",), 1000,
                                          60.0, "whenNeeded", "checkout-public")
    assert (policy.metric.source, policy.metric.query) == ("activator", "")
    assert policy.describe().endswith("activator whenNeeded for checkout.shop.example")
    assert "concurrency from the activator" in policy.describe()


ERRORS = {
    "no port": ({"hosts": ["a.example"]}, "spec.activator.port: is required"),
    "port 0": ({"port": 0, "hosts": ["a.example"]},
               "spec.activator.port: 0 is neither a port number (1-65535) nor a port name"),
    "a port name too long": ({"port": "a-very-long-port-name", "hosts": ["a.example"]},
                             "is neither a port number"),
    "no hosts": ({"port": 80}, "spec.activator.hosts: expected a non-empty list"),
    "a URL for a host": ({"port": 80, "hosts": ["https://a.example/x"]},
                         "spec.activator.hosts[0]: 'https://a.example/x' is not a host name"),
    "a host twice": ({"port": 80, "hosts": ["a.example", "A.example"]},
                     "spec.activator.hosts[1]: 'A.example' is listed twice"),
    "a bad Service name": ({"service": "Check_out", "port": 80, "hosts": ["a.example"]},
                           "spec.activator.service: 'Check_out' is not a Service name"),
    "too many pending": ({"port": 80, "hosts": ["a.example"], "maxPendingRequests": 10**7},
                         "spec.activator.maxPendingRequests: 10000000 is out of range "
                         "(allowed: an integer 0..1000000)"),
    "a timeout of 0": ({"port": 80, "hosts": ["a.example"], "timeout": "0s"},
                       "spec.activator.timeout: '0s' is out of range (allowed: above 0s, at "
                       "most 1h)"),
    "a timeout without a unit": ({"port": 80, "hosts": ["a.example"], "timeout": 60},
                                 "spec.activator.timeout: expected a duration string"),
    "an unknown mode": ({"port": 80, "hosts": ["a.example"], "mode": "sometimes"},
                        "spec.activator.mode: 'sometimes' is not one of: always, whenNeeded"),
    "an unknown key": ({"port": 80, "hosts": ["a.example"], "retries": 3},
                       "spec.activator.retries: unknown key"),
    "the public Service is the workload's": (
        {"service": "web", "publicService": "web", "port": 80, "hosts": ["a.example"]},
        "spec.activator.publicService: 'web' is the workload's own Service"),
    "a Service name too long to derive the public one": (
        {"service": "s" * 60, "port": 80, "hosts": ["a.example"]},
        "is too long to name its public Service"),
}


@pytest.mark.parametrize("block, message", ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_file_document_key_value_and_range(block, message):
    with pytest.raises(PolicyError) as err:
        parse(doc(activator={"mode": "always", **block}))
    assert any(line.startswith("policies/p.yaml: document 1 (checkout): ") and message in line
               for line in err.value.errors), err.value.errors


METRIC_ERRORS = {
    "source activator without an activator block": (
        doc(), "spec.metric.source: 'activator' needs a spec.activator block"),
    "source activator with a query": (
        doc(metric={"source": "activator", "query": "sum(x)"},
            activator={"port": 80, "hosts": ["a.example"]}),
        "spec.metric.query: not used with source: activator"),
    "an unknown source": (doc(metric={"source": "statsd", "query": "x"}),
                          "spec.metric.source: 'statsd' is not one of: prometheus, activator"),
    "source activator with mode whenNeeded": (
        doc(activator={"port": 80, "hosts": ["a.example"]}),
        "spec.activator.mode: 'whenNeeded' sends warm traffic past the activator, which then "
        "cannot count it for spec.metric.source: activator (allowed: always, or "
        "targetBurstCapacity: -1"),
    "prometheus without a query": (
        doc(metric={"type": "rps"}, activator={"port": 80, "hosts": ["a.example"]}),
        "spec.metric.query: is required"),
}


@pytest.mark.parametrize("document, message", METRIC_ERRORS.values(), ids=METRIC_ERRORS.keys())
def test_metric_source_rules(document, message):
    with pytest.raises(PolicyError) as err:
        parse(document)
    assert any(message in line for line in err.value.errors), err.value.errors


def test_a_promql_policy_may_have_an_activator_too():
    (policy,) = parse(doc(metric={"type": "rps", "query": "sum(rate(x[10s]))"},
                          activator={"port": 80, "hosts": ["a.example"], "mode": "always"}))
    assert (policy.metric.source, policy.activator.mode) == ("prometheus", "always")


def test_hosts_and_public_services_are_claimed_once_across_policies():
    a = doc("a", activator={"service": "web", "port": 80, "hosts": ["shared.example"]},
            metric={"query": "sum(a)"})
    b = doc("b", activator={"service": "web", "port": 80, "hosts": ["shared.example"]},
            metric={"query": "sum(b)"})
    with pytest.raises(PolicyError) as err:
        check_unique(parse(a, b))
    assert err.value.errors == [
        "policies/p.yaml: document 2: spec.activator.hosts: 'shared.example' is already "
        "routed to policy 'a' by policies/p.yaml: document 1",
        "policies/p.yaml: document 2: spec.activator: public Service shop/web-public is "
        "already switched by policy 'a' (policies/p.yaml: document 1)"]


def test_routes_come_from_the_policies_that_have_an_activator_block(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump_all([
        doc("checkout", activator={"port": "http", "hosts": ["c.example"], "timeout": "5s",
                                   "maxPendingRequests": 7, "mode": "always"}),
        doc("batch", metric={"query": "sum(queue)"})]))
    assert load_routes(tmp_path) == [Route(
        policy="checkout", namespace="shop", service="checkout", port="http",
        hosts=("c.example",), max_pending=7, timeout=5.0, mode="always")]


def test_scaler_activator_without_any_activator_policy_is_bad_input(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc("batch", metric={"query": "q"})))
    done = subprocess.run([str(BIN / "scaler"), "activator", "--policy", str(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {tmp_path}: no policy has spec.activator (found: "
                                   "batch); the activator routes only the policies that name it")


# ----------------------------------------------------------------------------------------
# changing the routes of a running activator


def test_set_routes_adds_changes_and_removes_routes():
    with Backend("b") as backend, ActivatorThread(
            [route("app", hosts=["app.test"]), route("old", hosts=["old.test"])],
            {"app": [backend.address]}) as a:
        answers: list = []
        held = threading.Thread(target=lambda: answers.append(a.get("/", host="old.test")))
        held.start()
        a.wait_for(lambda: a.route_stats("old")["pending"] == 1, what="held on old")
        changes = a.call(a.activator.set_routes, [
            route("app", hosts=["app.test", "www.app.test"], max_pending=5),
            route("new", hosts=["new.test"])])
        assert changes == {"added": ["new"], "removed": ["old"], "changed": ["app"]}
        held.join(5)
        status, headers, body = answers[0]
        assert (status, headers["Retry-After"]) == (503, "1")
        assert b"policy 'old' was removed" in body
        assert a.get("/id", host="www.app.test")[2] == b"b"       # a new host, same pods
        assert a.get("/id", host="old.test")[0] == 404
        assert a.activator.states["app"].route.max_pending == 5
        assert set(a.stats()["routes"]) == {"app", "new"}


def test_a_policy_edit_reaches_the_running_activator_process(tmp_path):
    """`scaler activator --policy`: an edited file (here with SIGHUP, as the periodic check
    would) is validated, then applied; a broken edit keeps the routes that run."""
    with FakeKubeAPIServer() as server:
        policies = tmp_path / "policies"
        policies.mkdir()
        path = policies / "p.yaml"
        block = {"port": "http", "hosts": ["a.example"], "timeout": "1s", "mode": "always"}
        path.write_text(yaml.safe_dump(doc("app", activator=block, namespace="default")))
        kubeconfig = write_kubeconfig(tmp_path / "kc", server.url)
        with ActivatorProcess(path, extra=["--kubeconfig", str(kubeconfig)],
                              option="--policy") as activator:
            assert set(activator.stats()["routes"]) == {"app"}
            block["hosts"] = ["a.example", "b.example"]
            path.write_text(yaml.safe_dump_all([
                doc("app", activator=block, namespace="default"),
                doc("web", activator={"port": 80, "hosts": ["web.example"], "mode": "always"},
                    namespace="default")]))
            activator.signal(signal.SIGHUP)
            activator.wait_for(lambda: set(activator.stats()["routes"]) == {"app", "web"}, 10,
                               "the new policy routed")
            path.write_text("spec: [")
            activator.signal(signal.SIGHUP)
            activator.wait_for(lambda: any(line.get("event", "").startswith("policies not reloaded")
                                           for line in activator.lines), 10, "the refusal")
            assert set(activator.stats()["routes"]) == {"app", "web"}
