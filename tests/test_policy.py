"""Policy files: defaults, ranges, types, unknown keys, durations, cross-field rules,
multi-document files and directories, and the decider spec a policy builds.

Pure parsing is tested through ``parse_policies(text, source)``; files and directories
through ``policy_files.load``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler import kpa
from scaler.decide.pipeline import decider_spec
from scaler.policy import files as policy_files
from scaler.policy import (
    MetricSpec,
    Policy,
    PolicyError,
    ScaleTargetRef,
    check_unique,
    format_duration,
    parse_document,
    parse_duration,
    parse_policies,
    round_half_away,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "policies" / "default.yaml"
BUNDLED = REPO / "scaler" / "policy" / "default.yaml"
SOURCE = "policies/web.yaml"

# Every spec key the issue lists, in its order.
ISSUE_SPEC_KEYS = [
    "scaleTargetRef", "metric", "target", "targetUtilizationPercentage", "minReplicas",
    "maxReplicas", "initialReplicas", "activationReplicas", "stableWindow",
    "panicWindowPercentage", "panicThresholdPercentage", "maxScaleUpRate", "maxScaleDownRate",
    "scaleDownDelay", "scaleToZeroGracePeriod", "targetBurstCapacity", "tickInterval",
    "windowAlgorithm", "prediction", "scaleToZero", "schedules",
]


def document(name: str = "web", *, target_name: str | None = None, **spec) -> dict:
    """A minimal valid document (only the required keys) plus ``spec`` overrides."""
    body = {
        "scaleTargetRef": {"name": target_name or name},
        "metric": {"query": f"sum(inflight{{app='{name}'}})"},
    }
    body.update(spec)
    return {"apiVersion": "scaler/v1", "kind": "ScalingPolicy", "metadata": {"name": name},
            "spec": body}


def dump(*docs: dict) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def parse_one(**spec) -> Policy:
    [policy] = parse_policies(dump(document(**spec)), SOURCE)
    return policy


def errors_of(text: str, source: str = SOURCE) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policies(text, source)
    assert info.value.errors, "PolicyError without errors"
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def spec_error(key: str, value) -> str:
    """The single error a bad ``spec.<key>`` in document 2 of a two-document file gives."""
    text = dump(document("first"), document("web", **{key: value}))
    errors = errors_of(text)
    assert len(errors) == 1, errors
    [message] = errors
    assert message.startswith(f"{SOURCE}: document 2"), message
    assert "document 1" not in message
    return message


# ------------------------------------------------------------------------------ defaults

DEFAULTS = [
    pytest.param("target", 100.0, id="target"),
    pytest.param("target_utilization_percentage", 70.0, id="targetUtilizationPercentage"),
    pytest.param("min_replicas", 0, id="minReplicas"),
    pytest.param("max_replicas", 0, id="maxReplicas"),
    pytest.param("initial_replicas", 1, id="initialReplicas"),
    pytest.param("activation_replicas", 0, id="activationReplicas"),
    pytest.param("stable_window", 60, id="stableWindow"),
    pytest.param("panic_window_percentage", 10.0, id="panicWindowPercentage"),
    pytest.param("panic_threshold_percentage", 200.0, id="panicThresholdPercentage"),
    pytest.param("max_scale_up_rate", 1000.0, id="maxScaleUpRate"),
    pytest.param("max_scale_down_rate", 2.0, id="maxScaleDownRate"),
    pytest.param("scale_down_delay", 0.0, id="scaleDownDelay"),
    pytest.param("scale_to_zero_grace_period", 30.0, id="scaleToZeroGracePeriod"),
    pytest.param("target_burst_capacity", 211.0, id="targetBurstCapacity"),
    pytest.param("tick_interval", 2.0, id="tickInterval"),
    pytest.param("window_algorithm", "linear", id="windowAlgorithm"),
]


@pytest.mark.parametrize(("attr", "expected"), DEFAULTS)
def test_policy_default(attr, expected):
    assert getattr(Policy(), attr) == expected
    assert type(getattr(Policy(), attr)) is type(expected)


@pytest.mark.parametrize(("attr", "expected"), DEFAULTS)
def test_minimal_document_gets_the_default(attr, expected):
    """A document with only the required keys gets the issue's default for every key."""
    assert getattr(parse_one(), attr) == expected


def test_minimal_document_reference_defaults():
    p = parse_one()
    assert p.scale_target_ref == ScaleTargetRef(name="web", namespace="default",
                                                 kind="Deployment", api_version="apps/v1")
    assert p.metric == MetricSpec(type="concurrency", query="sum(inflight{app='web'})")
    assert p.target_value == 70.0


def test_example_policy_equals_the_defaults():
    """policies/default.yaml is Policy() spelled out; only name, target and metric are its own."""
    [p] = policy_files.load(EXAMPLE)
    assert p.name == "default"
    assert p.scale_target_ref == ScaleTargetRef(name="app", namespace="default",
                                                 kind="Deployment", api_version="apps/v1")
    assert p.metric == MetricSpec(type="concurrency", query="sum(app_inflight_requests)")
    base = Policy()
    assert replace(p, name=base.name, scale_target_ref=base.scale_target_ref,
                   metric=base.metric) == base


