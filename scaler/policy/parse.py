"""Policy documents: YAML text parsed once into frozen, validated :class:`Policy` values.

A policy file holds one or more ``kind: ScalingPolicy`` documents. Parsing is strict:
an unknown key, a wrong type, an unparsable duration or an out-of-range value is an
error that names the file, the document, the key, the value and the allowed range.
All errors of a file are collected, so a user fixes them in one pass.

Pure: this module parses text it is given; reading files is ``scaler.policy.files``' job.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass, fields, replace
from typing import Any

import yaml

from scaler.policy import promql
from scaler.policy.durations import brief, format_duration, parse_duration
from scaler.policy.model import (
    ACTIVATOR_MODES,
    KEEP_ALIVE,
    METRIC_SOURCES,
    MODEL_KEYS,
    MODELS,
    MODES,
    ActivatorPolicy,
    MetricSpec,
    Policy,
    PredictionPolicy,
    WINDOW_ALGORITHMS,
    ScaleTargetRef,
    Schedule,
)

API_VERSION = "scaler/v1"
KIND = "ScalingPolicy"

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class PolicyError(ValueError):
    """One or more problems found in policy documents; ``errors`` lists each one."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# --------------------------------------------------------------------------------------
# YAML, with limits no policy comes near, so hostile text is an error naming a line
# rather than a crash: PyYAML composes and constructs recursively (1,000 nested "[" end
# in RecursionError), and Python refuses to turn more than 4,300 digits into an int.

MAX_DEPTH = 64   # a policy is five levels deep


class HugeInteger:
    """An integer literal too long for Python to convert: kept as its length, so the key
    it was written for reports it like any other out-of-range value."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"an integer of {self.digits:,} digits"


class _PolicyLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth limit and errors that keep their line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep (a policy needs "
                                "five)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: Any) -> Any:
        limit = sys.get_int_max_str_digits()
        text = str(node.value)
        if limit and len(text) > limit:
            return HugeInteger(sum(c.isalnum() for c in text))
        return super().construct_yaml_int(node)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:
            # e.g. a timestamp of 30 February: YAML's own types that Python refuses.
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark) from None


_PolicyLoader.add_constructor("tag:yaml.org,2002:int", _PolicyLoader.construct_yaml_int)


# --------------------------------------------------------------------------------------
# Schema. One row per spec key: (yaml key, attribute, kind, range, allowed-range text).
# The range is data, not a lambda, so the ScalingPolicy CRD's OpenAPI schema is generated
# from these very rows (scaler.policy.schema): the API server and `scaler validate` agree.

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Range:
    """The values a key allows: ``low``..``high`` (either end open or absent), plus the
    single values in ``also`` outside it (``0`` = off, ``-1`` = always). Called with a
    parsed value (seconds for a duration), it says whether the value is allowed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[float, ...] = ()

    def __call__(self, v: Any) -> bool:
        if v in self.also:
            return True
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (self.high is not None and (v > self.high or (self.high_open and v == self.high)))


ANY = Range()
_SPEC_FIELDS: tuple[tuple[str, str, str, Range, str], ...] = (
    ("target", "target", "number", Range(0.01), ">= 0.01"),
    ("targetUtilizationPercentage", "target_utilization_percentage", "number",
     Range(1, 100), "1..100"),
    ("minReplicas", "min_replicas", "integer", Range(0, INT32_MAX), "0..2147483647"),
    ("maxReplicas", "max_replicas", "integer", Range(0, INT32_MAX),
     "0 (unlimited) or 1..2147483647"),
    ("initialReplicas", "initial_replicas", "integer", Range(0, INT32_MAX),
     "0..2147483647"),
    ("activationReplicas", "activation_replicas", "integer",
     Range(2, INT32_MAX, also=(0,)), "0 (off) or 2..2147483647"),
    ("stableWindow", "stable_window", "window", Range(6, 3600), "6s..1h"),
    ("panicWindowPercentage", "panic_window_percentage", "number", Range(1, 100),
     "1..100"),
    ("panicThresholdPercentage", "panic_threshold_percentage", "number",
     Range(110, 1000), "110..1000"),
    ("maxScaleUpRate", "max_scale_up_rate", "number", Range(1, low_open=True), "> 1"),
    ("maxScaleDownRate", "max_scale_down_rate", "number", Range(1, low_open=True), "> 1"),
    ("scaleDownDelay", "scale_down_delay", "whole-duration", Range(0, 3600), "0s..1h"),
    ("scaleToZeroGracePeriod", "scale_to_zero_grace_period", "duration",
     Range(0, 3600), "0s..1h"),
    ("targetBurstCapacity", "target_burst_capacity", "number", Range(0, also=(-1,)),
     "-1 (activator always in path), 0, or > 0"),
    ("tickInterval", "tick_interval", "whole-duration", Range(1, 60), "1s..1m"),
    ("windowAlgorithm", "window_algorithm", "enum:" + ",".join(WINDOW_ALGORITHMS), ANY,
     "linear or weighted-exponential"),
)
_SPEC_KEYS = ({"scaleTargetRef", "metric", "prediction", "scaleToZero", "activator",
               "schedules"}
              | {row[0] for row in _SPEC_FIELDS})
