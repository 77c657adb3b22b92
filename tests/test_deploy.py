"""Deployment artefacts: kustomize renders, Kubernetes schemas, RBAC scope, image build file.

Everything here runs offline with real tools from the test venv: `kubectl kustomize`
renders each kustomization, kubernetes-validate checks every rendered document against
the bundled 1.30 and newest schemas in strict mode, hadolint lints the Dockerfile, and
promtool (Debian's prometheus package, when present) parses every PromQL expression we
ship. The rest are cross-checks between files that a reviewer would otherwise do by eye:
the Role against the allowed permission list, the Deployment against the daemon's flags
and the image's user, the example policies against the workloads they scale.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scaler.policy import check_unique, parse_policies

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
HADOLINT = BIN / "hadolint"

BASE = "base"
EXAMPLE = "overlays/example"
EXAMPLE_OPERATOR = "overlays/example-prometheus-operator"
EXAMPLE_OBJECTS = "overlays/example-scalingpolicies"
EXAMPLE_CLUSTER_WIDE = "overlays/example-cluster-wide"
EXAMPLE_SHARDED = "overlays/example-sharded"
KUSTOMIZATIONS = (BASE, EXAMPLE, EXAMPLE_OPERATOR, EXAMPLE_OBJECTS, EXAMPLE_CLUSTER_WIDE,
                  EXAMPLE_SHARDED)
NAMESPACED = (BASE, EXAMPLE, EXAMPLE_OPERATOR)
# The example's demo workloads: applied on their own, so the scaler alone is one command.
EXAMPLE_WORKLOADS = "overlays/example/workloads"
DEMOS = (EXAMPLE_WORKLOADS,)
EXAMPLE_NAMESPACE = "shop"

# 1.30 is the oldest Kubernetes minor the manifests promise; the newest bundled schema
# catches fields that were removed or tightened since.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

# Documents whose schema comes from a CRD (prometheus-operator); kubernetes-validate
# bundles only built-in kinds. They may appear only in the optional component.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

# The daemon's own metrics (its contract); histogram series carry the usual suffixes.
METRICS = {
    "scaler_desired_replicas", "scaler_current_replicas", "scaler_ready_replicas",
    "scaler_stable_value", "scaler_panic_value", "scaler_panic_mode",
    "scaler_tick_duration_seconds", "scaler_metric_errors_total", "scaler_patch_errors_total",
    "scaler_patch_conflicts_total", "scaler_scale_actions_total", "scaler_paused",
    "scaler_leader", "scaler_policy_reload_success", "scaler_policy_reload_timestamp_seconds",
    "scaler_forecast_value", "scaler_forecast_active", "scaler_tick_errors_total",
    "scaler_pokes_total", "scaler_activator_in_path",
    "scaler_tick_overruns_total", "scaler_metric_queries_total", "scaler_buckets_held",
    "scaler_targets_served",
}
# The activator's own metrics (its admin port's /metrics).
ACTIVATOR_METRICS = {
    "scaler_activator_requests_total", "scaler_activator_in_flight",
    "scaler_activator_pending_requests", "scaler_activator_ready_endpoints",
    "scaler_activator_unrouted_requests_total", "scaler_activator_cold_start_seconds",
    "scaler_activator_pokes_total", "scaler_activator_upstream_errors_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
def test_the_contract_is_what_the_daemon_exports():
    from prometheus_client import CollectorRegistry

    from scaler.daemon.observability import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    exported = set()
    for family in registry.collect():
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    assert exported == METRICS


def test_the_activator_contract_is_what_the_activator_exports():
    from prometheus_client import CollectorRegistry

    from scaler.activator.observability import Metrics
    from scaler.activator.routing import RouteState
    from support.activator import route

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    state = RouteState(route("app"), call_later=lambda *a: None)
    metrics.watch_routes(lambda: [state], lambda: 0)
    exported = {family.name + ("_total" if family.type == "counter" else "")
                for family in registry.collect()}
    assert exported == ACTIVATOR_METRICS


PER_POLICY_METRICS = METRICS - {
    "scaler_tick_duration_seconds", "scaler_leader",
    "scaler_policy_reload_success", "scaler_policy_reload_timestamp_seconds",
    "scaler_tick_overruns_total", "scaler_metric_queries_total", "scaler_buckets_held",
    "scaler_targets_served",
} | (ACTIVATOR_METRICS - {"scaler_activator_unrouted_requests_total",
                          "scaler_activator_pokes_total"})

# Everything the Role may grant, as (apiGroup, resource, verb, resourceName or None).
# None means "any name in the namespace". Leases' get/update are pinned to the daemon's
# lease; create cannot be (the name is unknown to the authorizer on create).
SCALED = {"apps": ("deployments", "statefulsets", "replicasets"), "argoproj.io": ("rollouts",)}
# The kinds the watch cache lists and watches (a custom kind is read per tick instead).
WATCHED = {("apps", kind) for kind in SCALED["apps"]}
WORKLOAD_PERMISSIONS = (
    {(group, kind, "get", None) for group, kinds in SCALED.items() for kind in kinds}
    | {(group, kind, verb, None) for group, kind in WATCHED for verb in ("list", "watch")}
    | {(group, f"{kind}/scale", verb, None)
       for group, kinds in SCALED.items() for kind in kinds for verb in ("get", "patch")}
    | {("", "events", "create", None), ("", "events", "patch", None)}
)
ALLOWED_PERMISSIONS = (
    WORKLOAD_PERMISSIONS
    | {("coordination.k8s.io", "leases", "create", None),
       ("coordination.k8s.io", "leases", "get", "scaler"),
       ("coordination.k8s.io", "leases", "update", "scaler")}
)
# With the activator component, the daemon also lists EndpointSlices (the pods and the
# activators) and updates the public Services' slices, each by name; the activator only
# lists and watches EndpointSlices.
SLICES = "discovery.k8s.io", "endpointslices"
DAEMON_ACTIVATOR_PERMISSIONS = {(*SLICES, "list", None)}
ACTIVATOR_PERMISSIONS = {(*SLICES, "list", None), (*SLICES, "watch", None)}
WITH_ACTIVATOR = (EXAMPLE, EXAMPLE_OPERATOR)
# With the scalingpolicies component: read the ScalingPolicy objects, write their status.
OBJECT_PERMISSIONS = ({("scaler.dev", "scalingpolicies", verb, None)
                       for verb in ("get", "list", "watch")}
                      | {("scaler.dev", "scalingpolicies/status", "update", None)})
WITH_OBJECTS = (EXAMPLE_OBJECTS,)


# --------------------------------------------------------------------------------------
# helpers


def render_example() -> list[dict]:
    """The example as a cluster runs it: the scaler (overlays/example) and the demo
    workloads it scales (overlays/example/workloads), each applied by one command."""
    return render(EXAMPLE) + render(EXAMPLE_WORKLOADS)


@functools.cache
def _render_text(kustomization: str) -> str:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(DEPLOY / kustomization)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    return result.stdout


def render(kustomization: str) -> list[dict]:
    """The documents `kubectl kustomize` produces (a fresh copy each call)."""
    docs = [d for d in yaml.safe_load_all(_render_text(kustomization)) if d]
    assert docs, f"{kustomization} rendered nothing"
    return docs


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def scaler_container(docs: list[dict]) -> dict:
    deployment = one(docs, "Deployment", "scaler")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "scaler"]
    return container


def flag(args: list[str], name: str) -> str | None:
    """Value of --name=value or --name value in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args) and not args[i + 1].startswith("--"):
            return args[i + 1]
    return None