def test_example_policy_spells_out_every_key():
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert list(doc) == ["apiVersion", "kind", "metadata", "spec"]
    assert sorted(doc["spec"]) == sorted(ISSUE_SPEC_KEYS)
    assert sorted(doc["spec"]["scaleTargetRef"]) == ["apiVersion", "kind", "name", "namespace"]
    assert sorted(doc["spec"]["metric"]) == ["query", "type"]


def test_example_policy_names_every_key_of_the_model():
    """Every spec key the parser knows is in the default policy: set, or (for the keys of
    the other forecast models, coldStartCost and the optional activator block) shown in a
    comment beside the block it belongs to."""
    from scaler.policy import parse

    text = EXAMPLE.read_text()
    keys = ({row[0] for row in parse._SPEC_FIELDS} | parse._SPEC_KEYS | parse._PREDICTION_KEYS
            | parse._SCALE_TO_ZERO_KEYS | parse._ACTIVATOR_KEYS | parse._REF_KEYS
            | parse._METRIC_KEYS | parse._SCHEDULE_KEYS)
    missing = [k for k in sorted(keys) if not re.search(rf"(^|\s|#\s*){k}:", text, re.M)]
    assert missing == []


def test_bundled_default_policy_is_the_example():
    """`scaler replay` reads the copy inside the package; it must be the documented example."""
    assert BUNDLED.read_text() == EXAMPLE.read_text()


def test_rps_metric_defaults_target_to_200():
    p = parse_one(metric={"type": "rps", "query": "sum(rate(requests_total[1m]))"})
    assert p.metric.type == "rps"
    assert p.target == 200.0
    assert p.target_value == pytest.approx(140.0)
    assert decider_spec(p).total_value == 200.0


def test_rps_metric_keeps_an_explicit_target():
    p = parse_one(metric={"type": "rps", "query": "q"}, target=50)
    assert p.target == 50.0


def test_concurrency_metric_defaults_target_to_100():
    assert parse_one(metric={"type": "concurrency", "query": "q"}).target == 100.0


# -------------------------------------------------------------------------- valid edges

VALID = [
    pytest.param("target", 0.01, "target", 0.01, id="target-min"),
    pytest.param("target", 1e9, "target", 1e9, id="target-large"),
    pytest.param("targetUtilizationPercentage", 1, "target_utilization_percentage", 1.0,
                 id="utilization-min"),
    pytest.param("targetUtilizationPercentage", 100, "target_utilization_percentage", 100.0,
                 id="utilization-max"),
    pytest.param("targetUtilizationPercentage", 62.5, "target_utilization_percentage", 62.5,
                 id="utilization-fractional"),
    pytest.param("minReplicas", 0, "min_replicas", 0, id="minReplicas-min"),
    pytest.param("minReplicas", 2**31 - 1, "min_replicas", 2**31 - 1, id="minReplicas-max"),
    pytest.param("maxReplicas", 0, "max_replicas", 0, id="maxReplicas-unlimited"),
    pytest.param("maxReplicas", 1, "max_replicas", 1, id="maxReplicas-one"),
    pytest.param("maxReplicas", 2**31 - 1, "max_replicas", 2**31 - 1, id="maxReplicas-max"),
    pytest.param("initialReplicas", 0, "initial_replicas", 0, id="initialReplicas-min"),
    pytest.param("initialReplicas", 2**31 - 1, "initial_replicas", 2**31 - 1,
                 id="initialReplicas-max"),
    pytest.param("activationReplicas", 0, "activation_replicas", 0, id="activationReplicas-off"),
    pytest.param("activationReplicas", 2, "activation_replicas", 2, id="activationReplicas-min"),
    pytest.param("activationReplicas", 2**31 - 1, "activation_replicas", 2**31 - 1,
                 id="activationReplicas-max"),
    pytest.param("stableWindow", "6s", "stable_window", 6.0, id="stableWindow-min"),
    pytest.param("stableWindow", "1h", "stable_window", 3600.0, id="stableWindow-max"),
    pytest.param("stableWindow", "1m30s", "stable_window", 90.0, id="stableWindow-1m30s"),
    pytest.param("panicWindowPercentage", 1, "panic_window_percentage", 1.0,
                 id="panicWindowPercentage-min"),
    pytest.param("panicWindowPercentage", 100, "panic_window_percentage", 100.0,
                 id="panicWindowPercentage-max"),
    pytest.param("panicThresholdPercentage", 110, "panic_threshold_percentage", 110.0,
                 id="panicThresholdPercentage-min"),
    pytest.param("panicThresholdPercentage", 1000, "panic_threshold_percentage", 1000.0,
                 id="panicThresholdPercentage-max"),
    pytest.param("maxScaleUpRate", 1.001, "max_scale_up_rate", 1.001, id="maxScaleUpRate-min"),
    pytest.param("maxScaleUpRate", 1e6, "max_scale_up_rate", 1e6, id="maxScaleUpRate-large"),
    pytest.param("maxScaleDownRate", 1.001, "max_scale_down_rate", 1.001,
                 id="maxScaleDownRate-min"),
    pytest.param("maxScaleDownRate", 1e6, "max_scale_down_rate", 1e6,
                 id="maxScaleDownRate-large"),
    pytest.param("scaleDownDelay", "0s", "scale_down_delay", 0.0, id="scaleDownDelay-min"),
    pytest.param("scaleDownDelay", "1h", "scale_down_delay", 3600.0, id="scaleDownDelay-max"),
    pytest.param("scaleToZeroGracePeriod", "0s", "scale_to_zero_grace_period", 0.0,
                 id="scaleToZeroGracePeriod-min"),
    pytest.param("scaleToZeroGracePeriod", "1h", "scale_to_zero_grace_period", 3600.0,
                 id="scaleToZeroGracePeriod-max"),
    pytest.param("scaleToZeroGracePeriod", "500ms", "scale_to_zero_grace_period", 0.5,
                 id="scaleToZeroGracePeriod-fractional"),
    pytest.param("scaleToZeroGracePeriod", "1.5s", "scale_to_zero_grace_period", 1.5,
                 id="scaleToZeroGracePeriod-1.5s"),
    pytest.param("targetBurstCapacity", -1, "target_burst_capacity", -1.0,
                 id="targetBurstCapacity-always"),
    pytest.param("targetBurstCapacity", 0, "target_burst_capacity", 0.0,
                 id="targetBurstCapacity-zero"),
    pytest.param("targetBurstCapacity", 0.001, "target_burst_capacity", 0.001,
                 id="targetBurstCapacity-small"),
    pytest.param("targetBurstCapacity", 1e9, "target_burst_capacity", 1e9,
                 id="targetBurstCapacity-large"),
    pytest.param("tickInterval", "1s", "tick_interval", 1.0, id="tickInterval-min"),
    pytest.param("tickInterval", "1m", "tick_interval", 60.0, id="tickInterval-max"),
    pytest.param("windowAlgorithm", "linear", "window_algorithm", "linear",
                 id="windowAlgorithm-linear"),
    pytest.param("windowAlgorithm", "weighted-exponential", "window_algorithm",
                 "weighted-exponential", id="windowAlgorithm-weighted-exponential"),
]