# The prediction block: (yaml key, attribute, kind, range, allowed-range text).
_PREDICTION_FIELDS: tuple[tuple[str, str, str, Range, str], ...] = (
    ("enabled", "enabled", "bool", ANY, "true or false"),
    ("mode", "mode", "enum:" + ",".join(MODES), ANY, "act or observe"),
    ("model", "model", "enum:" + ",".join(MODELS), ANY,
     "seasonal-level, holt-winters, linear or ewma"),
    ("seasonality", "seasonality", "seasons", ANY,
     "a duration or a list of them, whole minutes, 2m..30d; none for seasonal-level"),
    ("horizon", "horizon", "duration", Range(0, 3600), "0s..1h"),
    ("maxExtraCost", "max_extra_cost", "share", Range(0, 1),
     "0%..100%, or a fraction 0..1"),
    ("minHistory", "min_history", "number", Range(1, 52), "1..52 seasons"),
    ("quantile", "quantile", "number", Range(0.5, 1, high_open=True), "0.5..0.999"),
    ("refitInterval", "refit_interval", "duration", Range(60, 86400), "1m..1d"),
)
_PREDICTION_KEYS = {row[0] for row in _PREDICTION_FIELDS}
_SCALE_TO_ZERO_KEYS = {"keepAlive", "coldStartCost", "prewarmLead"}
COLD_START_COST, COLD_START_COST_TEXT = Range(60, 4 * 3600), "1m..4h"
PREWARM_LEAD, PREWARM_LEAD_TEXT = Range(0, 600), "0s..10m"
_REF_KEYS = {"apiVersion", "kind", "name", "namespace"}
_METRIC_KEYS = {"type", "query", "source", "select"}
_METADATA_KEYS = {"name", "labels", "annotations"}
_TOP_KEYS = {"apiVersion", "kind", "metadata", "spec"}

DEFAULT_RPS_TARGET = 200.0


class _Collector:
    """Accumulates errors for one document, each prefixed with file and document."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.errors: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.errors.append(f"{self.where}: {key}: {message}")


def _show(value: Any) -> str:
    """A value as an error message shows it: never long, never raising."""
    if isinstance(value, str):
        return brief(value)
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value.bit_length() > 128:
        # str() of a huge int (a hex literal has no digit limit) is slow or refused.
        return f"an integer of {value.bit_length():,} bits"
    text = str(value)
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text):,} characters)"


def _key(value: Any) -> str:
    """A key as a path segment: as written when it is a plain word, else quoted."""
    if isinstance(value, str) and len(value) <= 60 and value.isprintable() \
            and value.strip() == value and value:
        return value
    return _show(value)


def _closest(key: Any, allowed: set[str]) -> str:
    """", did you mean X?" for a misspelt key (case and small typos), else ""."""
    if not isinstance(key, str) or len(key) > 60:
        return ""
    by_lower = {a.lower(): a for a in allowed}
    match = difflib.get_close_matches(key.lower(), by_lower, n=1, cutoff=0.75)
    return f"; did you mean {by_lower[match[0]]}?" if match else ""


def _unknown_keys(doc: dict, allowed: set[str], prefix: str, out: _Collector) -> None:
    for key in doc:
        if key not in allowed:
            out.add(f"{prefix}{_key(key)}", f"unknown key{_closest(key, allowed)} "
                                            f"(allowed: {', '.join(sorted(allowed))})")


def _mapping(value: Any, key: str, out: _Collector) -> dict | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        out.add(key, f"expected a mapping, got {_show(value)}")
        return None
    return value


def _string(value: Any, key: str, out: _Collector, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            out.add(key, "is required")
        return None
    if not isinstance(value, str):
        out.add(key, f"expected a string, got {_show(value)}")
        return None
    return value


def _convert(value: Any, kind: str, key: str, allowed: str, out: _Collector) -> Any:
    """Turn a YAML scalar into the field's type, or record why it can't be."""
    if isinstance(value, HugeInteger):
        out.add(key, f"{_show(value)} is out of range (allowed: {allowed})")
        return None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.add(key, f"expected a number, got {_show(value)} (allowed: {allowed})")
            return None
        if abs(value) > 1e300 or not math.isfinite(value):
            out.add(key, f"{_show(value)} is not a finite number (allowed: {allowed})")
            return None
        return float(value)
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            out.add(key, f"expected an integer, got {_show(value)} (allowed: {allowed})")
            return None
        return value
    if kind == "window":
        # A window of 1 s buckets: whole seconds, kept as an int from here on.
        seconds = _convert(value, "whole-duration", key, allowed, out)
        return None if seconds is None else int(seconds)
    if kind in ("duration", "whole-duration"):
        if not isinstance(value, str):
            out.add(key, f"expected a duration string such as \"60s\", got {_show(value)} "
                         f"(allowed: {allowed})")
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            out.add(key, f"{exc} (allowed: {allowed})")
            return None
        if kind == "whole-duration" and seconds != int(seconds):
            out.add(key, f"{_show(value)} is not a whole number of seconds (allowed: {allowed})")
            return None
        return seconds
    if kind == "bool":
        if not isinstance(value, bool):
            out.add(key, f"expected true or false, got {_show(value)}")
            return None
        return value
    if kind == "share":
        return _share(value, key, allowed, out)
    if kind == "seasons":
        if value == "none":
            return ()   # seasonal-level without a season: the level alone
        items = value if isinstance(value, list) else [value]
        seasons = []
        for item in items:
            s = _convert(item, "duration", key, allowed, out)
            if s is None:
                return None
            if s % 60 or not 120 <= s <= 30 * 86400:
                out.add(key, f"{_show(item)} is out of range (allowed: {allowed})")
                return None
            seasons.append(s)
        if not seasons:
            out.add(key, f"empty list (allowed: {allowed})")
            return None
        seasons.sort()
        if any(seasons[-1] % s for s in seasons):
            out.add(key, f"{_show(value)}: the longest season must be a whole multiple of "
                         "the others (e.g. [1d, 7d])")
            return None
        return tuple(seasons)
    if kind.startswith("enum:"):
        choices = kind[5:].split(",")
        if value not in choices:
            out.add(key, f"{_show(value)} is not one of: {', '.join(choices)}")
            return None
        return value
    raise AssertionError(kind)


def _share(value: Any, key: str, allowed: str, out: _Collector) -> float | None:
    """A share as a percentage string ("10%") or a fraction (0.1); returned as a fraction."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            out.add(key, f"{_show(value)} is not a percentage (allowed: {allowed})")
            return None
        return number / 100.0
    return _convert(value, "number", key, allowed, out)


