"""Real per-minute traces as 1 s load recordings: NASA's web server and Azure Functions.

A tool, not part of the scaler package (benchmarks/real_traces.py and the tests import it
with tools/ on the path). The traces live in tools/traces/ (gzipped; README there has their
sources, licences and checksums).

One conversion, :func:`per_second`, turns a minute's request count n into 1 s concurrency
(requests in flight, averaged over each second), each request in flight for ``service``
seconds, in one of two ways:

* ``spread="even"`` — Little's law per minute: every second of minute m carries
  n_m × service / 60. No sub-minute structure: the project's convention for per-minute
  traces (the bundled Azure function recording is made this way), and the primary NASA
  conversion.
* ``spread="slots"`` — discrete requests: request i of the minute (i = 0 .. n − 1) arrives
  at second 60·m + floor((i + 0.5)·60/n), n requests evenly spaced, each in the middle of
  its 60/n-second slot (a lone request at second 30), and is in flight for ``service``
  seconds from a uniform offset in its arrival second (tools/synthetic.py's exact kernel).
  Idle gaps stay gaps, known to the minute as the trace allows: the conversion for sparse
  functions, and the NASA sensitivity check.

Either way a minute's requests add up to n × service request-seconds, and nothing is random.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from pathlib import Path

import numpy as np

from synthetic import concurrency_from_arrivals

TRACES = Path(__file__).resolve().parent / "traces"
NASA = TRACES / "nasa_aug1995_requests_per_minute.csv.gz"
AZURE_INVOCATIONS = TRACES / "sample97_invocations_per_minute.csv.gz"
AZURE_DURATIONS = TRACES / "sample97_durations.csv.gz"
NASA_SERVICE = 0.5     # seconds each NASA request is in flight
NASA_TZ = dt.timezone(dt.timedelta(hours=-4))   # the log's local time, EDT


def per_second(per_minute, service: float, spread: str = "even") -> np.ndarray:
    """1 s concurrency of per-minute request counts (see the module docstring)."""
    counts = np.asarray(per_minute)
    if counts.ndim != 1 or (counts < 0).any() or not np.all(counts == np.floor(counts)):
        raise ValueError("per-minute counts must be a 1-D array of whole numbers >= 0")
    if spread == "even":
        return np.repeat(counts.astype(np.float64) * (service / 60.0), 60)
    if spread != "slots":
        raise ValueError(f"spread must be 'even' or 'slots', got {spread!r}")
    counts = counts.astype(np.int64)
    minute = np.repeat(np.arange(counts.size), counts)
    n = counts[minute]
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    i = np.arange(minute.size) - first[minute]                 # index inside its minute
    second = 60 * minute + ((2 * i + 1) * 60) // (2 * n)       # floor((i + 0.5)·60/n), exact
    arrivals = np.bincount(second, minlength=60 * counts.size).astype(np.float64)
    return concurrency_from_arrivals(arrivals, service)


def _rows(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.reader(io.StringIO(f.read())))


def nasa_minutes(path: Path = NASA) -> tuple[int, np.ndarray]:
    """(unix time of the first minute, requests per minute) of the NASA trace: 28 days,
    1995-08-04 to 08-31, server time UTC−4."""
    rows = _rows(path)[1:]
    start = dt.datetime.strptime(rows[0][0], "%Y-%m-%dT%H:%M").replace(tzinfo=NASA_TZ)
    return int(start.timestamp()), np.array([int(r[1]) for r in rows], dtype=np.int64)


def nasa(scale: int = 1, spread: str = "even") -> tuple[np.ndarray, np.ndarray]:
    """The NASA trace as a 1 s recording (float64 times and load), every minute's count
    multiplied by ``scale``, each request in flight for 0.5 s."""
    start, counts = nasa_minutes()
    values = per_second(counts * scale, NASA_SERVICE, spread)
    return (start + np.arange(values.size)).astype(np.float64), values


def azure_functions(invocations: Path = AZURE_INVOCATIONS,
                    durations: Path = AZURE_DURATIONS) -> list[dict]:
    """The sample of Azure functions, one dict each: ``hash``, ``per_minute`` (1,440
    counts, one day) and ``service`` (its average duration in seconds)."""
    rows = _rows(durations)
    header = rows[0]
    avg = header.index("Average")
    service = {r[0]: float(r[avg]) / 1000.0 for r in rows[1:]}
    rows = _rows(invocations)
    cols = [i for i, h in enumerate(rows[0]) if h.startswith("minute_")]
    return [{"hash": r[0], "per_minute": np.array([int(r[i]) for i in cols], dtype=np.int64),
             "service": service[r[0]]} for r in rows[1:]]


def function_recording(fn: dict, start: int) -> tuple[np.ndarray, np.ndarray]:
    """One function's day as a 1 s recording: its requests in slots, in flight for its
    average duration (at least 1 ms)."""
    values = per_second(fn["per_minute"], max(fn["service"], 1e-3), "slots")
    return (start + np.arange(values.size)).astype(np.float64), values
