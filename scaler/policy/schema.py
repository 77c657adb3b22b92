"""The ScalingPolicy CustomResourceDefinition, generated from the policy parser's own rows.

One source of truth: the OpenAPI v3 schema below is built from the tables ``scaler.policy.
parse`` validates with (each key's kind, range and default), so an API server rejects what
``scaler validate`` rejects. ``deploy/crd/crd.yaml`` is this module's output (``python -m
scaler.policy.schema > deploy/crd/crd.yaml``; a test keeps the two equal).

What OpenAPI says plainly (types, enums, minimum/maximum, patterns, required keys) is
said that way. What it cannot say goes into CEL rules (``x-kubernetes-validations``), which
API servers from 1.25 on evaluate: a range with a lone value outside it (``0`` or
``2..``), a duration's range, and the rules between keys (minReplicas <= maxReplicas).
A few rules stay with the daemon, which validates every object with the parser anyway and
reports an invalid one on its ``Ready`` condition (keeping the version that ran before):
the name's length, a duration in days (``1d`` is no Go duration, so CEL cannot read it), a
duration's whole seconds, seasons, the prediction keys a model does not use, and a
schedule's cron expression and time zone.

Defaults are the policy's own, except where a default depends on another key: ``target``
(100, or 200 for ``rps``), the model-specific prediction keys, ``coldStartCost``,
``activator.service`` (the target's name) and ``scaleTargetRef.namespace`` (the object's
own namespace). Pure.
"""

from __future__ import annotations

import sys
from typing import Any

from scaler.policy import parse
from scaler.policy.durations import format_duration
from scaler.policy.model import KEEP_ALIVE, METRIC_SOURCES, Policy, PredictionPolicy
from scaler.policy.parse import ANY, Range

API_VERSION = parse.OBJECT_API_VERSION          # scaler.dev/v1alpha1
GROUP, VERSION = API_VERSION.split("/")
KIND = "ScalingPolicy"
PLURAL = "scalingpolicies"
SINGULAR = "scalingpolicy"
SHORT_NAMES = ["spol"]

# A duration as scaler.policy.durations parses it (Go's units plus d).
DURATION_PATTERN = r"^([+-]?0|\+?(([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|ms|s|m|h|d))+)$"
_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SERVICE = parse._SERVICE_RE.pattern

Obj = dict[str, Any]


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _cel_literal(x: float, kind: str) -> str:
    """A bound in CEL: an int for integer keys, a double for number keys (CEL does not
    compare an int with a double)."""
    return str(int(x)) if kind == "integer" else repr(float(x))


def _range_rule(r: Range, value: str, literal) -> str:
    """``value`` (a CEL expression) within ``r``, as a CEL condition."""
    parts = []
    if r.low is not None:
        parts.append(f"{value} {'>' if r.low_open else '>='} {literal(r.low)}")
    if r.high is not None:
        parts.append(f"{value} {'<' if r.high_open else '<='} {literal(r.high)}")
    inside = " && ".join(parts) or "true"
    if not r.also:
        return inside
    alone = " || ".join(f"{value} == {literal(a)}" for a in r.also)
    return f"{alone} || ({inside})"


def _numeric(kind: str, r: Range, allowed: str, default: Any) -> Obj:
    """An integer or number key: the range as minimum/maximum; a lone allowed value
    outside it (``also``) widens them, and a CEL rule then says the rest."""
    out: Obj = {"type": kind}
    lows = [*r.also, *([r.low] if r.low is not None else [])]
    highs = [*r.also, *([r.high] if r.high is not None else [])]
    if lows:
        out["minimum"] = _number(min(lows))
        if r.low_open and not r.also:
            out["exclusiveMinimum"] = True
    if highs and r.high is not None:
        out["maximum"] = _number(max(highs))
        if r.high_open and not r.also:
            out["exclusiveMaximum"] = True
    if r.also:
        out["x-kubernetes-validations"] = [{
            "rule": _range_rule(r, "self", lambda x: _cel_literal(x, kind)),
            "message": f"must be {allowed}"}]
    if default is not None:
        out["default"] = default
    return out


def _duration(r: Range, allowed: str, default: Any) -> Obj:
    out: Obj = {"type": "string", "pattern": DURATION_PATTERN}
    if r != ANY:
        rule = _range_rule(r, "duration(self)", lambda x: f"duration('{x:g}s')")
        # Days are no Go duration: CEL cannot read "1d"; the daemon checks those.
        out["x-kubernetes-validations"] = [{"rule": f"self.contains('d') || ({rule})",
                                            "message": f"must be {allowed}"}]
    if default is not None:
        out["default"] = default
    return out


def _any_of_forms(description: str) -> Obj:
    """A key the file takes in several JSON types (a number or a percentage, a duration or
    a list of them): OpenAPI's structural schemas have no such type, so the server keeps
    what is written and the daemon checks it."""
    return {"description": description, "x-kubernetes-preserve-unknown-fields": True}