def _fields(block: dict, rows, prefix: str, out: _Collector) -> dict[str, Any]:
    """Convert and range-check the keys of ``block`` listed in ``rows``."""
    values: dict[str, Any] = {}
    for key, attr, kind, check, allowed in rows:
        if key not in block:
            continue
        value = _convert(block[key], kind, f"{prefix}{key}", allowed, out)
        if value is None:
            continue
        if not check(value):
            out.add(f"{prefix}{key}", f"{_show(block[key])} is out of range (allowed: {allowed})")
            continue
        values[attr] = value
    return values


def parse_document(doc: Any, where: str, *,
                   api_version: str = API_VERSION) -> tuple[Policy | None, list[str]]:
    """Validate one YAML document (a file's, of ``scaler/v1``; or a ScalingPolicy object's,
    of ``api_version`` scaler.dev/v1alpha1). Returns the policy (None on errors) and the
    errors."""
    out = _Collector(where)
    if not isinstance(doc, dict):
        out.add("(document)", f"expected a mapping with apiVersion, kind, metadata and spec, "
                              f"got {_show(doc)}")
        return None, out.errors
    _unknown_keys(doc, _TOP_KEYS, "", out)
    if doc.get("apiVersion") != api_version:
        out.add("apiVersion", f"{_show(doc.get('apiVersion'))} is not supported (allowed: {api_version})")
    if doc.get("kind") != KIND:
        out.add("kind", f"{_show(doc.get('kind'))} is not supported (allowed: {KIND})")

    values: dict[str, Any] = {}
    metadata = _mapping(doc.get("metadata"), "metadata", out)
    if metadata is not None:
        _unknown_keys(metadata, _METADATA_KEYS, "metadata.", out)
        name = _string(metadata.get("name"), "metadata.name", out, required=True)
        if name is not None:
            if len(name) > 63 or not _NAME_RE.match(name):
                out.add("metadata.name", f"{_show(name)} is not a valid name (lowercase letters, "
                                         "digits and '-', at most 63 characters)")
            else:
                values["name"] = name
                out.where = f"{where} ({name})"

    spec = _mapping(doc.get("spec"), "spec", out)
    if spec is None:
        return None, out.errors
    if "spec" not in doc:
        out.add("spec", "is required")
    _unknown_keys(spec, _SPEC_KEYS, "spec.", out)

    ref = _mapping(spec.get("scaleTargetRef"), "spec.scaleTargetRef", out)
    if ref is not None:
        _unknown_keys(ref, _REF_KEYS, "spec.scaleTargetRef.", out)
        ref_name = _string(ref.get("name"), "spec.scaleTargetRef.name", out, required=True)
        ref_values = {
            attr: got
            for key, attr in (("namespace", "namespace"), ("kind", "kind"), ("apiVersion", "api_version"))
            if (got := _string(ref.get(key), f"spec.scaleTargetRef.{key}", out, required=False))
        }
        if ref_name is not None:
            # These become a request path: only valid Kubernetes names get that far.
            wanted = {**{f.name: f.default for f in fields(ScaleTargetRef) if f.name != "name"},
                      **ref_values}
            problems = ScaleTargetRef.problems(ref_name, wanted["namespace"], wanted["kind"],
                                               wanted["api_version"])
            for key, value, why in problems:
                out.add(f"spec.scaleTargetRef.{key}", f"{_show(value)} {why}")
            if not problems:
                values["scale_target_ref"] = ScaleTargetRef(name=ref_name, **ref_values)

    metric = _mapping(spec.get("metric"), "spec.metric", out)
    if metric is not None:
        _unknown_keys(metric, _METRIC_KEYS, "spec.metric.", out)
        mtype = metric.get("type", "concurrency")
        if mtype not in ("concurrency", "rps"):
            out.add("spec.metric.type", f"{_show(mtype)} is not one of: concurrency, rps")
            mtype = "concurrency"
        source = _metric_source(metric, out)
        query = _string(metric.get("query"), "spec.metric.query", out,
                         required=source == "prometheus")
        select = _select(metric, query, source, out)
        values["metric"] = MetricSpec(type=mtype, query=query or "", source=source,
                                      select=select)
        if mtype == "rps" and "target" not in spec:
            values["target"] = DEFAULT_RPS_TARGET

    prediction = _mapping(spec.get("prediction"), "spec.prediction", out)
    if prediction:
        _unknown_keys(prediction, _PREDICTION_KEYS, "spec.prediction.", out)
        parsed = _fields(prediction, _PREDICTION_FIELDS, "spec.prediction.", out)
        _keys_of_other_models(prediction, parsed, out)
        pp = _prediction(parsed, out)
        if pp is not None:
            values["prediction"] = pp
    stz = _mapping(spec.get("scaleToZero"), "spec.scaleToZero", out)
    if stz:
        _unknown_keys(stz, _SCALE_TO_ZERO_KEYS, "spec.scaleToZero.", out)
        values.update(_scale_to_zero(stz, out))

    if "schedules" in spec:
        schedules = _schedules(spec["schedules"], out)
        if schedules is not None:
            values["schedules"] = schedules

    activator = _mapping(spec.get("activator"), "spec.activator", out)
    if activator is not None and "activator" in spec:
        target = values.get("scale_target_ref")
        parsed_activator = _activator(activator, target.name if target else None, out)
        if parsed_activator is not None:
            values["activator"] = parsed_activator

    values.update(_fields(spec, _SPEC_FIELDS, "spec.", out))

    # Cross-field rules run on whatever parsed, so one pass reports every problem.
    policy = replace(Policy(), **values, source=where)
    _cross_checks(policy, out)
    return (None, out.errors) if out.errors else (policy, [])


