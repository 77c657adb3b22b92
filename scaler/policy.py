"""Scaling policies: YAML documents parsed once into frozen, validated specs.

A policy file holds one or more ``kind: ScalingPolicy`` documents. Parsing is strict:
an unknown key, a wrong type, an unparsable duration or an out-of-range value is an
error that names the file, the document, the key, the value and the allowed range.
All errors of a file are collected, so a user fixes them in one pass.

Pure: this module parses text it is given; reading files is ``policy_files``' job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import yaml

from scaler import kpa

API_VERSION = "scaler/v1"
KIND = "ScalingPolicy"

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Go's units, plus "d" (days) for prediction seasons.
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0, "d": 86400.0}


class PolicyError(ValueError):
    """One or more problems found in policy documents; ``errors`` lists each one."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ScaleTargetRef:
    """The workload whose scale subresource the policy drives."""

    name: str
    namespace: str = "default"
    kind: str = "Deployment"
    api_version: str = "apps/v1"

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class MetricSpec:
    type: str = "concurrency"   # concurrency | rps
    query: str = ""             # PromQL giving the workload's total load, also at zero replicas


@dataclass(frozen=True)
class PredictionPolicy:
    """The ``prediction`` block. Durations in seconds; ``seasonality`` ascending.

    Turned into :class:`scaler.predict.PredictionSpec` only when enabled, so a policy
    without prediction never loads numpy or scipy.
    """

    enabled: bool = False
    mode: str = "act"                  # act | observe (forecast-only: never acts)
    model: str = "holt-winters"        # holt-winters | linear | ewma
    seasonality: tuple[float, ...] = (86400.0,)
    horizon: float = 30.0              # lead time, about the workload's start-up time
    min_history: float = 2.0           # seasons of history before holt-winters may act
    quantile: float = 0.9              # act on this upper quantile of recent errors
    refit_interval: float = 3600.0


@dataclass(frozen=True)
class Policy:
    """A validated scaling policy. Durations are in seconds."""

    name: str = "default"
    scale_target_ref: ScaleTargetRef = ScaleTargetRef(name="default")
    metric: MetricSpec = MetricSpec()
    target: float = 100.0                      # per-replica capacity (Knative TotalValue)
    target_utilization_percentage: float = 70.0
    min_replicas: int = 0
    max_replicas: int = 0                      # 0 = unlimited
    initial_replicas: int = 1
    activation_replicas: int = 0               # Knative activation-scale; 0 = off
    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_down_delay: float = 0.0
    scale_to_zero_grace_period: float = 30.0
    target_burst_capacity: float = 211.0
    tick_interval: float = 2.0
    window_algorithm: str = "linear"           # linear | weighted-exponential
    prediction: PredictionPolicy = PredictionPolicy()
    keep_alive: str = "fixed"                  # fixed (the grace period) | histogram
    source: str = field(default="<built-in>", compare=False)  # where it was read, for messages

    @property
    def target_value(self) -> float:
        """Knative's TargetValue: the per-replica load the decider aims for."""
        return max(0.01, self.target * (self.target_utilization_percentage / 100.0))

    @property
    def panic_window(self) -> float:
        """Panic window in whole seconds: stable × percentage, rounded half away from zero, ≥ 1 s."""
        return max(1.0, float(round_half_away(self.stable_window * self.panic_window_percentage / 100.0)))

    def decider_spec(self) -> kpa.DeciderSpec:
        """The spec Knative's MakeDecider would build for this policy."""
        return kpa.DeciderSpec(
            target_value=self.target_value,
            total_value=self.target,
            target_burst_capacity=self.target_burst_capacity,
            panic_threshold=self.panic_threshold_percentage / 100.0,
            max_scale_up_rate=self.max_scale_up_rate,
            max_scale_down_rate=self.max_scale_down_rate,
            stable_window=self.stable_window,
            scale_down_delay=self.scale_down_delay,
            activation_scale=self.activation_replicas,
            reachable=True,
        )

    def describe(self) -> str:
        """One line for ``scaler validate``."""
        upper = "unlimited" if self.max_replicas == 0 else str(self.max_replicas)
        return (
            f"{self.name}: {self.scale_target_ref}, {self.metric.type} target "
            f"{_fmt(self.target_value)} per replica ({_fmt(self.target)} × "
            f"{_fmt(self.target_utilization_percentage)}%), replicas {self.min_replicas}..{upper}, "
            f"stable {format_duration(self.stable_window)} / panic "
            f"{format_duration(self.panic_window)} at {_fmt(self.panic_threshold_percentage)}%, "
            f"tick {format_duration(self.tick_interval)}"
        )


def round_half_away(x: float) -> int:
    """Go's math.Round: halves go away from zero (Python's round() goes to even)."""
    t = math.trunc(x)
    if abs(x - t) >= 0.5:
        t += 1 if x > 0 else -1
    return int(t)