@pytest.mark.parametrize(("key", "value", "attr", "expected"), VALID)
def test_valid_edge_value_is_accepted(key, value, attr, expected):
    p = parse_one(**{key: value})
    assert getattr(p, attr) == expected
    # Only that key moved away from the default.
    assert replace(p, **{attr: getattr(Policy(), attr)}) == replace(
        Policy(), name="web", scale_target_ref=p.scale_target_ref, metric=p.metric)


# --------------------------------------------------------------------- just out of range

OUT_OF_RANGE = [
    pytest.param("target", 0.0099, ">= 0.01", id="target-below"),
    pytest.param("target", 0, ">= 0.01", id="target-zero"),
    pytest.param("target", -5, ">= 0.01", id="target-negative"),
    pytest.param("targetUtilizationPercentage", 0.99, "1..100", id="utilization-below"),
    pytest.param("targetUtilizationPercentage", 100.01, "1..100", id="utilization-above"),
    pytest.param("minReplicas", -1, "0..2147483647", id="minReplicas-below"),
    pytest.param("minReplicas", 2**31, "0..2147483647", id="minReplicas-above"),
    pytest.param("maxReplicas", -1, "0 (unlimited) or 1..2147483647", id="maxReplicas-below"),
    pytest.param("maxReplicas", 2**31, "0 (unlimited) or 1..2147483647", id="maxReplicas-above"),
    pytest.param("initialReplicas", -1, "0..2147483647", id="initialReplicas-below"),
    pytest.param("initialReplicas", 2**31, "0..2147483647", id="initialReplicas-above"),
    pytest.param("activationReplicas", 1, "0 (off) or 2..2147483647", id="activationReplicas-one"),
    pytest.param("activationReplicas", -1, "0 (off) or 2..2147483647", id="activationReplicas-below"),
    pytest.param("stableWindow", "5s", "6s..1h", id="stableWindow-below"),
    pytest.param("stableWindow", "3601s", "6s..1h", id="stableWindow-above"),
    pytest.param("stableWindow", "1h0m1s", "6s..1h", id="stableWindow-above-1h0m1s"),
    pytest.param("panicWindowPercentage", 0.99, "1..100", id="panicWindowPercentage-below"),
    pytest.param("panicWindowPercentage", 100.01, "1..100", id="panicWindowPercentage-above"),
    pytest.param("panicThresholdPercentage", 109.9, "110..1000",
                 id="panicThresholdPercentage-below"),
    pytest.param("panicThresholdPercentage", 1000.1, "110..1000",
                 id="panicThresholdPercentage-above"),
    pytest.param("maxScaleUpRate", 1, "> 1", id="maxScaleUpRate-one"),
    pytest.param("maxScaleUpRate", 0.5, "> 1", id="maxScaleUpRate-below"),
    pytest.param("maxScaleDownRate", 1, "> 1", id="maxScaleDownRate-one"),
    pytest.param("maxScaleDownRate", 0.5, "> 1", id="maxScaleDownRate-below"),
    pytest.param("scaleDownDelay", "-1s", "0s..1h", id="scaleDownDelay-below"),
    pytest.param("scaleDownDelay", "1h1s", "0s..1h", id="scaleDownDelay-above"),
    pytest.param("scaleToZeroGracePeriod", "-1s", "0s..1h", id="scaleToZeroGracePeriod-below"),
    pytest.param("scaleToZeroGracePeriod", "1h1ms", "0s..1h",
                 id="scaleToZeroGracePeriod-above"),
    pytest.param("targetBurstCapacity", -2, "-1 (activator always in path), 0, or > 0",
                 id="targetBurstCapacity-minus-two"),
    pytest.param("targetBurstCapacity", -0.5, "-1 (activator always in path), 0, or > 0",
                 id="targetBurstCapacity-between"),
    pytest.param("tickInterval", "0s", "1s..1m", id="tickInterval-zero"),
    pytest.param("tickInterval", "61s", "1s..1m", id="tickInterval-above"),
    pytest.param("windowAlgorithm", "exponential", "linear, weighted-exponential",
                 id="windowAlgorithm-unknown"),
    pytest.param("windowAlgorithm", "Linear", "linear, weighted-exponential",
                 id="windowAlgorithm-case"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), OUT_OF_RANGE)