def quantity_bytes(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * factor
    return float(q)


def quantity_cores(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bscaler_[a-z_]+\b", expr))


def known_metric(name: str) -> bool:
    known = METRICS | ACTIVATOR_METRICS
    if name in known:
        return True
    return any(name.endswith(s) and name[: -len(s)] in known for s in HISTOGRAM_SUFFIXES)


def promtool_check(exprs: dict[str, str], tmp_path: Path) -> None:
    """Parse PromQL with Prometheus' own parser (promtool check rules)."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool missing: apt-get install prometheus (scripts/bootstrap --test does)"
    rules = {"groups": [{"name": "check", "rules": [
        {"record": f"check:{i}", "expr": expr} for i, expr in enumerate(exprs.values())]}]}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, (
        "promtool rejected:\n" + result.stdout + result.stderr
        + "\nexpressions:\n" + "\n".join(f"{k}: {v}" for k, v in exprs.items()))


def dockerfile_stages() -> list[dict]:
    """The Dockerfile as stages of (instruction, argument) pairs, continuations joined."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        instr, _, args = current.strip().partition(" ")
        instructions.append((instr.upper(), args.strip()))
        current = ""
    stages: list[dict] = []
    for instr, args in instructions:
        if instr == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"from": parts[0], "name": name, "steps": []})
        elif stages:
            stages[-1]["steps"].append((instr, args))
    return stages


# --------------------------------------------------------------------------------------
# rendering and schema validation


