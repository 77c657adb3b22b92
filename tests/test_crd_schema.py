"""The ScalingPolicy CRD: generated from the parser, and the API server agrees with it.

The committed deploy/crd/crd.yaml is what ``scaler.policy.schema`` generates; and every
range boundary the policy validator has is walked against the fake API server's schema
and CEL validation of that CRD: for each value just inside and just outside, the server
accepts exactly what ``scaler validate`` accepts.
"""

from __future__ import annotations

import copy
import textwrap
import itertools
from pathlib import Path

import pytest
import yaml
from support.fakekube import ApiError, FakeKubeAPIServer

from scaler.policy import parse, schema
from scaler.policy.parse import ANY, PolicyError, Range, parse_policies

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "deploy" / "crd" / "crd.yaml"


def test_committed_crd_is_the_generated_one():
    assert CRD.read_text() == schema.crd_yaml(), (
        "deploy/crd/crd.yaml is stale: python -m scaler.policy.schema > deploy/crd/crd.yaml")


def test_crd_spec_keys_are_the_policy_files_spec_keys():
    props = schema.spec_schema()["properties"]
    assert set(props) == parse._SPEC_KEYS
    assert set(props["prediction"]["properties"]) == parse._PREDICTION_KEYS
    assert set(props["scaleToZero"]["properties"]) == parse._SCALE_TO_ZERO_KEYS
    assert set(props["activator"]["properties"]) == parse._ACTIVATOR_KEYS
    assert set(props["scaleTargetRef"]["properties"]) == parse._REF_KEYS
    assert set(props["metric"]["properties"]) == parse._METRIC_KEYS


# ---------------------------------------------------------------------- boundaries

@pytest.fixture(scope="module")
def server():
    with FakeKubeAPIServer() as srv:
        srv.create(yaml.safe_load(CRD.read_text()))
        yield srv


BASE_SPEC = {"scaleTargetRef": {"name": "web"}, "metric": {"query": "sum(x)"}}
# Each block's key needs a context the validator accepts for the other keys.
CONTEXT = {
    "prediction.quantile": {"prediction": {"model": "holt-winters", "seasonality": "1d"}},
    "prediction.refitInterval": {"prediction": {"model": "holt-winters", "seasonality": "1d"}},
    "prediction.minHistory": {"prediction": {"model": "holt-winters", "seasonality": "1d"}},
    "scaleToZero.coldStartCost": {"scaleToZero": {"keepAlive": "histogram"}},
    "activator.maxPendingRequests": {"activator": {"port": 8080, "hosts": ["a.example"]}},
    "activator.timeout": {"activator": {"port": 8080, "hosts": ["a.example"]}},
}
# Keys whose range OpenAPI cannot hold (several JSON forms): the daemon checks them and
# reports a bad one on the object's Ready condition.
LEFT_TO_THE_DAEMON = {"prediction.maxExtraCost", "prediction.seasonality"}


def _ranged_keys() -> list[tuple[str, str, Range]]:
    rows = [(key, kind, r) for key, _a, kind, r, _t in parse._SPEC_FIELDS]
    rows += [(f"prediction.{key}", kind, r) for key, _a, kind, r, _t in parse._PREDICTION_FIELDS]
    rows += [("schedules.duration", "whole-duration", parse.SCHEDULE_DURATION),
             ("schedules.minReplicas", "integer", parse.SCHEDULE_MIN_REPLICAS),
             ("scaleToZero.coldStartCost", "duration", parse.COLD_START_COST),
             ("activator.maxPendingRequests", "integer", parse.MAX_PENDING),
             ("activator.timeout", "duration", parse.ACTIVATOR_TIMEOUT)]
    return [row for row in rows if row[2] != ANY and row[0] not in LEFT_TO_THE_DAEMON]


def _step(kind: str, at: float) -> float:
    if kind in ("integer", "whole-duration", "window"):
        return 1
    return max(abs(at) * 1e-3, 1e-3)


def _probes(kind: str, r: Range) -> list[float]:
    """Every boundary of the range, and a value just beyond it on each side."""
    points = []
    for edge in [r.low, r.high, *r.also]:
        if edge is not None:
            step = _step(kind, edge)
            points += [edge - step, edge, edge + step]
    return sorted(set(points))


def _encode(kind: str, value: float):
    if kind == "integer":
        return int(value)
    if kind == "number":
        return value
    return f"{value:g}s"   # a negative one: the validator and the pattern both refuse it


def _spec_with(key: str, value) -> dict:
    spec = copy.deepcopy(BASE_SPEC)
    if key.startswith("schedules."):      # a key of one list item
        item = {"cron": "0 8 * * 1-5", "duration": "10h", "minReplicas": 3,
                "timezone": "Europe/Berlin"}
        spec["schedules"] = [{**item, key.split(".", 1)[1]: value}]
        return spec
    for block, extra in CONTEXT.get(key, {}).items():
        spec[block] = copy.deepcopy(extra)
    *blocks, leaf = key.split(".")
    at = spec
    for block in blocks:
        at = at.setdefault(block, {})
    at[leaf] = value
    return spec


def _validator_accepts(spec: dict) -> bool:
    doc = {"apiVersion": "scaler/v1", "kind": "ScalingPolicy", "metadata": {"name": "p"},
           "spec": spec}
    try:
        parse_policies(yaml.safe_dump(doc), "probe.yaml")
    except PolicyError:
        return False
    return True