def _keys_of_other_models(block: dict, parsed: dict[str, Any], out: _Collector) -> None:
    """A key the chosen model does not use is an error, not a knob that silently does
    nothing (``quantile`` with seasonal-level, ``maxExtraCost`` with holt-winters)."""
    if "model" in block and "model" not in parsed:
        return   # the model itself is wrong: that is the error
    model = parsed.get("model", PredictionPolicy().model)
    for key, models in MODEL_KEYS.items():
        if key in block and model not in models:
            names = " and ".join(", ".join(models).rsplit(", ", 1))
            out.add(f"spec.prediction.{key}", f"is not used by model {model} (it applies to "
                    f"{names} only)")
    seasons = parsed.get("seasonality")
    if seasons is not None and model == "seasonal-level" and len(seasons) > 1:
        out.add("spec.prediction.seasonality", f"{_show(block['seasonality'])}: model "
                "seasonal-level takes one season, or none")
    if seasons == () and model != "seasonal-level":
        out.add("spec.prediction.seasonality", f"none: model {model} needs a season "
                "(only seasonal-level runs without one)")


def _scale_to_zero(block: dict, out: _Collector) -> dict[str, Any]:
    """``keepAlive`` and, for ``histogram``, ``coldStartCost``."""
    values: dict[str, Any] = {}
    if "keepAlive" in block:
        keep = _convert(block["keepAlive"], "enum:" + ",".join(KEEP_ALIVE),
                        "spec.scaleToZero.keepAlive", "fixed or histogram", out)
        if keep is not None:
            values["keep_alive"] = keep
    if "coldStartCost" in block:
        key, allowed = "spec.scaleToZero.coldStartCost", COLD_START_COST_TEXT
        if block.get("keepAlive", "fixed") != "histogram":
            out.add(key, "is used only with keepAlive: histogram")
            return values
        cost = _convert(block["coldStartCost"], "duration", key, allowed, out)
        if cost is not None and not COLD_START_COST(cost):
            out.add(key, f"{_show(block['coldStartCost'])} is out of range (allowed: {allowed})")
        elif cost is not None:
            values["cold_start_cost"] = cost
    values.update(_prewarm_lead(block, out))
    return values