def test_every_kustomization_under_deploy_is_covered():
    # A new overlay must be added to KUSTOMIZATIONS, or it would escape validation.
    found, components = set(), set()
    for path in DEPLOY.rglob("kustomization.yaml"):
        kind = yaml.safe_load(path.read_text()).get("kind", "Kustomization")
        rel = path.parent.relative_to(DEPLOY).as_posix()
        (components if kind == "Component" else found).add(rel)
    assert found == set(KUSTOMIZATIONS) | set(DEMOS)
    # Components are validated through an overlay that includes them.
    included = set()
    for k in KUSTOMIZATIONS:
        spec = yaml.safe_load((DEPLOY / k / "kustomization.yaml").read_text())
        included |= {(DEPLOY / k / c).resolve().relative_to(DEPLOY).as_posix()
                     for c in spec.get("components", [])}
    assert components <= included, f"components not used by any overlay: {components - included}"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_rendered_manifests_pass_strict_schema_validation(kustomization, version):
    docs = [d for d in render(kustomization) if (d["apiVersion"], d["kind"]) not in CRD_KINDS]
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.caught.message} "
                          f"at {'.'.join(map(str, exc.caught.absolute_path))}")
    assert not errors, "\n".join(errors)
    assert {"ServiceAccount", "Role", "RoleBinding", "Deployment"} <= {d["kind"] for d in docs}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kustomization", DEMOS)
def test_demo_workloads_pass_strict_schema_validation(kustomization, version):
    errors = []
    for doc in render(kustomization):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.caught.message}")
    assert not errors, "\n".join(errors)


def test_the_example_scaler_is_apart_from_its_demo_workloads():
    scaler, demo = render(EXAMPLE), render(EXAMPLE_WORKLOADS)
    workloads = {"checkout", "web-stable", "web-canary"}
    assert not [d for d in scaler if d["kind"] == "Deployment"
                and d["metadata"]["name"] in workloads]
    assert {d["metadata"]["name"] for d in demo if d["kind"] == "Deployment"} == workloads
    assert not [d for d in demo if d["kind"] in ("Role", "RoleBinding", "ServiceAccount",
                                                 "ConfigMap")]
    assert all(d["metadata"]["namespace"] == EXAMPLE_NAMESPACE for d in demo)


