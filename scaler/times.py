"""Timestamps as users write them: unix seconds, or RFC 3339 with a zone. Pure."""

from __future__ import annotations

import math
from datetime import datetime


def parse_timestamp(text: str) -> float:
    """Unix seconds ("1772409600", "1772409600.5") or an RFC 3339 time with a zone
    ("2026-03-02T00:00:00Z"). Raises ValueError saying which rule the text broke."""
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
