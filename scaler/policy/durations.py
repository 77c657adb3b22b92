"""Durations as policies and people write them: Go-style text to seconds and back. Pure.

Go's units (``ns`` to ``h``) plus ``d`` for days, which prediction seasons use:
``"60s"``, ``"1m30s"``, ``"500ms"``, ``"7d"``.
"""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0, "d": 86400.0}
# Go's longest duration, (2**63 - 1) ns: about 292 years. Anything longer is no duration
# (and 309 nines would not even be a finite float).
MAX_SECONDS = (2**63 - 1) / 1e9


def brief(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to ``limit`` characters with its length, for one-line errors."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def round_half_away(x: float) -> int:
    """Go's math.Round: halves go away from zero (2.5 → 3, -2.5 → -3), where Python's
    round() goes to the even neighbour (2.5 → 2)."""
    t = math.trunc(x)
    if abs(x - t) >= 0.5:
        t += 1 if x > 0 else -1
    return int(t)


def parse_duration(text: str) -> float:
    """Parse a Go-style duration ("60s", "1m30s", "1h", "500ms", and "1d") into seconds.

    Raises ValueError for anything else, and for a duration longer than Go's longest
    (about 292 years), so the result is always a finite number of seconds."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    if not s or s[0] == "-":
        raise ValueError(f"not a non-negative duration: {brief(text)}")
    if s[0] == "+":
        s = s[1:]
    if not s:
        raise ValueError(f"not a duration: {brief(text)} (use e.g. 60s, 1m30s, 1h)")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(f"not a duration: {brief(text)} (use e.g. 60s, 1m30s, 1h)")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not total <= MAX_SECONDS:    # also catches inf (and the NaN of inf - inf)
        raise ValueError(f"{brief(text)} is longer than any duration (at most about "
                         "292 years)")
    return total


def format_duration(seconds: float, *, days: bool = False) -> str:
    """The shortest Go-style spelling of a duration: 90 → "1m30s", 0 → "0s", 1.5 → "1.5s".

    A whole number of days is written in days (86400 → "1d", as seasons are written);
    any other duration counts hours past a day, as Go does (90000 → "25h"). With
    ``days`` the days always lead (90000 → "1d1h"), which reads better on a time axis.
    """
    if seconds != int(seconds):
        return f"{seconds:g}s"
    s = int(seconds)
    if s == 0:
        return "0s"
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    lead = ""
    if d and (days or not (h or m or sec)):
        lead = f"{d}d"
    else:
        h += 24 * d
    return lead + "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v)
