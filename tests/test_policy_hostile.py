"""Hostile policy files: a clean one-line error with exit code 2, never a traceback.

Reproduces what fuzzing found (1,000 nested "[", a 4,301-digit integer, durations of 309
nines, a scaleTargetRef name that is a path), checks the Kubernetes name rules a target
reference must follow, the "did you mean" hint for misspelt keys, and lets hypothesis
throw arbitrary bytes, text and YAML documents at the parser: only PolicyError escapes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler import cli
from scaler.policy import PolicyError, ScaleTargetRef, parse_document, parse_policies
from scaler.policy import files as policy_files

SOURCE = "policies/web.yaml"
HEAD = ("apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n"
        "  scaleTargetRef: {name: web}\n  metric: {query: sum(load)}\n")


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policies(text, SOURCE)
    return info.value.errors


# ------------------------------------------------------------------ what fuzzing found

HOSTILE = [
    pytest.param(HEAD + "  target: " + "[" * 1000 + "\n",
                 ["line 7", "nested more than 64 levels"], id="1000-nested-brackets"),
    pytest.param(HEAD + "  target: " + "1" * 4301 + "\n",
                 ["spec.target", "an integer of 4,301 digits", "out of range",
                  "allowed: >= 0.01"], id="4301-digit-number"),
    pytest.param(HEAD + "  minReplicas: " + "7" * 4301 + "\n",
                 ["spec.minReplicas", "4,301 digits", "allowed: 0..2147483647"],
                 id="4301-digit-integer"),
    pytest.param(HEAD + "  stableWindow: " + "9" * 309 + "s\n",
                 ["spec.stableWindow", "'999", "(310 characters)", "longer than any duration",
                  "allowed: 6s..1h"], id="stableWindow-309-nines"),
    pytest.param(HEAD + "  tickInterval: " + "9" * 309 + "s\n",
                 ["spec.tickInterval", "longer than any duration", "allowed: 1s..1m"],
                 id="tickInterval-309-nines"),
    pytest.param(HEAD + "  scaleToZeroGracePeriod: " + "9" * 20 + "h\n",
                 ["spec.scaleToZeroGracePeriod", "longer than any duration"],
                 id="grace-longer-than-go-allows"),
    pytest.param(HEAD + "  target: 0x" + "f" * 5000 + "\n",
                 ["spec.target", "out of range"], id="5000-hex-digits"),
    pytest.param(HEAD + "  target: 2026-02-30\n", ["line 7", "cannot read this value",
                                                    "day is out of range"],
                 id="impossible-date"),
    pytest.param(HEAD + "  target: 1\x00\n", ["line 7, column 12", "not valid YAML",
                                                "special characters are not allowed", "U+0000"],
                 id="nul-character"),
    pytest.param(HEAD.replace("{name: web}\n  metric",
                              "{name: 'demo/../../../../api/v1/namespaces/default/secrets/x'}"
                              "\n  metric"),
                 ["spec.scaleTargetRef.name", "'demo/../../", "not a valid Kubernetes object "
                  "name", "DNS-1123 subdomain"], id="name-is-a-path"),
]


@pytest.mark.parametrize(("text", "needles"), HOSTILE)
def test_hostile_policy_is_one_error_naming_the_place(text: str, needles: list[str]) -> None:
    [message] = errors_of(text)
    assert message.startswith(SOURCE)
    for needle in needles:
        assert needle in message, message
    assert len(message) < 400, message


@pytest.mark.parametrize(("text", "needles"), HOSTILE[:5])
def test_validate_exits_2_without_a_traceback(tmp_path: Path, text: str,
                                              needles: list[str]) -> None:
    """The console script, in its own process: exit 2, one line, no traceback."""
    path = tmp_path / "web.yaml"
    path.write_text(text)
    scaler = Path(sys.executable).parent / "scaler"
    done = subprocess.run([str(scaler), "validate", str(path)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {path}")
    assert "Traceback" not in done.stderr and needles[-1] in line


# ------------------------------------------------------------------ the target reference

VALID_REFS = [
    {"name": "web"},
    {"name": "web-1.shop", "namespace": "team-a"},
    {"name": "w" * 253},
    {"name": "db", "kind": "StatefulSet", "apiVersion": "apps/v1"},
    {"name": "canary", "kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1"},
    {"name": "x", "kind": "Widget-V2", "apiVersion": "example.com/v1beta1"},
    {"name": "x", "kind": "Pod", "apiVersion": "v1"},
]


@pytest.mark.parametrize("ref", VALID_REFS, ids=lambda r: ",".join(f"{k}={v[:12]}"
                                                                    for k, v in r.items()))
def test_valid_target_references_are_accepted(ref: dict[str, str]) -> None:
    text = HEAD.replace("{name: web}\n  metric", yaml.safe_dump(ref, default_flow_style=True)
                        .strip() + "\n  metric")
    [policy] = parse_policies(text, SOURCE)
    assert policy.scale_target_ref.name == ref["name"]


INVALID_REFS = [
    pytest.param({"name": "demo/../../secrets/x"}, "name", "object name", id="name-slash"),
    pytest.param({"name": ".."}, "name", "object name", id="name-dot-dot"),
    pytest.param({"name": "Web"}, "name", "object name", id="name-uppercase"),
    pytest.param({"name": "web?watch=1"}, "name", "object name", id="name-query"),
    pytest.param({"name": "web%2Fx"}, "name", "object name", id="name-percent"),
    pytest.param({"name": "-web"}, "name", "object name", id="name-leading-dash"),
    pytest.param({"name": "w" * 254}, "name", "at most 253", id="name-too-long"),
    pytest.param({"name": "web", "namespace": "a.b"}, "namespace", "DNS-1123 label",
                 id="namespace-dot"),
    pytest.param({"name": "web", "namespace": "../kube-system"}, "namespace", "namespace",
                 id="namespace-path"),
    pytest.param({"name": "web", "namespace": "n" * 64}, "namespace", "at most 63",
                 id="namespace-too-long"),
    pytest.param({"name": "web", "kind": "Deploy ment"}, "kind", "not a valid kind",
                 id="kind-space"),
    pytest.param({"name": "web", "kind": "deployments/scale"}, "kind", "not a valid kind",
                 id="kind-slash"),
    pytest.param({"name": "web", "apiVersion": "apps/v1/../../api"}, "apiVersion",
                 "GROUP/VERSION", id="apiVersion-path"),
    pytest.param({"name": "web", "apiVersion": "apps/"}, "apiVersion", "GROUP/VERSION",
                 id="apiVersion-no-version"),
    pytest.param({"name": "web", "apiVersion": "Apps/V1"}, "apiVersion", "GROUP/VERSION",
                 id="apiVersion-uppercase"),
]


@pytest.mark.parametrize(("ref", "key", "needle"), INVALID_REFS)
def test_invalid_target_references_are_refused(ref: dict[str, str], key: str,
                                               needle: str) -> None:
    text = HEAD.replace("{name: web}\n  metric", yaml.safe_dump(ref, default_flow_style=True)
                        .strip() + "\n  metric")
    [message] = errors_of(text)
    assert f"spec.scaleTargetRef.{key}: " in message
    assert needle in message


def test_an_invalid_reference_cannot_even_be_built() -> None:
    """The actuator builds request paths from these fields: construction refuses."""
    with pytest.raises(ValueError, match="name 'demo/../x'"):
        ScaleTargetRef("demo/../x")
    with pytest.raises(ValueError, match="namespace"):
        ScaleTargetRef("web", namespace="default/secrets")
    assert str(ScaleTargetRef("web", "shop")) == "Deployment shop/web"


# ------------------------------------------------------------------ did you mean

@pytest.mark.parametrize(("line", "key", "suggestion"), [
    pytest.param("  maxReplica: 3\n", "spec.maxReplica", "maxReplicas", id="missing-s"),
    pytest.param("  stablewindow: 60s\n", "spec.stablewindow", "stableWindow", id="case"),
    pytest.param("  tickintervall: 2s\n", "spec.tickintervall", "tickInterval", id="typo"),
    pytest.param("  scaleToZeroGrace: 30s\n", "spec.scaleToZeroGrace",
                 "scaleToZeroGracePeriod", id="truncated"),
])
def test_unknown_key_suggests_the_closest(line: str, key: str, suggestion: str) -> None:
    [message] = errors_of(HEAD + line)
    assert f"{key}: unknown key; did you mean {suggestion}? (allowed: " in message


def test_unknown_key_far_from_any_gets_no_suggestion() -> None:
    [message] = errors_of(HEAD + "  cooldown: 5m\n")
    assert "spec.cooldown: unknown key (allowed: " in message
    assert "did you mean" not in message


def test_a_suggestion_inside_a_block() -> None:
    [message] = errors_of(HEAD.replace("{query: sum(load)}", "{query: sum(load), typ: rps}"))
    assert "spec.metric.typ: unknown key; did you mean type?" in message


# ------------------------------------------------------------------ fuzzing

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=30) | st.sampled_from(["60s", "1h", "0x1f", "1e400", "-1",
                                                     "9" * 400 + "s", "2026-02-30"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
SPEC_KEYS = ["scaleTargetRef", "metric", "target", "minReplicas", "maxReplicas",
             "stableWindow", "tickInterval", "prediction", "scaleToZero", "windowAlgorithm",
             "scaleDownDelay", "activationReplicas", "targetBurstCapacity"]


@st.composite
def mutated_documents(draw: st.DrawFn) -> object:
    """A valid policy with random keys replaced by arbitrary values (often nested)."""
    doc = yaml.safe_load(HEAD)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "metadata", "spec", "ref", "metric"]))
        key = draw(st.sampled_from(SPEC_KEYS + ["name", "kind", "apiVersion", "namespace",
                                                "query", "type"]) | st.text(max_size=10))
        block = {"top": doc, "metadata": doc["metadata"], "spec": doc["spec"],
                 "ref": doc["spec"]["scaleTargetRef"], "metric": doc["spec"]["metric"]}[where]
        if isinstance(block, dict):
            block[key] = draw(VALUES)
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_arbitrary_values_give_errors_never_exceptions(doc: object) -> None:
    policy, errors = parse_document(doc, SOURCE)
    assert (policy is None) == bool(errors)
    assert all(isinstance(e, str) and e.startswith(SOURCE) and "\n" not in e for e in errors)


@settings(max_examples=300, deadline=None)
@given(st.one_of(VALUES.map(lambda v: yaml.safe_dump(v)),
                 mutated_documents().map(lambda d: yaml.safe_dump(d)),
                 st.text(alphabet=st.sampled_from("[]{}:,-?&*!|>'\"#%@` \n\tab01.s"),
                         max_size=200)))
def test_arbitrary_yaml_text_raises_only_policy_error(text: str) -> None:
    try:
        policies = parse_policies(text, SOURCE)
    except PolicyError as exc:
        assert exc.errors and all(e.startswith(SOURCE) and "\n" not in e for e in exc.errors)
    else:
        assert policies and all(p.source.startswith(SOURCE) for p in policies)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_in_a_file_raise_only_policy_error(tmp_path_factory: pytest.TempPathFactory,
                                                            data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "policy.yaml"
    path.write_bytes(data)
    try:
        policy_files.load(path)
    except PolicyError as exc:
        assert exc.errors and all(str(path) in e and "\n" not in e for e in exc.errors)


def test_the_command_turns_a_deep_document_into_exit_2(tmp_path: Path, capsys) -> None:
    """A mapping nested 10,000 deep, in process: the depth limit holds before Python's."""
    path = tmp_path / "deep.yaml"
    path.write_text(HEAD + "  prediction: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n")
    assert cli.main(["validate", str(path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "nested more than 64 levels" in line