def test_strict_validation_would_catch_a_misspelt_field():
    # Guards the test above against a validator that passes everything: a typo that
    # Kubernetes would silently drop must fail here.
    deployment = one(render(BASE), "Deployment", "scaler")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["imagee"] = container.pop("image")
    with pytest.raises(kubernetes_validate.ValidationError, match="imagee"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_crd_documents_live_only_in_the_optional_component(tmp_path):
    # Kept apart from the schema test: these kinds need prometheus-operator's CRDs, for
    # which no schema is bundled, so they are checked against what they point at.
    for k in (BASE, EXAMPLE):
        assert not [d for d in render(k) if (d["apiVersion"], d["kind"]) in CRD_KINDS], k
    docs = render(EXAMPLE_OPERATOR)
    crd_docs = [d for d in docs if (d["apiVersion"], d["kind"]) in CRD_KINDS]
    assert {d["kind"] for d in crd_docs} == {"ServiceMonitor", "PrometheusRule"}
    for doc in crd_docs:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
        assert doc["metadata"]["namespace"] == EXAMPLE_NAMESPACE

    # The ServiceMonitor selects the metrics Service and scrapes one of its named ports.
    monitor = one(docs, "ServiceMonitor", "scaler")
    services = [s for s in find(docs, "Service")
                if monitor["spec"]["selector"]["matchLabels"].items()
                <= s["metadata"].get("labels", {}).items()]
    assert [s["metadata"]["name"] for s in services] == ["scaler-metrics"]
    port_names = {p["name"] for p in services[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint.get("path", "/metrics") == "/metrics"

    # Every alert uses only the daemon's metrics and parses as PromQL.
    rule = one(docs, "PrometheusRule", "scaler")
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert exprs
    for alert, expr in exprs.items():
        names = metric_names(expr)
        assert names and all(known_metric(n) for n in names), (alert, names)
    promtool_check(exprs, tmp_path)


# --------------------------------------------------------------------------------------
# RBAC and scope


def _expand_rules(role: dict) -> set[tuple[str, str, str, str | None]]:
    granted = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        names = rule.get("resourceNames") or [None]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in names:
                        granted.add((group, resource, verb, name))
    return granted


def granted_to(docs: list[dict], account: str) -> set[tuple[str, str, str, str | None]]:
    """Everything the Roles bound to ``account`` grant."""
    roles = {r["metadata"]["name"]: r for r in find(docs, "Role")}
    granted: set = set()
    for binding in find(docs, "RoleBinding"):
        if {"kind": "ServiceAccount", "name": account} in [
                {k: v for k, v in s.items() if k != "namespace"} for s in binding["subjects"]]:
            granted |= _expand_rules(roles[binding["roleRef"]["name"]])
    return granted


def public_slices(docs: list[dict]) -> set[str]:
    """The public Services' slices of the example's whenNeeded policies."""
    _configmap, policies = _example_policies()
    return {p.activator.public for p in policies
            if p.activator is not None and p.activator.mode == "whenNeeded"}


@pytest.mark.parametrize("kustomization", NAMESPACED)
def test_role_grants_exactly_the_allowed_permissions(kustomization):
    docs = render(kustomization)
    assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
    (role,) = [r for r in find(docs, "Role") if r["metadata"]["name"] == "scaler"]
    granted = _expand_rules(role)
    wildcards = {g for g in granted if "*" in (g[0], g[1], g[2])}
    assert not wildcards, f"wildcards granted: {wildcards}"
    assert granted - ALLOWED_PERMISSIONS == set(), "granted beyond the allowed list"
    # And nothing the daemon needs is missing (a Role that is too tight fails at run time).
    assert ALLOWED_PERMISSIONS - granted == set(), "allowed permission not granted"
    # The lease name the Role is pinned to is the one the daemon uses.
    args = scaler_container(docs)["args"]
    assert (flag(args, "lease-name") or "scaler") == "scaler"
    # With the activator: the daemon may also list slices and update the public ones,
    # each by name; the activator may only read slices. Nothing else, no wildcard.
    extra = (DAEMON_ACTIVATOR_PERMISSIONS
             | {(*SLICES, verb, name) for name in public_slices(docs)
                for verb in ("get", "update")}) if kustomization in WITH_ACTIVATOR else set()
    if kustomization in WITH_OBJECTS:
        extra |= OBJECT_PERMISSIONS
    assert granted_to(docs, "scaler") == ALLOWED_PERMISSIONS | extra
    assert granted_to(docs, "scaler-activator") == (ACTIVATOR_PERMISSIONS
                                                    if kustomization in WITH_ACTIVATOR
                                                    else set())


def test_role_binding_binds_the_role_to_the_deployments_service_account():
    docs = render_example()
    binding = one(docs, "RoleBinding", "scaler")
    role = one(docs, "Role", "scaler")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    pod_spec = one(docs, "Deployment", "scaler")["spec"]["template"]["spec"]
    account = one(docs, "ServiceAccount", pod_spec["serviceAccountName"])
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": EXAMPLE_NAMESPACE}]


def _namespaced(api_version: str, kind: str) -> bool:
    """Ask the Kubernetes client's generated API: namespaced kinds have create_namespaced_*."""
    import kubernetes.client

    group, _, version = api_version.rpartition("/")
    group = group.removesuffix(".k8s.io")
    prefix = "".join(part.capitalize() for part in group.split(".")) if group else "Core"
    api = getattr(kubernetes.client, f"{prefix}{version.capitalize()}Api")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    if hasattr(api, f"create_namespaced_{snake}"):
        return True
    assert hasattr(api, f"create_{snake}"), f"unknown kind {api_version} {kind}"
    return False


def test_base_holds_only_namespaced_objects():
    docs = render(BASE)
    cluster_scoped = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                      if not _namespaced(d["apiVersion"], d["kind"])]
    assert not cluster_scoped
    # The base leaves the namespace to the overlay; the overlay sets it on everything.
    assert all("namespace" not in d["metadata"] for d in docs)
    assert all(d["metadata"].get("namespace") == EXAMPLE_NAMESPACE for d in render_example())


def test_the_scope_check_recognises_cluster_scoped_kinds():
    # The check above would be vacuous if _namespaced said yes to everything.
    assert not _namespaced("rbac.authorization.k8s.io/v1", "ClusterRole")
    assert not _namespaced("v1", "Namespace")
    assert _namespaced("coordination.k8s.io/v1", "Lease")


# --------------------------------------------------------------------------------------
# network exposure


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_network_policy_admits_only_the_metrics_scrape(kustomization):
    """Ingress to the scaler pods: the metrics port, and the health port only from the
    activators (their pokes) when the activator component is in. The kubelet's probes come
    from the pod's node, which NetworkPolicy always admits, so they need no rule."""
    docs = render(kustomization)
    (policy,) = find(docs, "NetworkPolicy", "scaler")
    pod_labels = one(docs, "Deployment", "scaler")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    container = scaler_container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    admitted: dict[int, list] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("ports"), "a rule without ports admits every port"
        for port in rule["ports"]:
            assert port.get("protocol", "TCP") == "TCP"
            admitted.setdefault(ports.get(port["port"], port["port"]), []).append(
                rule.get("from"))
    with_activators = any(a.startswith("--activator-service") for a in container["args"])
    assert set(admitted) == ({ports["metrics"], ports["health"]} if with_activators
                             else {ports["metrics"]})
    if with_activators:
        activator = one(docs, "Deployment", "scaler-activator")
        labels = activator["spec"]["template"]["metadata"]["labels"]
        [sources] = admitted[ports["health"]]
        assert sources == [{"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": labels["app.kubernetes.io/name"]}}}]
    if kustomization == BASE:
        assert admitted[ports["metrics"]] == [None]
        return
    # The example narrows the scrape to the namespace its Prometheus lives in.
    env = {e["name"]: e.get("value") for e in container["env"]}
    prometheus_namespace = re.match(r"https?://[^.]+\.([^.]+)\.svc", env["PROMETHEUS_URL"])
    assert prometheus_namespace, env["PROMETHEUS_URL"]
    assert admitted[ports["metrics"]] == [[{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": prometheus_namespace.group(1)}}}]]


# --------------------------------------------------------------------------------------
# the scaler Deployment against the daemon's contract and the image


def test_scaler_deployment_runs_two_leader_elected_replicas():
    docs = render_example()
    deployment = one(docs, "Deployment", "scaler")
    assert deployment["spec"]["replicas"] == 2
    container = scaler_container(docs)
    args = container["args"]
    assert args[0] == "run" and "--leader-elect" in args
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["PROMETHEUS_URL"]["value"].startswith("http")
    # The PDB keeps one replica through drains without blocking them at two replicas.
    pdb = one(docs, "PodDisruptionBudget", "scaler")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    # The daemon exits within 5 s of SIGTERM (releasing the lease); the kubelet must wait.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 5


def test_probes_and_ports_match_the_daemons_flags():
    docs = render_example()
    container = scaler_container(docs)
    args = container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(flag(args, "metrics-port") or 9464)
    assert ports["health"] == int(flag(args, "health-port") or 8081)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    service = one(docs, "Service", "scaler-metrics")
    pod_labels = one(docs, "Deployment", "scaler")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]


def test_policies_are_mounted_as_a_reloadable_directory():
    docs = render_example()
    container = scaler_container(docs)
    pod_spec = one(docs, "Deployment", "scaler")["spec"]["template"]["spec"]
    policy_dir = flag(container["args"], "policy")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == policy_dir]
    # subPath mounts never see ConfigMap updates, which would defeat hot reload.
    assert "subPath" not in mount and mount["readOnly"] is True
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    configmap = one(docs, "ConfigMap", volume["configMap"]["name"])
    assert configmap["metadata"]["name"] == "scaler-policies"  # no hash: edits update in place
    assert configmap["data"]


def test_scaler_pod_is_locked_down_and_sized_from_measurements():
    docs = render(BASE)
    pod_spec = one(docs, "Deployment", "scaler")["spec"]["template"]["spec"]
    container = scaler_container(docs)
    pod_sc, sc = pod_spec["securityContext"], container["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 65532
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc.get("runAsUser", 65532) == 65532
    assert pod_spec["automountServiceAccountToken"] is True
    # A read-only root still needs a writable /tmp for tempfile.
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    # Measured: 60-80 MiB RSS steady. The request must cover the steady peak and the
    # limit leave headroom above it, or the pod is OOM-killed at its first busy tick.
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert quantity_bytes(requests["memory"]) >= 80 * 2**20
    assert quantity_bytes(limits["memory"]) >= 1.5 * quantity_bytes(requests["memory"])
    assert 0 < quantity_cores(requests["cpu"]) <= 0.1  # a tick every 2 s is tiny
    assert quantity_cores(limits["cpu"]) >= 0.5  # start-up is ~1.5 core-seconds


def test_deployment_user_matches_the_images_user():
    runtime = dockerfile_stages()[-1]
    (user,) = [args for instr, args in runtime["steps"] if instr == "USER"]
    uid, _, gid = user.partition(":")
    pod_sc = one(render(BASE), "Deployment", "scaler")["spec"]["template"]["spec"]["securityContext"]
    assert (int(uid), int(gid or uid)) == (pod_sc["runAsUser"], pod_sc["runAsGroup"])


# --------------------------------------------------------------------------------------
# example policies and workloads


def _example_policies():
    configmap = one(render_example(), "ConfigMap", "scaler-policies")
    policies = [p for name, text in sorted(configmap["data"].items())
                for p in parse_policies(text, f"scaler-policies/{name}")]
    return configmap, policies


def test_example_policies_are_valid_and_drive_rendered_workloads():
    docs = render_example()
    configmap, policies = _example_policies()
    check_unique(policies)
    # The ConfigMap carries every file of the overlay's policies directory.
    files = {p.name for p in (DEPLOY / EXAMPLE / "policies").glob("*.yaml")}
    assert set(configmap["data"]) == files
    role_scaled = {r for (_g, r, verb, _n) in _expand_rules(one(docs, "Role", "scaler"))
                   if r.endswith("/scale") and verb == "patch"}
    for policy in policies:
        ref = policy.scale_target_ref
        # The daemon's Role is namespaced: it can only scale its own namespace.
        assert ref.namespace == EXAMPLE_NAMESPACE, policy.name
        workload = one(docs, ref.kind, ref.name)
        assert workload["apiVersion"] == ref.api_version
        assert f"{ref.kind.lower()}s/scale" in role_scaled
        # The scaler owns replicas; a manifest value would be re-applied over its decisions.
        assert "replicas" not in workload["spec"], f"{ref.name} sets spec.replicas"


def test_example_demand_is_measured_at_the_ingress_not_in_the_workload(tmp_path):
    _configmap, policies = _example_policies()
    assert any(p.min_replicas == 0 for p in policies)
    for policy in policies:
        selectors = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", policy.metric.query)
        assert selectors, policy.name
        # At zero replicas only series from outside the workload's pods still exist.
        assert all(s.startswith("nginx_ingress_controller_") for s in selectors), selectors
    promtool_check({p.name: p.metric.query for p in policies}, tmp_path)


def test_canary_and_stable_policies_split_the_route_by_the_ingress_weight():
    docs = render_example()
    canary_ingress = one(docs, "Ingress", "web-canary")
    annotations = canary_ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    weight = float(annotations["nginx.ingress.kubernetes.io/canary-weight"]) / 100
    _configmap, policies = _example_policies()
    by_name = {p.name: p for p in policies}

    def split(query: str) -> tuple[str, float]:
        total, factor = re.fullmatch(r"(.*\S)\s*\*\s*([0-9.]+)", query.strip()).groups()
        return total, float(factor)

    stable_total, stable_share = split(by_name["web-stable"].metric.query)
    canary_total, canary_share = split(by_name["web-canary"].metric.query)
    assert stable_total == canary_total  # one total, two shares of it
    assert canary_share == pytest.approx(weight)
    assert stable_share == pytest.approx(1 - weight)
    assert by_name["web-canary"].scale_target_ref.name == \
        canary_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]


# --------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(HADOLINT), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_layers_dependencies_before_code():
    stages = dockerfile_stages()
    steps = [(i, instr, args) for i, stage in enumerate(stages) for instr, args in stage["steps"]]
    context_copies = [(i, args) for i, instr, args in steps
                      if instr == "COPY" and "--from" not in args]
    # Only pyproject.toml reaches the context before the dependency install...
    first_install = next(n for n, (_i, instr, args) in enumerate(steps)
                         if instr == "RUN" and "-r /tmp/requirements.txt" in args)
    before = [args for n, (_i, instr, args) in enumerate(steps)
              if instr == "COPY" and n < first_install]
    assert before == ["pyproject.toml ./"]
    # ...and the code comes after it and is installed without dependencies.
    code_copy = next(n for n, (_i, instr, args) in enumerate(steps)
                     if instr == "COPY" and args.startswith("scaler/"))
    assert code_copy > first_install
    assert any(instr == "RUN" and "--no-deps" in args for _i, instr, args in steps[code_copy:])
    assert context_copies, "no COPY from the build context"

    runtime = stages[-1]
    assert runtime["from"] in {"${PYTHON_IMAGE}", "python:3.11-slim-bookworm"}
    default_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert default_base and default_base.group(1).startswith("python:3.11-slim")
    runtime_steps = runtime["steps"]
    # The runtime stage installs nothing: no pip, no compilers, just the two venv layers.
    assert not [a for instr, a in runtime_steps if instr == "RUN" and re.search(r"pip|apt|gcc", a)]
    copies = [a for instr, a in runtime_steps if instr == "COPY"]
    assert copies == ["--from=deps /opt/venv /opt/venv", "--from=app /staging/opt/venv /opt/venv"]
    entry = [json.loads(a) for instr, a in runtime_steps if instr == "ENTRYPOINT"]
    cmd = [json.loads(a) for instr, a in runtime_steps if instr == "CMD"]
    assert entry == [["scaler"]]
    assert cmd == [["run", "--policy", "/etc/scaler/policies"]]


def test_dockerignore_admits_exactly_what_the_dockerfile_copies():
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"  # allow-list: nothing enters the context by default
    admitted = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for stage in dockerfile_stages():
        for instr, args in stage["steps"]:
            if instr == "COPY" and "--from" not in args:
                copied |= {src.rstrip("/") for src in args.split()[:-1]}
    assert copied == admitted
    # The wheel build needs the readme pyproject.toml names, and the code.
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "scaler"} <= copied


