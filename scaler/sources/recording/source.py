"""A recording served as a :class:`~scaler.sources.MetricSource`, as Prometheus would.

Replay's engines read a recording's arrays directly; this source lets the daemon's own
loop run on one (with a manual clock and the simulated actuator), which is how the tests
hold the loop, the per-tick engine and the fast engine to the same decisions.

The recording is served second by second as replay sees it: its rows spread over the
seconds they hold at its resolution, and the seconds no row holds listed as unknown
(:mod:`scaler.sources.recording.seconds`). Evaluating a query at whole second s sees
every sample up to s, so reading the seconds ``start..end`` returns the samples with
``start − 1 < t <= end`` and the unknown seconds in ``[start, end]``: exactly what became
visible in that span. Reading span after span (as the loop does) therefore hands over
every sample and every unknown second once, in order, at the first second at or after
it — the replay semantics of design.md ("at tick T every sample with timestamp <= T").

A span with no sample is a valid reading, not an error: its seconds are unknown (or not
yet due), and the windows treat unknown seconds as such. The query is not interpreted: a
recording holds one series.
"""

from __future__ import annotations

import math

import numpy as np

from scaler.sources import Reading
from scaler.sources.recording.parse import Recording
from scaler.sources.recording.seconds import per_second


class RecordingSource:
    """Implements :class:`~scaler.sources.MetricSource` over one :class:`Recording`."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.seconds = per_second(recording.times, recording.values, recording.resolution)

    def read(self, query: str, start: float, end: float, *, deadline: float) -> Reading:
        times, unknown = self.seconds.times, self.seconds.unknown
        first, last = math.ceil(start), math.floor(end)
        lo = np.searchsorted(times, first - 1, "right")
        hi = np.searchsorted(times, last, "right")
        u_lo, u_hi = np.searchsorted(unknown, [first, last + 1], "left")
        return Reading(samples=tuple(zip(times[lo:hi].tolist(),
                                         self.seconds.values[lo:hi].tolist())),
                       unknown=tuple(unknown[u_lo:u_hi].tolist()))

    def history(self, query: str, start: float, end: float, step: float = 1.0, *,
                deadline: float | None = None) -> Reading:
        """At each multiple of ``step`` in ``[start, end]``, the samples of the second
        ending there (so a 1 s step is :meth:`read`)."""
        if step == 1.0:
            return self.read(query, start, end, deadline=0.0)
        samples: list[tuple[float, float]] = []
        k = math.ceil(start / step)
        while k * step <= end:
            samples += self.read(query, k * step, k * step, deadline=0.0).samples
            k += 1
        return Reading(samples=tuple(samples))