def test_out_of_range_value_is_rejected_with_a_full_message(key, value, allowed):
    message = spec_error(key, value)
    assert SOURCE in message
    assert "document 2" in message
    assert f"spec.{key}" in message
    assert str(value) in message
    assert allowed in message


def test_activation_replicas_above_int32_names_its_upper_bound():
    """The allowed text must not include the value it rejects ("0 (off) or >= 2" does)."""
    message = spec_error("activationReplicas", 2**31)
    assert "2147483648" in message
    assert "2147483647" in message, message


@pytest.mark.parametrize("key", [
    pytest.param("target", id="target"),
    pytest.param("panicThresholdPercentage", id="panicThresholdPercentage"),
    pytest.param("maxScaleUpRate", id="maxScaleUpRate"),
])
def test_huge_integer_for_a_number_is_an_error_not_a_crash(key):
    """YAML reads a 400-digit literal as an int that no float holds."""
    text = dump(document()).replace("spec:\n", f"spec:\n  {key}: 1{'0' * 400}\n", 1)
    [message] = errors_of(text)
    assert f"spec.{key}" in message


# ---------------------------------------------------------------------------- wrong types

WRONG_TYPES = [
    pytest.param("target", "100", "expected a number", id="target-string"),
    pytest.param("target", True, "expected a number", id="target-bool"),
    pytest.param("target", [100], "expected a number", id="target-list"),
    pytest.param("target", {"value": 100}, "expected a number", id="target-mapping"),
    pytest.param("target", None, "expected a number", id="target-null"),
    pytest.param("target", float("nan"), "not a finite number", id="target-nan"),
    pytest.param("target", float("inf"), "not a finite number", id="target-inf"),
    pytest.param("panicThresholdPercentage", "200%", "expected a number",
                 id="panicThresholdPercentage-percent-string"),
    pytest.param("minReplicas", 1.5, "expected an integer", id="minReplicas-float"),
    pytest.param("minReplicas", 1.0, "expected an integer", id="minReplicas-whole-float"),
    pytest.param("minReplicas", "1", "expected an integer", id="minReplicas-string"),
    pytest.param("maxReplicas", False, "expected an integer", id="maxReplicas-bool"),
    pytest.param("activationReplicas", 2.0, "expected an integer", id="activationReplicas-float"),
    pytest.param("stableWindow", 60, "expected a duration string", id="stableWindow-int"),
    pytest.param("stableWindow", 60.0, "expected a duration string", id="stableWindow-float"),
    pytest.param("stableWindow", True, "expected a duration string", id="stableWindow-bool"),
    pytest.param("stableWindow", "60", "not a duration", id="stableWindow-no-unit"),
    pytest.param("scaleToZeroGracePeriod", 30, "expected a duration string",
                 id="scaleToZeroGracePeriod-int"),
    pytest.param("tickInterval", ["2s"], "expected a duration string", id="tickInterval-list"),
    pytest.param("windowAlgorithm", 1, "is not one of", id="windowAlgorithm-number"),
]


@pytest.mark.parametrize(("key", "value", "complaint"), WRONG_TYPES)
def test_wrong_type_is_rejected(key, value, complaint):
    message = spec_error(key, value)
    assert f"spec.{key}" in message
    assert complaint in message


@pytest.mark.parametrize(("spec", "key", "complaint"), [
    pytest.param({"scaleTargetRef": {"name": 5}}, "spec.scaleTargetRef.name",
                 "expected a string", id="scaleTargetRef.name-number"),
    pytest.param({"scaleTargetRef": "web"}, "spec.scaleTargetRef", "expected a mapping",
                 id="scaleTargetRef-string"),
    pytest.param({"metric": {"type": "latency", "query": "q"}}, "spec.metric.type",
                 "is not one of: concurrency, rps", id="metric.type-unknown"),
    pytest.param({"metric": {"query": ["q"]}}, "spec.metric.query", "expected a string",
                 id="metric.query-list"),
    pytest.param({"metric": {"type": "concurrency"}}, "spec.metric.query", "is required",
                 id="metric.query-missing"),
    pytest.param({"scaleTargetRef": {"namespace": "prod"}}, "spec.scaleTargetRef.name",
                 "is required", id="scaleTargetRef.name-missing"),
], )
def test_nested_spec_errors(spec, key, complaint):
    doc = document("first")
    doc["spec"].update(spec)
    [message] = errors_of(dump(doc))
    assert f"{SOURCE}: document 1" in message
    assert f"{key}: " in message
    assert complaint in message


