"""Reading a recording: the metric's history, from a file, into arrays.

Two formats:

* CSV with a header whose first column is ``timestamp`` (unix seconds, or RFC 3339) and a
  value column (``column`` picks one of several);
* a Prometheus ``/api/v1/query_range`` JSON response holding exactly one series.

Each row is one sample of the workload's total load at its timestamp. Everything is
checked before replay starts: an empty file, a missing column, an unparsable or
out-of-order timestamp, NaN, infinities and negative values are :class:`RecordingError`
naming the line (CSV) or the point (JSON).

Replays are run in loops while tuning a policy, so the common case — plain numbers, no
quotes — is parsed with array operations (an exact decimal parser, below); anything else
takes the row-by-row path, which is also the one that explains errors.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaler.sources.wire import format_labels, parse_timestamp


class RecordingError(ValueError):
    """A recording that cannot be replayed; the message names the file and the place."""


@dataclass(frozen=True)
class Recording:
    times: np.ndarray    # float64 unix seconds, non-decreasing
    values: np.ndarray   # float64, finite and >= 0
    source: str
    column: str = "value"

    def __len__(self) -> int:
        return len(self.times)


def load(path: str | Path, column: str | None = None) -> Recording:
    """Read a recording, choosing the format from its content."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read: {exc.strerror or exc}") from None
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        if column is not None:
            raise RecordingError(f"{p}: --column applies to CSV recordings, not JSON")
        times, values = _parse_query_range(data, str(p))
        return _checked(times, values, str(p), lambda i: f"point {i + 1}", "value")
    return _load_csv(data, str(p), column)


# ----------------------------------------------------------------------------------- CSV

def _load_csv(data: bytes, source: str, column: str | None) -> Recording:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    newline = data.find(b"\n")
    header_line = (data if newline < 0 else data[:newline]).decode("utf-8", "replace")
    header = [h.strip() for h in next(csv.reader([header_line.rstrip("\r")]), [])]
    if not header or header == [""]:
        raise RecordingError(f"{source}: empty recording (expected a header such as "
                             "'timestamp,value' and one row per sample)")
    if header[0] != "timestamp":
        raise RecordingError(f"{source}: line 1: the first column must be 'timestamp', "
                             f"found {header[0]!r}")
    value_columns = header[1:]
    if not value_columns:
        raise RecordingError(f"{source}: line 1: no value column after 'timestamp'")
    if column is None:
        if len(value_columns) > 1:
            raise RecordingError(f"{source}: line 1: several value columns "
                                 f"({', '.join(value_columns)}); pick one with --column")
        column = value_columns[0]
    if column not in value_columns:
        raise RecordingError(f"{source}: line 1: no column {column!r} (columns: "
                             f"{', '.join(value_columns)})")
    col = header.index(column)
    body_at = len(data) if newline < 0 else newline + 1
    table = _parse_plain_numbers(data, body_at, len(header))
    if table is None:
        times, values = _parse_rows(data[body_at:], len(header), col, source)
    else:
        times, values = table[:, 0], table[:, col]
    if not len(times):
        raise RecordingError(f"{source}: empty recording: a header but no rows")
    # Row i is on line i + 2 when the file has no blank lines (the row parser reports
    # exact lines for files that do).
    return _checked(times, values, source, lambda i: f"line {i + 2}", column)


_POW10 = 10.0 ** np.arange(23)


