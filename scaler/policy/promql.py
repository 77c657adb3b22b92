"""What can be known about a PromQL query's answer without running it. Pure.

Only one thing is needed: which labels the series of a query's result may carry, so that
``spec.metric.select`` naming a label the answer cannot have is caught when the policy is
read. That is known for a query whose outermost operation is an aggregation:
``sum by (service) (rate(x[30s]))`` (or ``sum(...) by (service)``) answers series labelled
with ``service`` only, and ``sum(...)`` one series without labels. Anything else (a
selector, a function, ``without``, a binary operation) may carry any label: unknown.
"""

from __future__ import annotations

import re

# Aggregations whose result carries exactly their ``by`` labels (topk, bottomk, quantile
# and count_values keep or add others and take a parameter: unknown).
_AGGREGATIONS = ("sum", "avg", "min", "max", "count", "group", "stddev", "stdvar")
_HEAD = re.compile(r"\s*(" + "|".join(_AGGREGATIONS) + r")\s*(by\s*\(([^()]*)\))?\s*\(",
                   re.IGNORECASE)
_TAIL_BY = re.compile(r"\s*by\s*\(([^()]*)\)\s*\Z", re.IGNORECASE)


def _labels(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _closing(query: str, opening: int) -> int | None:
    """Index of the parenthesis closing the one at ``opening`` (strings skipped)."""
    depth, quote, i = 0, "", opening
    while i < len(query):
        ch = query[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def result_labels(query: str) -> frozenset[str] | None:
    """The labels a query's result series can carry, or None when that is not known.

    ``sum by (service) (rate(x[1m]))`` → {service}; ``sum(x) by (a, b)`` → {a, b};
    ``sum(x)`` → {} (one series, no labels); ``rate(x[1m])`` → None;
    ``sum(x) + sum(y)`` → None (the aggregation is not the outermost operation).
    """
    head = _HEAD.match(query)
    if head is None:
        return None
    end = _closing(query, head.end() - 1)
    if end is None:
        return None
    rest = query[end + 1:]
    if head.group(2):
        return _labels(head.group(3)) if not rest.strip() else None
    if not rest.strip():
        return frozenset()
    tail = _TAIL_BY.match(rest)
    return _labels(tail.group(1)) if tail else None
