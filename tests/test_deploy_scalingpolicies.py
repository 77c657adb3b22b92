"""The scalingpolicies component: the daemon may read ScalingPolicy objects and write their
status, nothing more; and the CRD is one cluster-scoped document apart from the base.

Static checks of what `kubectl kustomize` renders (the venv's kubectl).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from scaler.policy import schema

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = Path(sys.executable).parent / "kubectl"


def _render(tmp_path: Path) -> list[dict]:
    overlay = ROOT / "deploy/overlays/example-scalingpolicies"
    done = subprocess.run([str(KUBECTL), "kustomize", str(overlay)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _grants(role: dict) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]
            if not rule.get("resourceNames")}


def test_the_component_grants_exactly_read_and_status_update(tmp_path):
    docs = _render(tmp_path)
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    role = roles["scaler-scalingpolicies"]
    assert _grants(role) == {
        ("scaler.dev", "scalingpolicies", "get"), ("scaler.dev", "scalingpolicies", "list"),
        ("scaler.dev", "scalingpolicies", "watch"),
        ("scaler.dev", "scalingpolicies/status", "update")}
    # No other Role grants anything on scaler.dev.
    for name, other in roles.items():
        if name != "scaler-scalingpolicies":
            assert not [g for g in _grants(other) if g[0] == "scaler.dev"]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"
                  and d["roleRef"]["name"] == "scaler-scalingpolicies"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "scaler",
                                    "namespace": "shop"}]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--policy-source=kubernetes" in args
    # Objects only: no policy files, so no --policy and no policies volume.
    assert not [a for a in args if a.startswith("--policy=")]
    assert "policies" not in {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}


def test_the_example_objects_are_valid_policies():
    from scaler.daemon.policy_objects import to_policy

    found = sorted((ROOT / "deploy/overlays/example-scalingpolicies/scalingpolicies").glob("*.yaml"))
    assert found
    for path in found:
        obj = yaml.safe_load(path.read_text())
        obj["metadata"]["namespace"] = "shop"
        policy, errors = to_policy(obj, "shop")
        assert errors == [] and policy.name == f"shop/{obj['metadata']['name']}"


def test_the_crd_is_cluster_scoped_and_apart_from_the_base(tmp_path):
    (crd,) = list(yaml.safe_load_all((ROOT / "deploy/crd/crd.yaml").read_text()))
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{schema.PLURAL}.{schema.GROUP}"
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Target", "Metric", "Desired", "Ready", "Panic", "Age"]
    assert not [d for d in _render(tmp_path) if d["kind"] == "CustomResourceDefinition"]