# --------------------------------------------------------------------------------------
# Grafana dashboard and operating guide


def _dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())


def _panel_targets(dashboard: dict):
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner, target


def test_dashboard_covers_every_metric_per_policy(tmp_path):
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["policy"]["type"] == "query"
    assert "policy" in variables["policy"]["query"]["query"]
    used: set[str] = set()
    exprs = {}
    for panel, target in _panel_targets(dashboard):
        expr = target["expr"]
        names = metric_names(expr)
        assert names and all(known_metric(n) for n in names), (panel["title"], names)
        used |= {n for n in METRICS if any(m == n or m.startswith(n + "_") for m in names)}
        # Every series that carries a policy label is filtered by the variable.
        if names & PER_POLICY_METRICS:
            assert 'policy=~"$policy"' in expr, (panel["title"], expr)
        assert target["datasource"]["uid"] == "${datasource}"
        exprs[f"{panel['title']} {target['refId']}"] = expr
    assert used == METRICS, f"metrics without a panel: {METRICS - used}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # Substitute Grafana's variables, then let Prometheus' parser judge the PromQL.
    promtool_check({k: v.replace("$__rate_interval", "1m").replace("$policy", ".*")
                    .replace("$namespace", ".*") for k, v in exprs.items()}, tmp_path)