def _row_schema(kind: str, r: Range, allowed: str, default: Any) -> Obj:
    if kind in ("number", "integer"):
        return _numeric(kind, r, allowed, default)
    if kind in ("duration", "whole-duration", "window"):
        return _duration(r, allowed, None if default is None else format_duration(default))
    if kind == "bool":
        return {"type": "boolean", **({"default": default} if default is not None else {})}
    if kind.startswith("enum:"):
        out: Obj = {"type": "string", "enum": kind[5:].split(",")}
        if default is not None:
            out["default"] = default
        return out
    if kind == "share":
        return _any_of_forms(f"a percentage (\"10%\") or a fraction; allowed: {allowed}")
    if kind == "seasons":
        return _any_of_forms(f"a duration, a list of them, or none; allowed: {allowed}")
    raise AssertionError(kind)


# Keys whose default depends on another key: no schema default (see the module doc).
_NO_DEFAULT = {"target", "maxExtraCost", "quantile", "refitInterval", "minHistory",
               "seasonality"}


def _rows(rows, defaults: object, described: str) -> Obj:
    props: Obj = {}
    for key, attr, kind, r, allowed in rows:
        default = None if key in _NO_DEFAULT else getattr(defaults, attr)
        schema = _row_schema(kind, r, allowed, default)
        schema["description"] = f"{described} {key}; allowed: {allowed}"
        props[key] = schema
    return props


def spec_schema() -> Obj:
    """The OpenAPI v3 schema of ``spec``: the policy file's spec keys."""
    policy, prediction = Policy(), PredictionPolicy()
    props = _rows(parse._SPEC_FIELDS, policy, "see the policy reference:")
    props["target"]["description"] += " (default 100, or 200 for metric.type rps)"
    props["scaleTargetRef"] = {
        "type": "object", "required": ["name"],
        "description": "the workload whose scale subresource the policy drives",
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": _SUBDOMAIN},
            "namespace": {"type": "string", "maxLength": 63, "pattern": _LABEL,
                          "description": "must be the ScalingPolicy's own namespace "
                                         "(the default)"},
            "kind": {"type": "string", "default": "Deployment", "maxLength": 63,
                     "pattern": r"^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$"},
            "apiVersion": {"type": "string", "default": "apps/v1",
                           "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*"
                                      r"[a-z0-9])?)*/)?[a-z]([-a-z0-9]*[a-z0-9])?$"},
        }}
    props["metric"] = {
        "type": "object",
        "description": "what measures the workload's load",
        "properties": {
            "type": {"type": "string", "enum": ["concurrency", "rps"],
                     "default": "concurrency"},
            "source": {"type": "string", "enum": list(METRIC_SOURCES),
                       "default": "prometheus"},
            "query": {"type": "string", "minLength": 1,
                      "description": "PromQL giving the workload's total load"},
            # metric.select (label: value picking one series of a shared query), where the
            # parser has the key; the label rules stay with the parser.
            **({"select": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "label: value, picking one series of the "
                                          "query's answer"}}
               if "select" in parse._METRIC_KEYS else {}),
        },
        "x-kubernetes-validations": [
            {"rule": "self.source != 'prometheus' || has(self.query)",
             "message": "query is required with source prometheus"},
            {"rule": "self.source != 'activator' || !has(self.query)",
             "message": "query is not used with source activator (the activator counts "
                        "the requests itself); remove it"}]}
    pred = _rows(parse._PREDICTION_FIELDS, prediction, "prediction")
    props["prediction"] = {"type": "object", "properties": pred,
                           "description": "the forecaster (scaler's predictive floor)"}
    props["scaleToZero"] = {
        "type": "object", "description": "how long a replica is kept without demand",
        "properties": {
            "keepAlive": {"type": "string", "enum": list(KEEP_ALIVE), "default": "fixed"},
            "coldStartCost": _duration(parse.COLD_START_COST, parse.COLD_START_COST_TEXT,
                                       None),
            "prewarmLead": _duration(parse.PREWARM_LEAD, parse.PREWARM_LEAD_TEXT, None)},
        "x-kubernetes-validations": [
            {"rule": f"!has(self.{key}) || self.keepAlive == 'histogram'",
             "message": f"{key} is used only with keepAlive: histogram"}
            for key in ("coldStartCost", "prewarmLead")]}
    props["activator"] = {
        "type": "object", "required": ["port", "hosts"],
        "description": "the activator: holds requests at zero, counts them exactly",
        "properties": {
            "service": {"type": "string", "maxLength": 63, "pattern": _SERVICE},
            "port": {"x-kubernetes-int-or-string": True,
                     "description": "the endpoints' port: a number 1-65535 or a port name"},
            "hosts": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "maxPendingRequests": _numeric("integer", parse.MAX_PENDING,
                                           f"0..{parse.MAX_PENDING_LIMIT}", 1000),
            "timeout": _duration(parse.ACTIVATOR_TIMEOUT, parse.ACTIVATOR_TIMEOUT_TEXT,
                                 "1m"),
            "mode": {"type": "string", "enum": ["always", "whenNeeded"],
                     "default": "whenNeeded"},
            "publicService": {"type": "string", "maxLength": 63, "pattern": _SERVICE},
        }}
    props["schedules"] = {
        "type": "array", "maxItems": parse.MAX_SCHEDULES,
        "description": "replica floors by the clock: from each time cron fires (in "
                       "timezone) and for duration, at least minReplicas",
        "items": {
            "type": "object", "required": ["cron", "duration", "minReplicas"],
            "properties": {
                "cron": {"type": "string", "minLength": 1,
                         "description": "five fields: minute hour day-of-month month "
                                        "day-of-week, e.g. \"0 8 * * 1-5\""},
                "duration": _duration(parse.SCHEDULE_DURATION, parse.SCHEDULE_DURATION_TEXT,
                                      None),
                "minReplicas": _numeric("integer", parse.SCHEDULE_MIN_REPLICAS,
                                        "0..2147483647", None),
                "timezone": {"type": "string", "default": "UTC",
                             "description": "an IANA time zone, e.g. Europe/Berlin"},
            }}}
    return {
        "type": "object", "required": ["scaleTargetRef", "metric"],
        "properties": dict(sorted(props.items())),
        # The rules between keys, as scaler.policy.parse._cross_checks words them.
        "x-kubernetes-validations": [
            {"rule": "self.maxReplicas == 0 || self.minReplicas <= self.maxReplicas",
             "message": "minReplicas must be at most maxReplicas (0..maxReplicas)"},
            {"rule": "self.maxReplicas == 0 || self.initialReplicas <= self.maxReplicas",
             "message": "initialReplicas must be at most maxReplicas (0..maxReplicas)"},
            {"rule": "self.activationReplicas == 0 || (self.activationReplicas >= "
                     "self.minReplicas && (self.maxReplicas == 0 || "
                     "self.activationReplicas <= self.maxReplicas))",
             "message": "activationReplicas must be within minReplicas..maxReplicas"},
            {"rule": "self.metric.source != 'activator' || has(self.activator)",
             "message": "metric.source activator needs an activator block"},
            {"rule": "!has(self.schedules) || self.maxReplicas == 0 || "
                     "self.schedules.all(s, s.minReplicas <= self.maxReplicas)",
             "message": "a schedule's minReplicas must be at most maxReplicas"},
        ]}