def parse_duration(text: str) -> float:
    """Parse a Go-style duration ("60s", "1m30s", "1h", "500ms", and "1d") into seconds."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    if not s or s[0] == "-":
        raise ValueError(f"not a non-negative duration: {text!r}")
    if s[0] == "+":
        s = s[1:]
    if not s:
        raise ValueError(f"not a duration: {text!r} (use e.g. 60s, 1m30s, 1h)")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(f"not a duration: {text!r} (use e.g. 60s, 1m30s, 1h)")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of a duration, e.g. 90 -> "1m30s"."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    s = int(seconds)
    if s == 0:
        return "0s"
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if d and not (h or m or sec):
        return f"{d}d"
    h += 24 * d
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v)


def _fmt(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------------------
# Schema. One row per spec key: (yaml key, attribute, kind, check, allowed-range text).
# `check` receives the parsed value and returns True when it is allowed.

_Check = Callable[[Any], bool]
_SPEC_FIELDS: tuple[tuple[str, str, str, _Check, str], ...] = (
    ("target", "target", "number", lambda v: v >= 0.01, ">= 0.01"),
    ("targetUtilizationPercentage", "target_utilization_percentage", "number",
     lambda v: 1 <= v <= 100, "1..100"),
    ("minReplicas", "min_replicas", "integer", lambda v: 0 <= v <= 2**31 - 1, "0..2147483647"),
    ("maxReplicas", "max_replicas", "integer", lambda v: 0 <= v <= 2**31 - 1,
     "0 (unlimited) or 1..2147483647"),
    ("initialReplicas", "initial_replicas", "integer", lambda v: 0 <= v <= 2**31 - 1,
     "0..2147483647"),
    ("activationReplicas", "activation_replicas", "integer",
     lambda v: v == 0 or 2 <= v <= 2**31 - 1, "0 (off) or 2..2147483647"),
    ("stableWindow", "stable_window", "whole-duration", lambda v: 6 <= v <= 3600, "6s..1h"),
    ("panicWindowPercentage", "panic_window_percentage", "number", lambda v: 1 <= v <= 100,
     "1..100"),
    ("panicThresholdPercentage", "panic_threshold_percentage", "number",
     lambda v: 110 <= v <= 1000, "110..1000"),
    ("maxScaleUpRate", "max_scale_up_rate", "number", lambda v: v > 1, "> 1"),
    ("maxScaleDownRate", "max_scale_down_rate", "number", lambda v: v > 1, "> 1"),
    ("scaleDownDelay", "scale_down_delay", "whole-duration", lambda v: 0 <= v <= 3600, "0s..1h"),
    ("scaleToZeroGracePeriod", "scale_to_zero_grace_period", "duration",
     lambda v: 0 <= v <= 3600, "0s..1h"),
    ("targetBurstCapacity", "target_burst_capacity", "number", lambda v: v == -1 or v >= 0,
     "-1 (activator always in path), 0, or > 0"),
    ("tickInterval", "tick_interval", "whole-duration", lambda v: 1 <= v <= 60, "1s..1m"),
    ("windowAlgorithm", "window_algorithm", "enum:linear,weighted-exponential", lambda v: True,
     "linear or weighted-exponential"),
)
_SPEC_KEYS = ({"scaleTargetRef", "metric", "prediction", "scaleToZero"}
              | {row[0] for row in _SPEC_FIELDS})
# The prediction block: (yaml key, attribute, kind, check, allowed-range text).
_PREDICTION_FIELDS: tuple[tuple[str, str, str, _Check, str], ...] = (
    ("enabled", "enabled", "bool", lambda v: True, "true or false"),
    ("mode", "mode", "enum:act,observe", lambda v: True, "act or observe"),
    ("model", "model", "enum:holt-winters,linear,ewma", lambda v: True,
     "holt-winters, linear or ewma"),
    ("seasonality", "seasonality", "seasons", lambda v: True,
     "a duration or a list of them, whole minutes, 2m..30d"),
    ("horizon", "horizon", "duration", lambda v: 0 <= v <= 3600, "0s..1h"),
    ("minHistory", "min_history", "number", lambda v: 1 <= v <= 52, "1..52 seasons"),
    ("quantile", "quantile", "number", lambda v: 0.5 <= v < 1, "0.5..0.999"),
    ("refitInterval", "refit_interval", "duration", lambda v: 60 <= v <= 86400, "1m..1d"),
)
_PREDICTION_KEYS = {row[0] for row in _PREDICTION_FIELDS}
_SCALE_TO_ZERO_KEYS = {"keepAlive"}
_REF_KEYS = {"apiVersion", "kind", "name", "namespace"}
_METRIC_KEYS = {"type", "query"}
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
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _unknown_keys(doc: dict, allowed: set[str], prefix: str, out: _Collector) -> None:
    for key in doc:
        if key not in allowed:
            out.add(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


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
    if kind == "seasons":
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


def parse_document(doc: Any, where: str) -> tuple[Policy | None, list[str]]:
    """Validate one YAML document. Returns the policy (None on errors) and the errors."""
    out = _Collector(where)
    if not isinstance(doc, dict):
        out.add("(document)", f"expected a mapping with apiVersion, kind, metadata and spec, "
                              f"got {_show(doc)}")
        return None, out.errors
    _unknown_keys(doc, _TOP_KEYS, "", out)
    if doc.get("apiVersion") != API_VERSION:
        out.add("apiVersion", f"{_show(doc.get('apiVersion'))} is not supported (allowed: {API_VERSION})")
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
            values["scale_target_ref"] = ScaleTargetRef(name=ref_name, **ref_values)

    metric = _mapping(spec.get("metric"), "spec.metric", out)
    if metric is not None:
        _unknown_keys(metric, _METRIC_KEYS, "spec.metric.", out)
        mtype = metric.get("type", "concurrency")
        if mtype not in ("concurrency", "rps"):
            out.add("spec.metric.type", f"{_show(mtype)} is not one of: concurrency, rps")
            mtype = "concurrency"
        query = _string(metric.get("query"), "spec.metric.query", out, required=True)
        values["metric"] = MetricSpec(type=mtype, query=query or "")
        if mtype == "rps" and "target" not in spec:
            values["target"] = DEFAULT_RPS_TARGET

    prediction = _mapping(spec.get("prediction"), "spec.prediction", out)
    if prediction:
        _unknown_keys(prediction, _PREDICTION_KEYS, "spec.prediction.", out)
        parsed = _fields(prediction, _PREDICTION_FIELDS, "spec.prediction.", out)
        pp = replace(PredictionPolicy(), **parsed)
        if pp.model == "holt-winters" and pp.horizon >= pp.seasonality[0]:
            out.add("spec.prediction.horizon", f"{format_duration(pp.horizon)} must be "
                    f"shorter than the shortest season ({format_duration(pp.seasonality[0])})")
        values["prediction"] = pp
    stz = _mapping(spec.get("scaleToZero"), "spec.scaleToZero", out)
    if stz:
        _unknown_keys(stz, _SCALE_TO_ZERO_KEYS, "spec.scaleToZero.", out)
        if "keepAlive" in stz:
            keep = _convert(stz["keepAlive"], "enum:fixed,histogram", "spec.scaleToZero.keepAlive",
                            "fixed or histogram", out)
            if keep is not None:
                values["keep_alive"] = keep

    values.update(_fields(spec, _SPEC_FIELDS, "spec.", out))


    # Cross-field rules run on whatever parsed, so one pass reports every problem.
    policy = replace(Policy(), **values, source=where)
    _cross_checks(policy, out)
    return (None, out.errors) if out.errors else (policy, [])


def _cross_checks(p: Policy, out: _Collector) -> None:
    """Constraints between keys (Knative's min/max/activation-scale rules)."""
    if p.max_replicas and p.min_replicas > p.max_replicas:
        out.add("spec.minReplicas", f"{p.min_replicas} is above spec.maxReplicas "
                                    f"{p.max_replicas} (allowed: 0..maxReplicas)")
    if p.max_replicas and p.initial_replicas > p.max_replicas:
        out.add("spec.initialReplicas", f"{p.initial_replicas} is above spec.maxReplicas "
                                        f"{p.max_replicas} (allowed: 0..maxReplicas)")
    if p.activation_replicas:
        if p.activation_replicas < p.min_replicas:
            out.add("spec.activationReplicas", f"{p.activation_replicas} is below "
                    f"spec.minReplicas {p.min_replicas} (allowed: minReplicas..maxReplicas)")
        if p.max_replicas and p.activation_replicas > p.max_replicas:
            out.add("spec.activationReplicas", f"{p.activation_replicas} is above "
                    f"spec.maxReplicas {p.max_replicas} (allowed: minReplicas..maxReplicas)")


def parse_policies(text: str, source: str) -> list[Policy]:
    """Parse every ``---`` document of a policy file. Raises PolicyError with all errors."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([f"{source}:{line}: not valid YAML: {problem}"]) from None
    policies: list[Policy] = []
    errors: list[str] = []
    numbered = [d for d in docs if d is not None]
    if not numbered:
        raise PolicyError([f"{source}: no policy documents found"])
    for index, doc in enumerate(numbered, start=1):
        policy, problems = parse_document(doc, f"{source}: document {index}")
        errors.extend(problems)
        if policy is not None:
            policies.append(policy)
    if errors:
        raise PolicyError(errors)
    return policies


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
    if errors:
        raise PolicyError(errors)


def policy_fields() -> list[str]:
    """Attribute names of Policy, for documentation tests."""
    return [f.name for f in fields(Policy)]
