"""Metric sources: where the workload's load comes from.

Enters: a PromQL query and a range of seconds. Leaves: a :class:`Reading` — the
samples, or the reason there are none. One module per source, each behind
:class:`MetricSource`:

* ``prometheus`` — the live daemon's source (PromQL over the HTTP API);
* ``recording``  — recordings (a CSV, or a saved ``query_range`` answer): reading and
  writing the files, and a source that serves one as Prometheus would.

A source never decides what missing data means. It returns a :class:`Reading` whose
``error`` names why there is no usable data; the loop then holds the replica count
("no data is not zero").

May import: the standard library, ``scaler.clock``, and (inside its own module) the
client library a source needs. Never ``scaler.decide``, ``scaler.actuators`` or the
daemon: a source only answers questions.
"""

from __future__ import annotations

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

    ``samples`` are ``(unix_seconds, value)`` pairs in ascending time order: one per
    evaluated second from Prometheus, a recording's own samples from a recording. When ``error`` is set, ``samples`` is empty and ``detail`` says
    what happened in words a human can act on.
    """

    samples: tuple[tuple[float, float], ...] = ()
    error: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


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