@pytest.mark.parametrize(("mutate", "key", "complaint"), [
    pytest.param(lambda d: d.update(apiVersion="scaler/v2"), "apiVersion", "scaler/v1",
                 id="apiVersion"),
    pytest.param(lambda d: d.update(kind="Deployment"), "kind", "ScalingPolicy", id="kind"),
    pytest.param(lambda d: d.update(metadata="web"), "metadata", "expected a mapping",
                 id="metadata-string"),
    pytest.param(lambda d: d["metadata"].pop("name"), "metadata.name", "is required",
                 id="metadata.name-missing"),
    pytest.param(lambda d: d["metadata"].update(name="Web_1"), "metadata.name",
                 "not a valid name", id="metadata.name-invalid"),
    pytest.param(lambda d: d["metadata"].update(name="a" * 64), "metadata.name",
                 "at most 63 characters", id="metadata.name-too-long"),
    pytest.param(lambda d: d.pop("spec"), "spec", "is required", id="spec-missing"),
    pytest.param(lambda d: d.update(spec=[1]), "spec", "expected a mapping", id="spec-list"),
])
def test_document_level_errors(mutate, key, complaint):
    doc = document("web")
    mutate(doc)
    errors = errors_of(dump(doc))
    matching = [e for e in errors if f": {key}: " in e]
    assert matching, errors
    assert complaint in matching[0]
    assert matching[0].startswith(f"{SOURCE}: document 1")


def test_a_document_that_is_not_a_mapping():
    [message] = errors_of("- just\n- a list\n")
    assert "document 1" in message
    assert "expected a mapping" in message


# ---------------------------------------------------------------------------- unknown keys

@pytest.mark.parametrize(("mutate", "path"), [
    pytest.param(lambda d: d.update(status={}), "status", id="top-level"),
    pytest.param(lambda d: d["metadata"].update(owner="me"), "metadata.owner", id="metadata"),
    pytest.param(lambda d: d["spec"].update(stablewindow="60s"), "spec.stablewindow",
                 id="spec-case-typo"),
    pytest.param(lambda d: d["spec"].update(cooldown="5m"), "spec.cooldown", id="spec"),
    pytest.param(lambda d: d["spec"]["scaleTargetRef"].update(uid="x"),
                 "spec.scaleTargetRef.uid", id="scaleTargetRef"),
    pytest.param(lambda d: d["spec"]["metric"].update(interval="1s"), "spec.metric.interval",
                 id="metric"),
])
def test_unknown_key_is_rejected_at_every_level(mutate, path):
    doc = document("web")
    mutate(doc)
    [message] = errors_of(dump(document("first"), doc))
    assert message.startswith(f"{SOURCE}: document 2")
    assert f"{path}: unknown key" in message


def test_metadata_labels_and_annotations_are_allowed():
    doc = document("web")
    doc["metadata"].update(labels={"team": "a"}, annotations={"note": "b"})
    [p] = parse_policies(dump(doc), SOURCE)
    assert p.name == "web"


# ------------------------------------------------------------------------------ durations

@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param("60s", 60.0, id="60s"),
    pytest.param("1m30s", 90.0, id="1m30s"),
    pytest.param("1h", 3600.0, id="1h"),
    pytest.param("1h1m1s", 3661.0, id="1h1m1s"),
    pytest.param("500ms", 0.5, id="500ms"),
    pytest.param("1.5s", 1.5, id="1.5s"),
    pytest.param("1.5m", 90.0, id="1.5m"),
    pytest.param("2500us", 0.0025, id="2500us"),
    pytest.param("0s", 0.0, id="0s"),
    pytest.param("0", 0.0, id="bare-zero-as-in-go"),
    pytest.param(" 60s ", 60.0, id="surrounding-space"),
    pytest.param("1d", 86400.0, id="days-for-seasons"),
    pytest.param("7d", 604800.0, id="a-week"),
])
def test_parse_duration_accepts(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize("text", [
    pytest.param("90", id="no-unit"),
    pytest.param("-5s", id="negative"),
    pytest.param("", id="empty"),
    pytest.param("s", id="unit-only"),
    pytest.param(".s", id="dot-only"),
    pytest.param("5 s", id="inner-space"),
    pytest.param("5x", id="bad-unit"),
    pytest.param("1w", id="weeks"),
    pytest.param("1.2.3s", id="two-dots"),
    pytest.param("1m30", id="trailing-number"),
    pytest.param("+", id="sign-only"),
    pytest.param("-", id="minus-only"),
])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("key", "value"), [
    pytest.param("stableWindow", "90", id="stableWindow-no-unit"),
    pytest.param("stableWindow", "-5s", id="stableWindow-negative"),
    pytest.param("scaleToZeroGracePeriod", "soon", id="grace-word"),
    pytest.param("scaleDownDelay", "+", id="scaleDownDelay-sign-only"),
])
def test_unparsable_duration_in_a_file_names_key_value_and_range(key, value):
    message = spec_error(key, value)
    assert f"spec.{key}" in message
    assert repr(value) in message
    assert "allowed: " in message


