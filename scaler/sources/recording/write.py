"""Writing a recording: save what a query returned over a time range, for replay.

Two formats, chosen by the file name:

* ``*.csv`` — the replay's format: header ``timestamp,value``, one row per point in
  ascending time, unix seconds (integers when the step is whole seconds);
* ``*.json`` — Prometheus's own ``query_range`` response with the one series, so a
  recording can also be fed to tools that speak the HTTP API.

The file appears complete or not at all: it is written to a temporary file in the same
directory and renamed over the target. Anything that is not exactly one series of loads
(several series, no data, only NaN, an unreachable server, ...) is a :class:`RecordError`
whose message says what came back, as the live source's reading does. Points that are
not a load among good ones (a NaN, ±Inf or negative value) are left out, so replay sees
those seconds as unknown; :class:`Recorded` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from scaler.sources.wire import format_seconds

if TYPE_CHECKING:
    from scaler.sources.prometheus import Fetch


class RecordError(Exception):
    """The recording could not be made; the message is meant for the user as is."""


class HistorySource(Protocol):
    """What recording needs: :meth:`PrometheusSource.fetch_history`."""

    def fetch_history(self, query: str, start: float, end: float, step: float = 1.0) -> Fetch:
        ...


@dataclass(frozen=True)
class Recorded:
    path: Path
    points: int
    first: float
    last: float
    labels: Mapping[str, str]
    left_out: str = ""   # what was left out as unknown, in words; empty when nothing was


def record(
    source: HistorySource,
    query: str,
    start: float,
    end: float,
    step: float,
    out_path: str | os.PathLike[str],
) -> Recorded:
    """Evaluate ``query`` every ``step`` seconds over ``[start, end]`` and write it out."""
    path = Path(out_path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"{path}: the file name must end in .csv or .json")
    if not step > 0:
        raise ValueError(f"step must be positive, not {step}")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if not path.parent.is_dir():
        raise RecordError(f"cannot write {path}: directory {path.parent} does not exist")

    fetched = source.fetch_history(query, start, end, step)
    reading = fetched.reading
    if not reading.ok:
        raise RecordError(f"cannot record {query!r} between {format_seconds(start)} and "
                          f"{format_seconds(end)}: {reading.error}: {reading.detail}")

    # Unix seconds as Prometheus sends them: whole for a whole-second step.
    rows = [(format_seconds(t), _value(v)) for t, v in reading.samples]
    if suffix == ".json":
        chunks: Iterator[str] = iter([_as_query_range(fetched.labels, rows)])
    else:
        chunks = _as_csv(rows)
    _write_atomically(path, chunks)
    return Recorded(path, len(rows), reading.samples[0][0], reading.samples[-1][0],
                    dict(fetched.labels), reading.detail if reading.left_out else "")


def _as_csv(rows: list[tuple[str, str]]) -> Iterator[str]:
    yield "timestamp,value\n"
    for t, v in rows:
        yield f"{t},{v}\n"


def _as_query_range(labels: Mapping[str, str], rows: list[tuple[str, str]]) -> str:
    # Timestamps as JSON numbers and values as strings, exactly as Prometheus sends them.
    values = [[json.loads(t), v] for t, v in rows]
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": dict(labels), "values": values}
    ]}}
    return json.dumps(body, separators=(",", ":")) + "\n"


def _value(v: float) -> str:
    """Shortest text that reads back as the same float; integers without ``.0``."""
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _write_atomically(path: Path, chunks: Iterator[str]) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; a recording is meant to be shared like any output file.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