# --------------------------------------------------------------------------------------
# the activator component


def activator_container(docs: list[dict]) -> dict:
    deployment = one(docs, "Deployment", "scaler-activator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_the_activator_runs_two_replicas_on_the_daemons_policies():
    docs = render_example()
    deployment = one(docs, "Deployment", "scaler-activator")
    assert deployment["spec"]["replicas"] == 2
    pdb = one(docs, "PodDisruptionBudget", "scaler-activator")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    container = activator_container(docs)
    args = container["args"]
    assert args[0] == "activator"
    # The same policies as the daemon: the same ConfigMap, mounted as a directory.
    pod_spec = deployment["spec"]["template"]["spec"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == flag(args, "policy")]
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "scaler-policies" and "subPath" not in mount
    assert pod_spec["serviceAccountName"] == "scaler-activator"
    # Drain fits in the grace period, after the preStop pause.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause + float(flag(args, "drain-timeout")) < pod_spec["terminationGracePeriodSeconds"]


def test_activator_ports_probes_and_services_match_its_flags():
    docs = render_example()
    container = activator_container(docs)
    args = container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(flag(args, "listen").rsplit(":", 1)[1])
    assert ports["admin"] == int(flag(args, "admin-listen").rsplit(":", 1)[1])
    for probe, path in (("livenessProbe", "/healthz"), ("startupProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "admin"}
    service = one(docs, "Service", "scaler-activator")
    labels = one(docs, "Deployment", "scaler-activator")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "http": "http", "admin": "admin"}
    # The daemon reads the activators behind that Service, on the port named admin.
    daemon_args = scaler_container(docs)["args"]
    assert flag(daemon_args, "activator-service") == "scaler-activator"
    # The activator pokes the daemons behind scaler-api, whose port reaches the daemon's
    # health server (where /v1/poke is), ready or not.
    name, _, port = flag(args, "daemon-service").partition(":")
    api = one(docs, "Service", name)
    daemon_labels = one(docs, "Deployment", "scaler")["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"].items() <= daemon_labels.items()
    assert api["spec"]["publishNotReadyAddresses"] is True
    (api_port,) = [p for p in api["spec"]["ports"] if p["name"] == (port or "api")]
    health = {p["name"]: p["containerPort"] for p in scaler_container(docs)["ports"]}
    assert api_port["targetPort"] == "health" and health["health"] == int(
        flag(daemon_args, "health-port") or 8080)


def test_the_admin_port_is_open_only_to_the_daemons_and_prometheus():
    docs = render_example()
    (policy,) = find(docs, "NetworkPolicy", "scaler-activator")
    labels = one(docs, "Deployment", "scaler-activator")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {tuple(p["port"] for p in rule["ports"]): rule.get("from")
             for rule in policy["spec"]["ingress"]}
    assert rules[("http",)] is None                       # workload traffic from anywhere
    sources = rules[("admin",)]
    daemon_labels = one(docs, "Deployment", "scaler")["spec"]["template"]["metadata"]["labels"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "scaler"}}} in sources
    assert sources[0]["podSelector"]["matchLabels"].items() <= daemon_labels.items()
    assert any("namespaceSelector" in s for s in sources)
    assert len(rules) == 2