@pytest.mark.parametrize(("key", "value", "allowed"), [
    pytest.param("stableWindow", "6.5s", "6s..1h", id="stableWindow"),
    pytest.param("scaleDownDelay", "1.5s", "0s..1h", id="scaleDownDelay"),
    pytest.param("tickInterval", "1.5s", "1s..1m", id="tickInterval"),
    pytest.param("tickInterval", "500ms", "1s..1m", id="tickInterval-500ms"),
])
def test_whole_second_keys_reject_fractions(key, value, allowed):
    message = spec_error(key, value)
    assert f"spec.{key}" in message
    assert "not a whole number of seconds" in message
    assert value in message
    assert allowed in message


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(0, "0s", id="zero"),
    pytest.param(6, "6s", id="6s"),
    pytest.param(60, "1m", id="1m"),
    pytest.param(90, "1m30s", id="1m30s"),
    pytest.param(3600, "1h", id="1h"),
    pytest.param(3601, "1h1s", id="1h1s"),
    pytest.param(0.5, "0.5s", id="fraction"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text", "with_days"), [
    pytest.param(86400, "1d", "1d", id="a-day"),
    pytest.param(90000, "25h", "1d1h", id="a-day-and-an-hour"),
    pytest.param(129600, "36h", "1d12h", id="36h"),
    pytest.param(900, "15m", "15m", id="no-days"),
])
def test_format_duration_with_days_leads_with_them(seconds, text, with_days):
    assert format_duration(seconds) == text
    assert format_duration(seconds, days=True) == with_days


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**7), st.booleans())
def test_format_then_parse_duration_round_trips(seconds, days):
    assert parse_duration(format_duration(seconds, days=days)) == seconds


@pytest.mark.parametrize("stable", ["6s", "90s", "1h"])
def test_the_stable_window_is_whole_seconds_as_an_int(stable):
    """Parsed once into the int of seconds that sizes its window of 1 s buckets; the
    panic window derived from it is one too."""
    p = parse_one(stableWindow=stable)
    assert type(p.stable_window) is int and p.stable_window == parse_duration(stable)
    assert type(p.panic_window) is int


# ------------------------------------------------------------------------- cross-field

@pytest.mark.parametrize(("spec", "key", "fragment"), [
    pytest.param({"minReplicas": 5, "maxReplicas": 3}, "spec.minReplicas",
                 "5 is above spec.maxReplicas 3", id="min-above-max"),
    pytest.param({"initialReplicas": 4, "maxReplicas": 3}, "spec.initialReplicas",
                 "4 is above spec.maxReplicas 3", id="initial-above-max"),
    pytest.param({"activationReplicas": 2, "minReplicas": 3}, "spec.activationReplicas",
                 "2 is below spec.minReplicas 3", id="activation-below-min"),
    pytest.param({"activationReplicas": 5, "maxReplicas": 4}, "spec.activationReplicas",
                 "5 is above spec.maxReplicas 4", id="activation-above-max"),
])
def test_cross_field_error(spec, key, fragment):
    [message] = errors_of(dump(document("first"), document("web", **spec)))
    assert message.startswith(f"{SOURCE}: document 2")
    assert f"{key}: " in message
    assert fragment in message
    assert "allowed: " in message


@pytest.mark.parametrize("spec", [
    pytest.param({"minReplicas": 5, "maxReplicas": 0}, id="min-with-unlimited-max"),
    pytest.param({"minReplicas": 3, "maxReplicas": 3}, id="min-equals-max"),
    pytest.param({"initialReplicas": 3, "maxReplicas": 3}, id="initial-equals-max"),
    pytest.param({"initialReplicas": 9, "maxReplicas": 0}, id="initial-with-unlimited-max"),
    pytest.param({"activationReplicas": 3, "minReplicas": 3, "maxReplicas": 5},
                 id="activation-equals-min"),
    pytest.param({"activationReplicas": 5, "minReplicas": 3, "maxReplicas": 5},
                 id="activation-equals-max"),
    pytest.param({"activationReplicas": 7}, id="activation-with-defaults"),
])
def test_cross_field_valid(spec):
    p = parse_one(**spec)
    assert p.min_replicas == spec.get("minReplicas", 0)
    assert p.activation_replicas == spec.get("activationReplicas", 0)


# ------------------------------------------------------------------------- many errors

def test_every_error_of_a_file_is_reported():
    first = document("first", target=0, stableWindow="5s")
    first["spec"]["bogus"] = 1
    second = document("second", minReplicas=1.5, windowAlgorithm="cubic")
    third = document("third")  # valid: no error, and no policy returned either
    errors = errors_of(dump(first, second, third))
    assert len(errors) == 5, errors
    expect = [("document 1", "spec.target"), ("document 1", "spec.stableWindow"),
              ("document 1", "spec.bogus"), ("document 2", "spec.minReplicas"),
              ("document 2", "spec.windowAlgorithm")]
    for doc, key in expect:
        assert any(doc in e and f"{key}: " in e for e in errors), (doc, key, errors)


def test_cross_field_errors_are_reported_alongside_field_errors():
    """One pass: a min > max conflict between two valid keys is not hidden by another key."""
    errors = errors_of(dump(document("web", target=0, minReplicas=5, maxReplicas=3)))
    assert any("spec.target: " in e for e in errors), errors
    assert any("spec.minReplicas: " in e for e in errors), errors