def _prewarm_lead(block: dict, out: _Collector) -> dict[str, Any]:
    """``prewarmLead``: histogram only; absent, the lead is the start-up time the pipeline
    measures (scaler.decide.zero.startup)."""
    if "prewarmLead" not in block:
        return {}
    key, allowed = "spec.scaleToZero.prewarmLead", PREWARM_LEAD_TEXT
    if block.get("keepAlive", "fixed") != "histogram":
        out.add(key, "is used only with keepAlive: histogram")
        return {}
    lead = _convert(block["prewarmLead"], "duration", key, allowed, out)
    if lead is not None and not PREWARM_LEAD(lead):
        out.add(key, f"{_show(block['prewarmLead'])} is out of range (allowed: {allowed})")
        return {}
    return {} if lead is None else {"prewarm_lead": lead}


def _prediction(parsed: dict[str, Any], out: _Collector) -> PredictionPolicy | None:
    """The prediction block from its parsed keys, or None after recording why not."""
    defaults = PredictionPolicy()
    model = parsed.get("model", defaults.model)
    horizon = parsed.get("horizon", defaults.horizon)
    seasons = parsed.get("seasonality", defaults.seasonality)
    if (len(seasons) > 1 if model == "seasonal-level" else not seasons):
        return None   # _keys_of_other_models said why
    shortest = seasons[0] if seasons else math.inf
    # now + horizon must land within one season of the last complete forecast bucket:
    # at most the shortest season less one bucket (a 10m season allows up to 9m).
    if model in ("holt-winters", "seasonal-level") and horizon > shortest - defaults.grid:
        out.add("spec.prediction.horizon", f"{format_duration(horizon)} must be shorter than "
                f"the shortest season ({format_duration(shortest)}) by at least the forecast's "
                f"{format_duration(defaults.grid)} grid")
        return None
    try:
        return replace(defaults, **parsed)
    except ValueError as exc:   # a combination the forecaster cannot run
        out.add("spec.prediction", str(exc))
        return None


def _cross_checks(p: Policy, out: _Collector) -> None:
    """Constraints between keys (Knative's min/max/activation-scale rules)."""
    if p.metric.source == "activator" and p.activator is None:
        out.add("spec.metric.source", "'activator' needs a spec.activator block (the "
                                      "activator counts only the traffic it routes)")
    elif (p.metric.source == "activator" and p.activator.mode == "whenNeeded"
          and p.target_burst_capacity != -1):
        # Warm traffic would go straight to the pods, past the only thing counting it:
        # the load would read 0 and the target would be scaled down under it.
        out.add("spec.activator.mode", "'whenNeeded' sends warm traffic past the activator, "
                "which then cannot count it for spec.metric.source: activator (allowed: "
                "always, or targetBurstCapacity: -1; or read a PromQL query measured at the "
                "ingress and keep whenNeeded)")
    if p.max_replicas and p.min_replicas > p.max_replicas:
        out.add("spec.minReplicas", f"{p.min_replicas} is above spec.maxReplicas "
                                    f"{p.max_replicas} (allowed: 0..maxReplicas)")
    if p.max_replicas and p.initial_replicas > p.max_replicas:
        out.add("spec.initialReplicas", f"{p.initial_replicas} is above spec.maxReplicas "
                                        f"{p.max_replicas} (allowed: 0..maxReplicas)")
    for i, schedule in enumerate(p.schedules):
        if p.max_replicas and schedule.min_replicas > p.max_replicas:
            out.add(f"spec.schedules[{i}].minReplicas", f"{schedule.min_replicas} is above "
                    f"spec.maxReplicas {p.max_replicas} (allowed: 0..maxReplicas)")
    if p.activation_replicas:
        if p.activation_replicas < p.min_replicas:
            out.add("spec.activationReplicas", f"{p.activation_replicas} is below "
                    f"spec.minReplicas {p.min_replicas} (allowed: minReplicas..maxReplicas)")
        if p.max_replicas and p.activation_replicas > p.max_replicas:
            out.add("spec.activationReplicas", f"{p.activation_replicas} is above "
                    f"spec.maxReplicas {p.max_replicas} (allowed: minReplicas..maxReplicas)")


# --------------------------------------------------------------------------------------
# spec.schedules: replica floors by the clock

_SCHEDULE_KEYS = {"cron", "duration", "minReplicas", "timezone"}
SCHEDULE_DURATION, SCHEDULE_DURATION_TEXT = Range(60, 7 * 86400), "1m..7d"
SCHEDULE_MIN_REPLICAS = Range(0, INT32_MAX)
MAX_SCHEDULES = 32