def status_schema() -> Obj:
    condition = {
        "type": "object", "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "minimum": 0},
        }}
    return {
        "type": "object",
        "description": "what the daemon does with the policy, written by the daemon",
        "properties": {
            "observedGeneration": {"type": "integer",
                                   "description": "the generation the daemon last read"},
            "desiredReplicas": {"type": "integer", "description": "the last decision"},
            "readyReplicas": {"type": "integer", "description": "the target's, last tick"},
            "currentReplicas": {"type": "integer", "description": "the target's, last tick"},
            "inPanic": {"type": "boolean"},
            "currentMetricValue": {"type": "string",
                                   "description": "the newest value of the metric"},
            "lastScaleTime": {"type": "string", "format": "date-time"},
            "activeSchedule": {"type": "string",
                               "description": "the schedule whose floor applies, if any"},
            "conditions": {"type": "array", "items": condition,
                           "x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["type"]},
        }}


PRINTER_COLUMNS = [
    {"name": "Target", "type": "string", "jsonPath": ".spec.scaleTargetRef.name"},
    {"name": "Metric", "type": "string", "jsonPath": ".status.currentMetricValue",
     "description": "the newest value of the metric"},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "Panic", "type": "boolean", "jsonPath": ".status.inPanic"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Type", "type": "string", "jsonPath": ".spec.metric.type", "priority": 1},
    {"name": "Query", "type": "string", "jsonPath": ".spec.metric.query", "priority": 1},
]


def crd() -> Obj:
    """The whole CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "scaler",
                                "app.kubernetes.io/part-of": "scaler"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL,
                      "singular": SINGULAR, "shortNames": SHORT_NAMES,
                      "categories": ["scaler"]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A scaling policy: what scaler scales, on which metric, "
                                   "and how (the keys of a policy file's spec).",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema(),
                        "status": status_schema(),
                    }}},
            }],
        },
    }


HEADER = ("# Generated by `python -m scaler.policy.schema` from the policy parser's rules: "
          "do not edit.\n# Cluster-scoped: install it once per cluster (kubectl apply -f "
          "deploy/crd/crd.yaml).\n")


def crd_yaml() -> str:
    import yaml

    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
