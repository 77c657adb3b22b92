"""Reading a recording: the metric's history, from a file, into arrays.

Two formats:

* CSV with a header whose first column is ``timestamp`` (unix seconds, or RFC 3339) and a
  value column (``column`` picks one of several);
* a Prometheus ``/api/v1/query_range`` JSON response holding exactly one series.

Each row is one sample of the workload's total load at its timestamp. Everything is
checked before replay starts: an empty file, a missing column, an unparsable or
out-of-order timestamp, NaN, infinities, negative values and values beyond any real load
are :class:`RecordingError` naming the line (CSV) or the point (JSON) — and so is any
other input the parsers cannot read (a field beyond the csv module's limit, JSON nested
beyond Python's recursion limit, numbers beyond a float): a :class:`RecordingError` is
the only exception :func:`load` raises for what a file holds.

Line endings may be "\n", "\r\n" or a lone "\r" (old Mac exports): all three are the
same CSV. A UTF-8 byte order mark before the header (or the JSON) is ignored.

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
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaler.sources import MAX_LOAD
from scaler.sources.wire import format_labels, parse_timestamp


class RecordingError(ValueError):
    """A recording that cannot be replayed; the message names the file and the place."""




@dataclass(frozen=True)
class Recording:
    times: np.ndarray    # float64 unix seconds, non-decreasing
    values: np.ndarray   # float64, finite and >= 0
    source: str
    column: str = "value"
    resolution: float | None = None   # seconds each row holds; None: detected when used

    def __len__(self) -> int:
        return len(self.times)


GZIP_MAGIC = b"\x1f\x8b"
# A gzipped recording may unpack to at most this much: a year at 1 s is about 600 MB of
# CSV; a few KB that claim to unpack to terabytes are an error, not an allocation.
GZIP_MAX = 1 << 30


def _gunzip(data: bytes, source: str) -> bytes:
    out = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        text = out.decompress(data, GZIP_MAX + 1)
    except zlib.error as exc:
        raise RecordingError(f"{source}: not a valid gzip file: {exc}") from None
    if len(text) > GZIP_MAX:
        raise RecordingError(f"{source}: unpacks to more than {GZIP_MAX >> 20} MiB; split "
                             "the recording or record it at a coarser --step")
    if not out.eof:
        raise RecordingError(f"{source}: the gzip file is truncated")
    return text


def load(path: str | Path, column: str | None = None) -> Recording:
    """Read a recording, choosing the format from its content (gzipped or not)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if data.startswith(GZIP_MAGIC):
        data = _gunzip(data, str(p))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        if column is not None:
            raise RecordingError(f"{p}: --column applies to CSV recordings, not JSON")
        times, values = _parse_query_range(data, str(p))
        return _checked(times, values, str(p), lambda i: f"point {i + 1}", "value")
    return _load_csv(data, str(p), column)


# ----------------------------------------------------------------------------------- CSV

def _load_csv(data: bytes, source: str, column: str | None) -> Recording:
    if b"\r" in data:
        # One line ending, so the fast path applies and line numbers stay those a text
        # editor shows (a "\r\n" or a lone "\r" ends one line).
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    newline = data.find(b"\n")
    header_line = (data if newline < 0 else data[:newline]).decode("utf-8", "replace")
    try:
        header = [h.strip() for h in next(csv.reader([header_line]), [])]
    except csv.Error as exc:
        raise RecordingError(f"{source}: line 1: not a CSV header: {exc}") from None
    if not header or header == [""]:
        raise RecordingError(f"{source}: empty recording (expected a header such as "
                             "'timestamp,value' and one row per sample)")
    if header[0] != "timestamp":
        raise RecordingError(f"{source}: line 1: the first column must be 'timestamp', "
                             f"found {_short(header[0])}")
    value_columns = header[1:]
    if not value_columns:
        raise RecordingError(f"{source}: line 1: no value column after 'timestamp'")
    if column is None:
        if len(value_columns) > 1:
            raise RecordingError(f"{source}: line 1: several value columns "
                                 f"({_names(value_columns)}); pick one with --column")
        column = value_columns[0]
    if column not in value_columns:
        raise RecordingError(f"{source}: line 1: no column {_short(column)} (columns: "
                             f"{_names(value_columns)})")
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
    reader = csv.reader(io.StringIO(text))
    lineno = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:   # a field beyond the module's limit, a NUL, ...
            raise RecordingError(f"{source}: line {reader.line_num + 1}: "
                                 f"not a CSV row: {exc}") from None
        lineno = reader.line_num + 1
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
            raise RecordingError(f"{source}: line {lineno}: value {_short(cell)} is not a "
                                 "number") from None
        _check_value(values[-1], source, f"line {lineno}")
        if len(times) > 1 and times[-1] < times[-2]:
            raise RecordingError(f"{source}: line {lineno}: timestamp {_short(row[0].strip())} "
                                 "is earlier than the row before (rows must be in time order)")
    return np.array(times, dtype=np.float64), np.array(values, dtype=np.float64)