def _schedules(value: Any, out: _Collector) -> tuple[Schedule, ...] | None:
    """``spec.schedules``: a list of {cron, duration, minReplicas, timezone}."""
    if value is None:
        return ()
    if not isinstance(value, list):
        out.add("spec.schedules", f"expected a list of schedules, got {_show(value)}")
        return None
    if len(value) > MAX_SCHEDULES:
        out.add("spec.schedules", f"{len(value)} schedules (allowed: at most {MAX_SCHEDULES})")
        return None
    errors = len(out.errors)
    found: list[Schedule] = []
    for i, item in enumerate(value):
        key = f"spec.schedules[{i}]."
        if not isinstance(item, dict):
            out.add(f"spec.schedules[{i}]", f"expected a mapping with cron, duration and "
                                            f"minReplicas, got {_show(item)}")
            continue
        _unknown_keys(item, _SCHEDULE_KEYS, key, out)
        cron = _string(item.get("cron"), key + "cron", out, required=True)
        if cron is not None:
            why = cron_problem(cron)
            if why:
                out.add(key + "cron", f"{_show(cron)} is not a cron expression: {why} (five "
                                      "fields: minute hour day-of-month month day-of-week, "
                                      "e.g. \"0 8 * * 1-5\")")
                cron = None
        zone = item.get("timezone", "UTC")
        if not isinstance(zone, str) or not zone:
            out.add(key + "timezone", f"expected an IANA time zone name such as "
                                      f"Europe/Berlin, got {_show(zone)}")
            zone = None
        else:
            why = zone_problem(zone)
            if why:
                out.add(key + "timezone", f"{_show(zone)} {why}")
                zone = None
        duration = None
        if "duration" not in item:
            out.add(key + "duration", f"is required (how long each window lasts, "
                                      f"{SCHEDULE_DURATION_TEXT}, e.g. 10h)")
        else:
            duration = _convert(item["duration"], "whole-duration", key + "duration",
                                SCHEDULE_DURATION_TEXT, out)
            if duration is not None and not SCHEDULE_DURATION(duration):
                out.add(key + "duration", f"{_show(item['duration'])} is out of range "
                                          f"(allowed: {SCHEDULE_DURATION_TEXT})")
                duration = None
        floor = None
        if "minReplicas" not in item:
            out.add(key + "minReplicas", "is required (the replica floor inside the window)")
        else:
            floor = _convert(item["minReplicas"], "integer", key + "minReplicas",
                             "0..2147483647", out)
            if floor is not None and not SCHEDULE_MIN_REPLICAS(floor):
                out.add(key + "minReplicas", f"{_show(item['minReplicas'])} is out of range "
                                             "(allowed: 0..2147483647)")
                floor = None
        if None not in (cron, zone, duration, floor):
            found.append(Schedule(cron, duration, floor, zone))
    return None if len(out.errors) > errors else tuple(found)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a five-field cron expression, or None."""
    from cronsim import CronSim, CronSimError
    from datetime import datetime, timezone

    if len(expression.split()) != 5:
        return f"{len(expression.split())} fields"
    try:
        CronSim(expression, datetime(2026, 1, 1, tzinfo=timezone.utc))
    except CronSimError as exc:
        return str(exc) or "not valid"
    return None


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not a time zone zoneinfo knows, or None."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        names = zoneinfo.available_timezones()
        match = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.8)
        hint = f"; did you mean {match[0]}?" if match else ""
        return f"is not a time zone (an IANA name such as Europe/Berlin or UTC){hint}"
    return None


# --------------------------------------------------------------------------------------
# spec.metric.source and spec.activator

_ACTIVATOR_KEYS = {"service", "port", "hosts", "maxPendingRequests", "timeout", "mode",
                   "publicService"}
# A Service's name (DNS-1035 label) and a port's name (IANA_SVC_NAME), as Kubernetes
# validates them; Host header values as the activator matches them (no scheme, port or path).
_SERVICE_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_PORT_NAME_RE = re.compile(r"^(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
                      r"(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
MAX_PENDING_LIMIT = 1_000_000
MAX_PENDING = Range(0, MAX_PENDING_LIMIT)
ACTIVATOR_TIMEOUT, ACTIVATOR_TIMEOUT_TEXT = Range(0, 3600, low_open=True), "above 0s, at most 1h"
PORT = Range(1, 65535)


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _select(metric: dict, query: str | None, source: str,
            out: _Collector) -> tuple[tuple[str, str], ...]:
    """spec.metric.select: ``{label: value}`` picking one series of the query's answer.
    A label the query's result cannot carry (known from its outermost aggregation:
    ``sum by (service) (...)`` carries only ``service``) is an error here, not a policy
    that never finds its series."""
    if "select" not in metric:
        return ()
    key = "spec.metric.select"
    block = metric["select"]
    if source != "prometheus":
        out.add(key, "is used only with source: prometheus (it picks a series of the query)")
        return ()
    if not isinstance(block, dict) or not block:
        out.add(key, f"expected a mapping of label: value, got {_show(block)}")
        return ()
    pairs = []
    for label, value in block.items():
        if not isinstance(label, str) or not _LABEL_NAME.match(label):
            out.add(key, f"{_show(label)} is not a Prometheus label name "
                         "([a-zA-Z_][a-zA-Z0-9_]*)")
            continue
        if not isinstance(value, str):
            out.add(f"{key}.{label}", f"expected a string (quote it), got {_show(value)}")
            continue
        pairs.append((label, value))
    labels = promql.result_labels(query) if query else None
    if labels is not None:
        for label, _ in pairs:
            if label not in labels:
                have = (f"only {', '.join(sorted(labels))}" if labels
                        else "no label (it aggregates everything into one series)")
                out.add(f"{key}.{label}", f"the query's result cannot have this label: its "
                                          f"outermost aggregation keeps {have}")
    return tuple(sorted(pairs))


def _metric_source(metric: dict, out: _Collector) -> str:
    """spec.metric.source: where the load comes from. ``activator`` takes no query: the
    activator counts the policy's requests itself."""
    source = metric.get("source", "prometheus")
    if source not in METRIC_SOURCES:
        out.add("spec.metric.source", f"{_show(source)} is not one of: "
                                      f"{', '.join(METRIC_SOURCES)}")
        return "prometheus"
    if source == "activator" and "query" in metric:
        out.add("spec.metric.query", "not used with source: activator (the activator counts "
                                     "the requests itself); remove it")
    return source


