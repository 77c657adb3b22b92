"""Policies: what the operator asked for, as frozen values.

Enters: YAML text (``parse``) or a path to policy files (``files``). Leaves:
:class:`Policy` values, validated in full (or a :class:`PolicyError` listing every
problem, each naming file, document, key, value and allowed range).
May import: PyYAML and the standard library; nothing else of scaler. Pure except
``files``, which reads the files it is pointed at.
"""

from scaler.policy.durations import format_duration, parse_duration, round_half_away
from scaler.policy.model import (
    ActivatorPolicy,
    MetricSpec,
    Policy,
    PredictionPolicy,
    ScaleTargetRef,
    Schedule,
)
from scaler.policy.parse import (
    PolicyError,
    check_unique,
    parse_document,
    parse_policies,
)

__all__ = [
    "ActivatorPolicy", "MetricSpec", "Policy", "PolicyError", "PredictionPolicy", "ScaleTargetRef", "Schedule",
    "check_unique", "format_duration", "parse_document", "parse_duration", "parse_policies",
    "round_half_away",
]