def _parse_time(cell: str, source: str, lineno: int) -> float:
    if len(cell) > 64:   # longer than any time; keep the message to one readable line
        raise RecordingError(f"{source}: line {lineno}: timestamp {_short(cell)} is neither "
                             "unix seconds nor an RFC 3339 time")
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
    except RecursionError:
        raise RecordingError(f"{source}: not a Prometheus query_range response (JSON "
                             "nested too deeply to read)") from None
    data_part = doc.get("data") if isinstance(doc, dict) else None
    result = data_part.get("result") if isinstance(data_part, dict) else None
    if not isinstance(result, list) or not all(isinstance(s, dict) for s in result):
        raise RecordingError(f"{source}: not a Prometheus query_range response "
                             "(expected data.result to be a list of series)")
    if not result:
        raise RecordingError(f"{source}: the response holds no series (empty result)")
    if len(result) > 1:
        labels = "; ".join(format_labels(_labels(s)) for s in result[:10])
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
            if isinstance(t, bool) or isinstance(v, bool):
                raise TypeError
            times[i] = float(t)
            values[i] = float(v)
        except (TypeError, ValueError, OverflowError):
            raise RecordingError(f"{source}: point {i + 1}: {_short(point)} is not "
                                 "[unix_seconds, \"value\"]") from None
    return times, values


def _labels(series: dict) -> dict[str, str]:
    metric = series.get("metric")
    return {str(k): str(v) for k, v in metric.items()} if isinstance(metric, dict) else {}


def _names(columns: list[str], limit: int = 10) -> str:
    shown = ", ".join(_short(c, 40).strip("'\"") for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def _short(value: object, limit: int = 80) -> str:
    """repr() of what a file held, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------- checks

def _check_value(v: float, source: str, where: str) -> None:
    if math.isnan(v):
        raise RecordingError(f"{source}: {where}: value is NaN (a recording holds loads, "
                             "not gaps: leave the row out instead)")
    if math.isinf(v):
        raise RecordingError(f"{source}: {where}: value {v} is not finite")
    if v < 0:
        raise RecordingError(f"{source}: {where}: value {v:g} is negative (a load is >= 0)")
    if v > MAX_LOAD:
        raise RecordingError(f"{source}: {where}: value {v:g} is beyond any load (at most "
                             f"{MAX_LOAD:g}; check the unit of the column)")


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
    bad = ~np.isfinite(values) | (values < 0) | (values > MAX_LOAD)
    if bad.any():
        i = int(np.argmax(bad))
        _check_value(float(values[i]), source, where(i))
    back = np.diff(times) < 0
    if back.any():
        i = int(np.argmax(back)) + 1
        raise RecordingError(f"{source}: {where(i)}: timestamp {times[i]:.17g} is earlier than "
                             f"the one before ({times[i - 1]:.17g}); rows must be in time order")
    return Recording(times=times, values=values, source=source, column=column)