def _parse_plain_numbers(data: bytes, offset: int, ncols: int) -> np.ndarray | None:
    """Parse the CSV body ``data[offset:]`` of plain decimal numbers (digits, an optional
    '.', a leading '-') into an (rows, ncols) float64 array, or None if it holds anything
    else. The body is read in place, never copied.

    Exact: each field's digits (at most 15) form an integer mantissa that float64 holds
    exactly, and one IEEE division by an exact power of ten rounds correctly — the same
    double ``float(text)`` gives.
    """
    size = len(data)
    if offset >= size or data[offset:offset + 64].isspace() and data[offset:].isspace():
        return np.zeros((0, ncols))
    if data[-1] != 10:
        data += b"\n"
        size += 1
    # Chunks of ~1 MB, cut after a newline, keep the per-byte arrays small; numpy
    # releases the GIL in its loops, so two threads parse two chunks at once.
    bounds = []
    start = offset
    while start < size:
        end = data.find(b"\n", min(start + (1 << 20), size - 1)) + 1 or size
        bounds.append((start, end))
        start = end

    def parse(span: tuple[int, int]) -> np.ndarray | None:
        a, z = span
        return _parse_chunk(np.frombuffer(data, np.uint8, z - a, a), ncols)

    if len(bounds) == 1:
        chunks = [parse(bounds[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(bounds), os.cpu_count() or 1, 4)) as pool:
            chunks = list(pool.map(parse, bounds))
    if any(c is None for c in chunks):
        return None
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _parse_chunk(b: np.ndarray, ncols: int) -> np.ndarray | None:
    newline = b == 10
    sep = newline | (b == 44)
    digit = (b >= 48) & (b <= 57)
    dot = b == 46
    minus = b == 45
    if not (digit | sep | dot | minus).all():
        return None   # quotes, spaces, '\r', exponents, RFC 3339 times, NaN ...
    ends = np.flatnonzero(sep)
    nfields = len(ends)
    row_ends = np.flatnonzero(newline)
    if nfields != len(row_ends) * ncols or not np.array_equal(ends[ncols - 1::ncols], row_ends):
        return None   # a ragged or blank line
    starts = np.empty(nfields, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    digits_before = np.cumsum(digit, dtype=np.int32)
    ndigits = digits_before[ends] - np.where(starts > 0, digits_before[starts - 1], 0)
    if ndigits.min() < 1 or ndigits.max() > 15:
        return None
    # Field number of every byte: the separators before it.
    field_of = np.cumsum(sep, dtype=np.int32)
    field_of -= sep
    dot_field = field_of[dot]
    if len(dot_field) and np.bincount(dot_field, minlength=nfields).max() > 1:
        return None   # two dots in a field
    minus_pos = np.flatnonzero(minus)
    negative = np.zeros(nfields, dtype=bool)
    if len(minus_pos):
        mf = field_of[minus_pos]
        if not np.array_equal(starts[mf], minus_pos):
            return None   # a '-' that is not the field's first character
        negative[mf] = True
    decimals = np.zeros(nfields, dtype=np.int64)
    decimals[dot_field] = ends[dot_field] - np.flatnonzero(dot) - 1
    # Each digit's place value: 10 ** (digits after it in its field). A field's digits are
    # contiguous in digit order, so the place is the field's last digit index minus the
    # digit's index, and the mantissa a segment sum. Every partial sum is an integer
    # below 2**53, exact in any order.
    digit_pos = np.flatnonzero(digit)
    first_digit = np.zeros(nfields, dtype=np.int64)
    np.cumsum(ndigits[:-1], out=first_digit[1:])
    last_digit = first_digit + ndigits - 1
    places = np.repeat(last_digit, ndigits) - np.arange(len(digit_pos))
    weights = (b[digit_pos] - 48) * _POW10[places]
    mantissa = np.add.reduceat(weights, first_digit)
    values = mantissa / _POW10[decimals]
    values[negative] = -values[negative]
    return values.reshape(-1, ncols)


def _parse_rows(body: bytes, ncols: int, col: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The general path: csv module, RFC 3339 times, and errors with exact line numbers."""
    times: list[float] = []
    values: list[float] = []
    text = body.decode("utf-8", "replace")
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != ncols:
            raise RecordingError(f"{source}: line {lineno}: expected {ncols} fields, "
                                 f"found {len(row)}")
        times.append(_parse_time(row[0].strip(), source, lineno))
        cell = row[col].strip()
        try:
            values.append(float(cell))
        except ValueError:
            raise RecordingError(f"{source}: line {lineno}: value {cell!r} is not a number") from None
        _check_value(values[-1], source, f"line {lineno}")
        if len(times) > 1 and times[-1] < times[-2]:
            raise RecordingError(f"{source}: line {lineno}: timestamp {row[0].strip()!r} is "
                                 "earlier than the row before (rows must be in time order)")
    return np.array(times, dtype=np.float64), np.array(values, dtype=np.float64)


def _parse_time(cell: str, source: str, lineno: int) -> float:
    try:
        return parse_timestamp(cell)
    except ValueError as exc:
        raise RecordingError(f"{source}: line {lineno}: timestamp {exc}") from None


# ---------------------------------------------------------------------------------- JSON

def _parse_query_range(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise RecordingError(f"{source}: not valid JSON: {exc}") from None
    data_part = doc.get("data") if isinstance(doc, dict) else None
    result = data_part.get("result") if isinstance(data_part, dict) else None
    if not isinstance(result, list) or not all(isinstance(s, dict) for s in result):
        raise RecordingError(f"{source}: not a Prometheus query_range response "
                             "(expected data.result to be a list of series)")
    if not result:
        raise RecordingError(f"{source}: the response holds no series (empty result)")
    if len(result) > 1:
        labels = "; ".join(format_labels(s.get("metric", {})) for s in result[:10])
        more = f" and {len(result) - 10} more" if len(result) > 10 else ""
        raise RecordingError(f"{source}: the response holds {len(result)} series, replay needs "
                             f"one (sum them in the query): {labels}{more}")
    points = result[0].get("values")
    if not isinstance(points, list):
        raise RecordingError(f"{source}: the series has no 'values' list (a query_range "
                             "response, resultType matrix, is expected)")
    times = np.empty(len(points))
    values = np.empty(len(points))
    for i, point in enumerate(points):
        try:
            if not isinstance(point, (list, tuple)):
                raise TypeError
            t, v = point
            times[i] = float(t)
            values[i] = float(v)
        except (TypeError, ValueError):
            raise RecordingError(f"{source}: point {i + 1}: {point!r} is not "
                                 "[unix_seconds, \"value\"]") from None
    return times, values


# ------------------------------------------------------------------------------- checks

def _check_value(v: float, source: str, where: str) -> None:
    if math.isnan(v):
        raise RecordingError(f"{source}: {where}: value is NaN (a recording holds loads, "
                             "not gaps: leave the row out instead)")
    if math.isinf(v):
        raise RecordingError(f"{source}: {where}: value {v} is not finite")
    if v < 0:
        raise RecordingError(f"{source}: {where}: value {v:g} is negative (a load is >= 0)")


def _checked(times: np.ndarray, values: np.ndarray, source: str, where, column: str) -> Recording:
    """Whole-array checks; the first offending row is reported."""
    if not len(times):
        raise RecordingError(f"{source}: empty recording: no samples")
    # Unix seconds from 1970 to the year 5138: anything else is a unit mistake (e.g.
    # milliseconds) that would otherwise become billions of ticks.
    bad_time = ~(np.isfinite(times) & (times >= 0) & (times < 1e11))
    if bad_time.any():
        i = int(np.argmax(bad_time))
        raise RecordingError(f"{source}: {where(i)}: timestamp {times[i]:.17g} is not unix "
                             "seconds (allowed: 0 to 1e11; milliseconds must be divided by "
                             "1000)")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.argmax(bad))
        _check_value(float(values[i]), source, where(i))
    back = np.diff(times) < 0
    if back.any():
        i = int(np.argmax(back)) + 1
        raise RecordingError(f"{source}: {where(i)}: timestamp {times[i]:.17g} is earlier than "
                             f"the one before ({times[i - 1]:.17g}); rows must be in time order")
    return Recording(times=times, values=values, source=source, column=column)