def _activator(block: dict, target_name: str | None,
               out: _Collector) -> ActivatorPolicy | None:
    """The activator block, or None after recording why not."""
    _unknown_keys(block, _ACTIVATOR_KEYS, "spec.activator.", out)
    errors = len(out.errors)
    key = "spec.activator."

    service = block.get("service", target_name)
    if "service" not in block and service is None:
        out.add(key + "service", "is required (default: scaleTargetRef.name)")
    elif not isinstance(service, str) or not _SERVICE_RE.match(service):
        out.add(key + "service", f"{_show(service)} is not a Service name (lowercase letters, "
                                 "digits and '-', starting with a letter, at most 63 "
                                 "characters)")

    port = block.get("port")
    if port is None:
        out.add(key + "port", "is required: the endpoints' port, a number (1-65535) or the "
                              "name of the Service's port")
    elif isinstance(port, bool) or not (
            (isinstance(port, int) and PORT(port))
            or (isinstance(port, str) and _PORT_NAME_RE.match(port))):
        out.add(key + "port", f"{_show(port)} is neither a port number (1-65535) nor a port "
                              "name (lowercase letters, digits and '-', at most 15 "
                              "characters, at least one letter)")

    hosts = block.get("hosts")
    names: list[str] = []
    if not isinstance(hosts, list) or not hosts:
        out.add(key + "hosts", f"expected a non-empty list of host names, got {_show(hosts)}")
    else:
        for i, host in enumerate(hosts):
            name = host.strip().lower().rstrip(".") if isinstance(host, str) else None
            if name is None or not _HOST_RE.match(name):
                out.add(f"{key}hosts[{i}]", f"{_show(host)} is not a host name (no scheme, "
                                            "port or path; e.g. checkout.shop.example)")
            elif name in names:
                out.add(f"{key}hosts[{i}]", f"{_show(host)} is listed twice")
            else:
                names.append(name)

    pending = block.get("maxPendingRequests", 1000)
    if isinstance(pending, bool) or not isinstance(pending, int) \
            or not MAX_PENDING(pending):
        out.add(key + "maxPendingRequests", f"{_show(pending)} is out of range (allowed: an "
                                            f"integer 0..{MAX_PENDING_LIMIT})")
    timeout = _convert(block.get("timeout", "60s"), "duration", key + "timeout",
                       ACTIVATOR_TIMEOUT_TEXT, out)
    if timeout is not None and not ACTIVATOR_TIMEOUT(timeout):
        out.add(key + "timeout", f"{_show(block.get('timeout'))} is out of range (allowed: "
                                 f"{ACTIVATOR_TIMEOUT_TEXT})")
    mode = _convert(block.get("mode", "whenNeeded"), "enum:" + ",".join(ACTIVATOR_MODES),
                    key + "mode", "always or whenNeeded", out)

    public = block.get("publicService")
    if public is not None and (not isinstance(public, str) or not _SERVICE_RE.match(public)):
        out.add(key + "publicService", f"{_show(public)} is not a Service name (lowercase "
                                       "letters, digits and '-', starting with a letter, at "
                                       "most 63 characters)")
    elif public is None and isinstance(service, str) and _SERVICE_RE.match(service) \
            and len(service) > 63 - len("-public"):
        out.add(key + "service", f"{_show(service)} is too long to name its public Service "
                                 f"{service + '-public'!r} (at most 63 characters); set "
                                 "spec.activator.publicService")
    if public is not None and public == service:
        out.add(key + "publicService", f"{_show(public)} is the workload's own Service; the "
                                       "public Service is a second, selector-less one")
    if len(out.errors) > errors:
        return None
    return ActivatorPolicy(service=service, port=port, hosts=tuple(names),
                           max_pending_requests=pending, timeout=timeout, mode=mode,
                           public_service=public or "")