_names = (f"p{i}" for i in itertools.count())


def _server_accepts(server: FakeKubeAPIServer, spec: dict) -> bool:
    obj = {"apiVersion": schema.API_VERSION, "kind": schema.KIND,
           "metadata": {"name": next(_names), "namespace": "default"}, "spec": spec}
    try:
        server.create(obj)
    except ApiError as exc:
        assert exc.code == 422, exc
        return False
    return True


@pytest.mark.parametrize("key,kind,r", _ranged_keys(), ids=lambda v: v if isinstance(v, str)
                         else None)
def test_the_server_agrees_with_the_validator_at_every_boundary(server, key, kind, r):
    probes = _probes(kind, r)
    assert len(probes) >= 3
    verdicts = []
    for value in probes:
        spec = _spec_with(key, _encode(kind, value))
        verdicts.append((value, _validator_accepts(spec), _server_accepts(server, spec)))
    disagree = [(v, mine, theirs) for v, mine, theirs in verdicts if mine != theirs]
    assert not disagree, f"{key}: (value, validator, server) disagree: {disagree}"
    # Both sides of a boundary were seen, so the walk tested something.
    assert {mine for _v, mine, _s in verdicts} == {True, False}


def test_only_the_multi_form_keys_are_left_to_the_daemon():
    props = schema.spec_schema()["properties"]
    untyped = {f"prediction.{k}" for k, v in props["prediction"]["properties"].items()
               if "type" not in v}
    assert untyped == LEFT_TO_THE_DAEMON


@pytest.mark.parametrize("spec_change,words", [
    ({"minReplicas": 5, "maxReplicas": 3}, "minReplicas must be at most maxReplicas"),
    ({"initialReplicas": 4, "maxReplicas": 3}, "initialReplicas must be at most maxReplicas"),
    ({"activationReplicas": 3, "minReplicas": 4}, "activationReplicas must be within"),
    ({"metric": {"source": "activator"}}, "needs an activator block"),
    ({"metric": {"type": "rps"}}, "query is required"),
    ({"scaleToZero": {"coldStartCost": "10m"}}, "only with keepAlive: histogram"),
    ({"maxReplicas": 2, "schedules": [{"cron": "0 8 * * *", "duration": "1h",
                                       "minReplicas": 3}]},
     "a schedule's minReplicas must be at most maxReplicas"),
])
def test_rules_between_keys_are_refused_by_both(server, spec_change, words):
    spec = {**copy.deepcopy(BASE_SPEC), **spec_change}
    assert not _validator_accepts(spec)
    obj = {"apiVersion": schema.API_VERSION, "kind": schema.KIND,
           "metadata": {"name": next(_names), "namespace": "default"}, "spec": spec}
    with pytest.raises(ApiError) as err:
        server.create(obj)
    assert words in str(err.value)


def test_defaults_are_the_policy_defaults(server):
    obj = {"apiVersion": schema.API_VERSION, "kind": schema.KIND,
           "metadata": {"name": "defaulted", "namespace": "default"},
           "spec": copy.deepcopy(BASE_SPEC)}
    stored = server.create(obj)["spec"]
    # The defaulted spec parses to the very policy the bare one does.
    bare = parse.parse_document({"apiVersion": "scaler/v1", "kind": "ScalingPolicy",
                                 "metadata": {"name": "p"}, "spec": BASE_SPEC}, "a")[0]
    full = parse.parse_document({"apiVersion": "scaler/v1", "kind": "ScalingPolicy",
                                 "metadata": {"name": "p"}, "spec": stored}, "b")[0]
    assert bare is not None and full == bare
    assert stored["stableWindow"] == "1m" and stored["tickInterval"] == "2s"
    assert "target" not in stored      # depends on metric.type: the parser's default


def test_scaler_validate_checks_object_manifests_as_the_daemon_would(tmp_path, capsys):
    from scaler.cli import main

    manifest = tmp_path / "web.yaml"
    manifest.write_text(textwrap.dedent("""\
        apiVersion: scaler.dev/v1alpha1
        kind: ScalingPolicy
        metadata: {name: web, namespace: shop, uid: 0f1e}
        spec:
          scaleTargetRef: {name: web}
          metric: {query: q}
        status: {desiredReplicas: 3}
        """))
    assert main(["validate", str(manifest)]) == 0
    assert capsys.readouterr().out.startswith("web: Deployment shop/web,")
    manifest.write_text(manifest.read_text().replace("metric: {query: q}",
                                                     "metric: {query: q}\n  stableWindow: 1d"))
    assert main(["validate", str(manifest)]) == 2
    assert "spec.stableWindow: '1d' is out of range (allowed: 6s..1h)" in capsys.readouterr().err


def test_the_daemons_policy_files_stay_scaler_v1(tmp_path):
    from scaler.policy import files

    manifest = tmp_path / "web.yaml"
    manifest.write_text("apiVersion: scaler.dev/v1alpha1\nkind: ScalingPolicy\n"
                        "metadata: {name: web}\nspec: {scaleTargetRef: {name: web}, "
                        "metric: {query: q}}\n")
    with pytest.raises(PolicyError, match="apiVersion: 'scaler.dev/v1alpha1' is not "
                                          r"supported \(allowed: scaler/v1\)"):
        files.load(manifest)