def test_parse_document_returns_errors_without_raising():
    policy, errors = parse_document(document("web", target=-1), "f.yaml: document 7")
    assert policy is None
    assert len(errors) == 1
    assert errors[0].startswith("f.yaml: document 7")


# ------------------------------------------------------------ multi-document, directories

def test_multi_document_file_in_order():
    text = "---\n" + dump(document("a", target=10), document("b", target=20)) + "---\n"
    policies = parse_policies(text, SOURCE)
    assert [(p.name, p.target) for p in policies] == [("a", 10.0), ("b", 20.0)]
    assert all(p.source.startswith(SOURCE) for p in policies)


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("# only a comment\n", id="comment"),
    pytest.param("---\n---\n", id="separators"),
])
def test_file_without_documents(text):
    [message] = errors_of(text)
    assert SOURCE in message
    assert "no policy documents" in message


@pytest.mark.parametrize(("text", "line"), [
    pytest.param(dump(document()).replace("spec:\n", "spec:\n  target: [1, 2\n", 1), None,
                 id="unclosed-flow-list"),
    pytest.param("apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata:\n  name: web\n"
                 "spec:\n  target: 1\n\tminReplicas: 5\n", 7, id="tab-indent"),
    pytest.param("apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata:\n  name: 'web\n", None,
                 id="unclosed-quote"),
])
def test_invalid_yaml_names_a_line(text, line):
    [message] = errors_of(text)
    assert message.startswith(SOURCE)
    assert "not valid YAML" in message
    if line is None:
        assert " line " in message
    else:
        assert f" line {line}," in message


def write(path: Path, *docs: dict) -> Path:
    path.write_text(dump(*docs))
    return path


def test_load_a_directory(tmp_path):
    write(tmp_path / "b.yml", document("c"))
    write(tmp_path / "a.yaml", document("a"), document("b"))
    (tmp_path / "README.md").write_text("not a policy: {")
    (tmp_path / "notes.txt").write_text("- not: [a policy\n")
    (tmp_path / "sub.yaml").mkdir()  # a directory with a policy suffix is not a file
    policies = policy_files.load(tmp_path)
    assert [p.name for p in policies] == ["a", "b", "c"]
    assert policies[2].source.startswith(str(tmp_path / "b.yml"))


def test_load_a_single_file(tmp_path):
    path = write(tmp_path / "one.yaml", document("a"), document("b"))
    assert [p.name for p in policy_files.load(path)] == ["a", "b"]


def test_load_reports_errors_of_every_file(tmp_path):
    write(tmp_path / "a.yaml", document("a", target=0))
    write(tmp_path / "b.yaml", document("b"), document("c", tickInterval="0s"))
    with pytest.raises(PolicyError) as info:
        policy_files.load(tmp_path)
    errors = info.value.errors
    assert len(errors) == 2, errors
    assert errors[0].startswith(f"{tmp_path / 'a.yaml'}: document 1")
    assert "spec.target" in errors[0]
    assert errors[1].startswith(f"{tmp_path / 'b.yaml'}: document 2")
    assert "spec.tickInterval" in errors[1]


def test_duplicate_names_across_files(tmp_path):
    write(tmp_path / "a.yaml", document("web", target_name="one"))
    write(tmp_path / "b.yaml", document("web", target_name="two"))
    with pytest.raises(PolicyError) as info:
        policy_files.load(tmp_path)
    [message] = info.value.errors
    assert "metadata.name" in message
    assert "'web'" in message
    assert str(tmp_path / "a.yaml") in message and str(tmp_path / "b.yaml") in message


def test_duplicate_names_within_a_file(tmp_path):
    path = write(tmp_path / "a.yaml", document("web", target_name="one"),
                 document("web", target_name="two"))
    with pytest.raises(PolicyError) as info:
        policy_files.load(path)
    [message] = info.value.errors
    assert "document 2" in message and "document 1" in message


def test_two_policies_scaling_one_target(tmp_path):
    write(tmp_path / "a.yaml", document("first", target_name="app"))
    write(tmp_path / "b.yaml", document("second", target_name="app"))
    with pytest.raises(PolicyError) as info:
        policy_files.load(tmp_path)
    [message] = info.value.errors
    assert "spec.scaleTargetRef" in message
    assert "default/app" in message


def test_same_target_name_in_other_namespaces_is_fine(tmp_path):
    a = document("first", target_name="app")
    b = document("second", target_name="app")
    b["spec"]["scaleTargetRef"]["namespace"] = "staging"
    write(tmp_path / "a.yaml", a, b)
    assert len(policy_files.load(tmp_path)) == 2


def test_check_unique_accepts_distinct():
    check_unique([parse_one(), replace(parse_one(), name="other",
                                       scale_target_ref=ScaleTargetRef(name="other"))])


def test_empty_directory(tmp_path):
    with pytest.raises(PolicyError) as info:
        policy_files.load(tmp_path)
    assert str(tmp_path) in info.value.errors[0]


def test_unreadable_file_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PolicyError) as info:
        policy_files.load(path)
    assert str(path) in info.value.errors[0]


# ---------------------------------------------------------------------------- decider spec