def _check_activator_claims(policies: list[Policy]) -> list[str]:
    """A host routes to one policy, and a public Service belongs to one policy."""
    errors: list[str] = []
    hosts: dict[str, Policy] = {}
    public: dict[tuple[str, str], Policy] = {}
    for p in policies:
        if p.activator is None:
            continue
        for host in p.activator.hosts:
            other = hosts.setdefault(host, p)
            if other is not p:
                errors.append(f"{p.source}: spec.activator.hosts: {host!r} is already routed "
                              f"to policy {other.name!r} by {other.source}")
        if p.activator.mode == "whenNeeded":
            key = (p.scale_target_ref.namespace, p.activator.public)
            other = public.setdefault(key, p)
            if other is not p:
                errors.append(f"{p.source}: spec.activator: public Service {key[0]}/{key[1]} "
                              f"is already switched by policy {other.name!r} ({other.source})")
    return errors


# A ScalingPolicy object (the CRD's apiVersion): `scaler validate` checks its manifests
# too, so an object can be checked offline before `kubectl apply`. The daemon's policy
# files stay scaler/v1.
OBJECT_API_VERSION = "scaler.dev/v1alpha1"


def parse_policies(text: str, source: str, *, objects: bool = False) -> list[Policy]:
    """Parse every ``---`` document of a policy file (with ``objects``, ScalingPolicy
    object manifests too). Raises PolicyError with all errors."""
    try:
        docs = list(yaml.load_all(text, Loader=_PolicyLoader))
    except yaml.reader.ReaderError as exc:   # a character YAML does not allow
        before = text[:exc.position]
        line, column = before.count("\n") + 1, exc.position - before.rfind("\n")
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        raise PolicyError([f"{source}: line {line}, column {column}: not valid YAML: "
                           f"{exc.reason} ({shown})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        problem = " ".join(str(problem).split())    # one line, whatever PyYAML wrote
        raise PolicyError([f"{source}:{line}: not valid YAML: {problem}"]) from None
    except RecursionError:   # the depth limit should make this unreachable; never a crash
        raise PolicyError([f"{source}: not valid YAML: nested too deeply"]) from None
    policies: list[Policy] = []
    errors: list[str] = []
    numbered = [d for d in docs if d is not None]
    if not numbered:
        raise PolicyError([f"{source}: no policy documents found"])
    for index, doc in enumerate(numbered, start=1):
        version = API_VERSION
        if objects and isinstance(doc, dict) and doc.get("apiVersion") == OBJECT_API_VERSION:
            version = OBJECT_API_VERSION
            doc = _object_document(doc)
        policy, problems = parse_document(doc, f"{source}: document {index}",
                                          api_version=version)
        errors.extend(problems)
        if policy is not None:
            policies.append(policy)
    if errors:
        raise PolicyError(errors)
    return policies


def _object_document(doc: dict) -> dict:
    """An object manifest as a policy document: the keys the API server owns (namespace,
    uid, status...) set aside; the name and spec as they are."""
    meta = doc.get("metadata")
    kept = {k: v for k, v in meta.items() if k in _METADATA_KEYS} if isinstance(meta, dict) \
        else meta
    out = {**{k: v for k, v in doc.items() if k != "status"}, "metadata": kept}
    spec, namespace = doc.get("spec"), meta.get("namespace") if isinstance(meta, dict) else None
    if isinstance(namespace, str) and isinstance(spec, dict) \
            and isinstance(spec.get("scaleTargetRef"), dict):
        # The daemon defaults the target's namespace to the object's own.
        ref = spec["scaleTargetRef"]
        out["spec"] = {**spec, "scaleTargetRef": {"namespace": namespace, **ref}}
    return out


def check_unique(policies: list[Policy]) -> None:
    """Two policies with one name, or two policies driving one target, is an error."""
    errors: list[str] = []
    seen_names: dict[str, Policy] = {}
    seen_targets: dict[ScaleTargetRef, Policy] = {}
    for p in policies:
        if p.name in seen_names:
            errors.append(f"{p.source}: metadata.name: {p.name!r} is already used by "
                          f"{seen_names[p.name].source}")
        seen_names.setdefault(p.name, p)
        if p.scale_target_ref in seen_targets:
            errors.append(f"{p.source}: spec.scaleTargetRef: {p.scale_target_ref} is already "
                          f"scaled by {seen_targets[p.scale_target_ref].source}")
        seen_targets.setdefault(p.scale_target_ref, p)
    errors.extend(_check_activator_claims(policies))
    if errors:
        raise PolicyError(errors)


def tunable_keys() -> tuple[str, ...]:
    """Every spec key a tuner may vary, as dotted paths inside ``spec`` (``stableWindow``,
    ``prediction.horizon``, ``scaleToZero.keepAlive``): all but ``scaleTargetRef`` and
    ``metric``, which say what is scaled and on what rather than how."""
    keys = [row[0] for row in _SPEC_FIELDS]
    keys += [f"prediction.{row[0]}" for row in _PREDICTION_FIELDS]
    keys += [f"scaleToZero.{key}" for key in sorted(_SCALE_TO_ZERO_KEYS)]
    return tuple(keys)
