"""Prometheus's conventions for times and series as text, shared by the live source and
recordings (a recording is a saved Prometheus answer, or a CSV of the same points).

Pure: text in, numbers out, and back.
"""

from __future__ import annotations

import json

import math
from collections.abc import Mapping
from datetime import datetime


def parse_timestamp(text: str) -> float:
    """Unix seconds ("1772409600", "1772409600.5") or an RFC 3339 time with a zone
    ("2026-03-02T00:00:00Z"), the two forms Prometheus's API takes. Raises ValueError
    saying which rule the text broke."""
    value = text.strip()
    try:
        t = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(t):
            return t
        raise ValueError(f"{text!r} is not a finite number of seconds")
    try:
        when = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is neither unix seconds nor an RFC 3339 time such as "
                         "2026-03-02T00:00:00Z") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or an offset such as +00:00)")
    return when.timestamp()


def format_seconds(t: float) -> str:
    """A time or a step as Prometheus writes it, to its millisecond resolution: whole
    seconds without a point (1772409600), anything else with up to three decimals
    (0.5, 1772409600.25)."""
    if float(t).is_integer():
        return str(int(t))
    return f"{t:.3f}".rstrip("0").rstrip(".")


def format_labels(labels: Mapping[str, str]) -> str:
    """A series as Prometheus prints it: ``name{k="v", ...}``, labels sorted."""
    name = _escaped(labels.get("__name__", ""))
    rest = ", ".join(f'{_escaped(k)}="{_escaped(v)}"' for k, v in sorted(labels.items())
                     if k != "__name__")
    return f"{name}{{{rest}}}"


def _escaped(text: object) -> str:
    """A label name or value inside a one-line message: a newline, a quote or a
    backslash that a hostile answer put there is escaped as Prometheus escapes values."""
    return json.dumps(str(text), ensure_ascii=False)[1:-1]