@pytest.mark.parametrize(("x", "expected"), [
    pytest.param(0.0, 0, id="zero"),
    pytest.param(0.5, 1, id="half"),
    pytest.param(1.5, 2, id="1.5"),
    pytest.param(2.5, 3, id="2.5-not-to-even"),
    pytest.param(2.4999999, 2, id="below-half"),
    pytest.param(0.49999999999999994, 0, id="largest-below-half"),
    pytest.param(-0.5, -1, id="minus-half"),
    pytest.param(-2.5, -3, id="minus-2.5"),
    pytest.param(-2.4, -2, id="minus-2.4"),
    pytest.param(7.0, 7, id="whole"),
])
def test_round_half_away(x, expected):
    assert round_half_away(x) == expected


@pytest.mark.parametrize(("stable", "percentage", "panic"), [
    pytest.param("6s", 10, 1.0, id="6s-x-10%=0.6->1s"),
    pytest.param("25s", 10, 3.0, id="25s-x-10%=2.5->3s"),
    pytest.param("15s", 10, 2.0, id="15s-x-10%=1.5->2s"),
    pytest.param("45s", 10, 5.0, id="45s-x-10%=4.5->5s"),
    pytest.param("60s", 10, 6.0, id="default-6s"),
    pytest.param("24s", 10, 2.0, id="24s-x-10%=2.4->2s"),
    pytest.param("6s", 1, 1.0, id="minimum-1s"),
    pytest.param("10s", 25, 3.0, id="10s-x-25%=2.5->3s"),
    pytest.param("1h", 100, 3600.0, id="whole-window"),
    pytest.param("1h", 1, 36.0, id="1h-x-1%"),
    # Knative computes in float nanoseconds, truncates to whole nanoseconds, then rounds
    # to the second (knative-coefficients.md): 500e9 × 16.9 / 100 = 84,499,999,999.99… ns
    # → 84,499,999,999 ns → 84 s, where rounding 84.5 s half away would give 85 s.
    pytest.param("500s", 16.9, 84.0, id="500s-x-16.9%=84s-not-85s"),
    pytest.param("3500s", 39.3, 1375.0, id="3500s-x-39.3%=1375s-not-1376s"),
    pytest.param("2625s", 99.6, 2615.0, id="2625s-x-99.6%=2615s-not-2614s"),
])
def test_panic_window(stable, percentage, panic):
    p = parse_one(stableWindow=stable, panicWindowPercentage=percentage)
    assert p.panic_window == panic


@settings(max_examples=300, deadline=None)
@given(st.integers(6, 3600), st.integers(100, 10_000).map(lambda q: q / 100))
def test_panic_window_is_knatives_integer_nanosecond_rounding(stable, percentage):
    """time.Duration(float64(stable) * pct / 100).Round(time.Second), step by step in
    integers: Go converts the float to whole nanoseconds by truncation, and Duration.Round
    sends halves away from zero."""
    p = replace(Policy(), stable_window=stable, panic_window_percentage=percentage)
    ns = int(float(stable * 10**9) * percentage / 100.0)
    whole, rest = divmod(ns, 10**9)
    want = max(1, whole + (1 if 2 * rest >= 10**9 else 0))
    assert p.panic_window == want
    # Never more than half a second from the real product.
    assert abs(p.panic_window - max(1.0, stable * percentage / 100)) <= 0.5 + 1e-9


@pytest.mark.parametrize(("target", "utilization", "value"), [
    pytest.param(100, 70, 70.0, id="defaults"),
    pytest.param(50, 100, 50.0, id="full-utilization"),
    pytest.param(0.01, 1, 0.01, id="floor-0.01"),
    pytest.param(0.5, 1, 0.01, id="floor-0.005"),
    pytest.param(3, 50, 1.5, id="fractional"),
])
def test_target_value(target, utilization, value):
    p = parse_one(target=target, targetUtilizationPercentage=utilization)
    assert p.target_value == pytest.approx(value)
    assert decider_spec(p).target_value == pytest.approx(value)
    assert decider_spec(p).total_value == float(target)


def test_decider_spec_from_a_policy():
    p = parse_one(target=40, targetUtilizationPercentage=50, targetBurstCapacity=-1,
                  panicThresholdPercentage=350, maxScaleUpRate=10, maxScaleDownRate=4,
                  stableWindow="2m", scaleDownDelay="30s", activationReplicas=3)
    assert decider_spec(p) == kpa.DeciderSpec(
        target_value=20.0, total_value=40.0, target_burst_capacity=-1.0, panic_threshold=3.5,
        max_scale_up_rate=10.0, max_scale_down_rate=4.0, stable_window=120.0,
        scale_down_delay=30.0, activation_scale=3, reachable=True)


def test_decider_spec_of_the_defaults():
    assert decider_spec(Policy()) == kpa.DeciderSpec(
        target_value=70.0, total_value=100.0, target_burst_capacity=211.0, panic_threshold=2.0,
        max_scale_up_rate=1000.0, max_scale_down_rate=2.0, stable_window=60.0,
        scale_down_delay=0.0, activation_scale=0, reachable=True)


def test_policy_is_frozen():
    with pytest.raises(AttributeError):
        Policy().target = 5  # type: ignore[misc]


def test_describe_is_one_line_with_the_essentials():
    line = parse_one(maxReplicas=9, stableWindow="90s").describe()
    assert "\n" not in line
    assert line.startswith("web: Deployment default/web")
    assert "replicas 0..9" in line
    assert "stable 1m30s" in line
    assert "panic 9s" in line
