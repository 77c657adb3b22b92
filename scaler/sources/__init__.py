"""Metric sources: where the workload's load comes from.

Enters: a PromQL query and a range of seconds. Leaves: a :class:`Reading` — the
samples, or the reason there are none. One module per source, each behind
:class:`MetricSource`:

* ``prometheus`` — the live daemon's source (PromQL over the HTTP API);
* ``recording``  — recordings (a CSV, or a saved ``query_range`` answer): reading and
  writing the files, and a source that serves one as Prometheus would.

A source never decides what missing data means. It returns a :class:`Reading` whose
``error`` names why there is no usable data; the loop then holds the replica count
("no data is not zero"). A usable reading says which of its whole seconds are
*unknown* (no point, or a point that is not a load): the windows never count them as
zero load.

May import: the standard library, ``scaler.clock``, and (inside its own module) the
client library a source needs. Never ``scaler.decide``, ``scaler.actuators`` or the
daemon: a source only answers questions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

# Reasons a reading carries no usable data; also the `reason` label of
# scaler_metric_errors_total. Keep the set small and stable: dashboards key on it.
NO_DATA_REASONS = (
    "empty",            # the query returned no series (or no points in the range)
    "multiple_series",  # more than one series where the workload's total was expected
    "nan",              # NaN value
    "inf",              # +Inf or -Inf value
    "negative",         # a negative load is a broken query, not a load
    "too_large",        # a value beyond any load (above 2**53): a broken query or exporter
    "stale",            # newest point older than the staleness bound
    "http_error",       # non-2xx answer from the server
    "timeout",          # no answer before the deadline
    "unreachable",      # connection refused / DNS / TLS failure
    "bad_response",     # body that is not the Prometheus API's JSON
    "query_error",      # the server rejected the query (HTTP 400/422)
)


@dataclass(frozen=True)
class Reading:
    """The result of evaluating a metric query over a time range.

    ``samples`` are ``(unix_seconds, value)`` pairs in ascending time order, every value
    a load (finite, >= 0): one per evaluated second from Prometheus, a recording's own
    samples from a recording. ``unknown`` are the whole seconds of the range whose value
    is unknown — the answer lacks them (a failed scrape, a stale series, a recording's
    gap) or holds something that is not a load there; ``left_out`` names the reason
    (from ``NO_DATA_REASONS``) when such points were dropped, for the counters. A second
    is never both a sample's and unknown, and a sample never lies outside the range
    asked for. When ``error`` is set, ``samples`` is empty and ``detail`` says what
    happened in words a human can act on.
    """

    samples: tuple[tuple[float, float], ...] = ()
    error: str | None = None
    detail: str = ""
    unknown: tuple[int, ...] = ()
    left_out: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# The largest load a source hands over: 2**53, the largest integer a float counts exactly,
# far beyond any workload, yet small enough that a window's sum of an hour of seconds,
# times Knative's 10^6 for its 6-digit rounding, stays far from a float's range. A bigger
# number is a unit mistake or a broken exporter: recordings refuse it, live sources treat
# it as a second they cannot vouch for (``too_large``). The windows and the decider would
# not fail on it (they saturate as Go does) but would ask for the scale-up limit.
MAX_LOAD = float(2**53)

# Which NO_DATA_REASONS a single value falls under, in the order they are reported.
_BAD_VALUE = (("nan", math.isnan), ("inf", math.isinf), ("negative", lambda v: v < 0),
              ("too_large", lambda v: v > MAX_LOAD))


def bad_value(value: float) -> str | None:
    """The no-data reason of a value that is not a load: "nan", "inf", "negative",
    "too_large"; None for a load. 12.5 → None; -1 → "negative"."""
    if 0 <= value <= MAX_LOAD:
        return None
    for reason, bad in _BAD_VALUE:
        if bad(value):
            return reason
    return None


def split_points(points: Iterable[tuple[float, float]]) -> tuple[
        list[tuple[float, float]], dict[str, list[float]]]:
    """(the points that are loads, {reason: times} of those that are not)."""
    good: list[tuple[float, float]] = []
    bad: dict[str, list[float]] = {}
    for t, v in points:
        reason = bad_value(v)
        if reason is None:
            good.append((t, v))
        else:
            bad.setdefault(reason, []).append(t)
    return good, bad


def missing_seconds(samples: Iterable[tuple[float, float]], first: int,
                    last: int) -> tuple[int, ...]:
    """The whole seconds of [first, last] that no sample falls in: the unknown seconds of a
    per-second answer. Samples at 10 and 12 over [10, 13] → (11, 13)."""
    have = {math.floor(t) for t, _ in samples}
    return tuple(s for s in range(first, last + 1) if s not in have)


class MetricSource(Protocol):
    """What the daemon asks of a source: the last seconds, and history to warm up from."""

    def read(self, query: str, start: float, end: float, *, deadline: float) -> Reading:
        """Evaluate ``query`` at every whole second in ``[start, end]``.

        ``deadline`` is a ``Clock.monotonic()`` value: the source gives up (and returns a
        ``timeout`` reading) rather than overrun it, retries included.
        """

    def history(self, query: str, start: float, end: float, step: float = 1.0, *,
                deadline: float | None = None) -> Reading:
        """Evaluate ``query`` every ``step`` seconds over ``[start, end]``, a range of any
        length (a restarted daemon refills its windows and its forecaster from it).
        No staleness check: old data is the point. ``deadline`` as for :meth:`read`.
        """