def test_activator_pod_is_locked_down_and_sized_from_measurements():
    docs = render_example()
    pod_spec = one(docs, "Deployment", "scaler-activator")["spec"]["template"]["spec"]
    container = activator_container(docs)
    sc = container["securityContext"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    resources = container["resources"]
    # Measured: under 50 MiB holding 1,000 requests (benchmarks/README.md).
    assert quantity_bytes(resources["requests"]["memory"]) >= 60 * 2**20
    assert quantity_bytes(resources["limits"]["memory"]) >= 100 * 2**20
    # A CPU limit throttles a proxy into tail latency: a request, no limit.
    assert "cpu" not in resources.get("limits", {})
    assert quantity_cores(resources["requests"]["cpu"]) > 0


def test_each_whenneeded_policy_has_its_public_service_and_slice():
    docs = render_example()
    names = public_slices(docs)
    assert names == {"checkout-public"}
    for name in names:
        public = one(docs, "Service", name)
        assert "selector" not in public["spec"]           # the daemon writes its endpoints
        slice_ = one(docs, "EndpointSlice", name)
        assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == name
        assert slice_["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
            "scaler"
        assert [p["name"] for p in slice_["ports"]] == [p["name"]
                                                         for p in public["spec"]["ports"]]
        # The ingress sends the policy's hosts to the public Service.
        _configmap, policies = _example_policies()
        (policy,) = [p for p in policies if p.activator and p.activator.public == name]
        for ingress in find(docs, "Ingress"):
            for rule in ingress["spec"]["rules"]:
                if rule["host"] in policy.activator.hosts:
                    backends = {p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
                    assert backends == {name}


def test_operating_guide_names_only_real_metrics():
    text = (ROOT / "docs" / "operating.md").read_text()
    names = metric_names(text)
    assert names, "the guide should point at the daemon's metrics"
    assert {n for n in names if not known_metric(n)} == set()


def test_the_cluster_wide_variant_grants_the_workload_rules_in_every_namespace_only():
    docs = render(EXAMPLE_CLUSTER_WIDE)
    (role,) = find(docs, "ClusterRole")
    granted = _expand_rules(role)
    assert not {g for g in granted if "*" in (g[0], g[1], g[2])}
    # Exactly the namespaced Role's workload and Event rules: no lease, no secret,
    # nothing more, for one daemon serving every namespace.
    assert granted == WORKLOAD_PERMISSIONS
    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "scaler",
                                    "namespace": EXAMPLE_NAMESPACE}]
    # The leases stay namespaced, under the base Role, and the daemon watches everywhere.
    (ns_role,) = [r for r in find(docs, "Role") if r["metadata"]["name"] == "scaler"]
    assert _expand_rules(ns_role) == ALLOWED_PERMISSIONS
    assert "--namespace=all" in scaler_container(docs)["args"]
    # Without the component, no overlay is cluster-wide.
    for k in NAMESPACED:
        assert not find(render(k), "ClusterRole")


def test_the_sharded_variant_adds_only_the_leases_of_the_shards():
    docs = render(EXAMPLE_SHARDED)
    assert not find(docs, "ClusterRole")
    shard_leases = {("coordination.k8s.io", "leases", verb, None)
                    for verb in ("get", "list", "update")}
    extra = (DAEMON_ACTIVATOR_PERMISSIONS
             | {(*SLICES, verb, name) for name in public_slices(docs)
                for verb in ("get", "update")})
    assert granted_to(docs, "scaler") == ALLOWED_PERMISSIONS | extra | shard_leases
    deployment = one(docs, "Deployment", "scaler")
    args = scaler_container(docs)["args"]
    assert deployment["spec"]["replicas"] == 3
    assert "--shard" in args and "--leader-elect" not in args
