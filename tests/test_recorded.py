"""Recordings: every bad input is a RecordingError naming the place; CSV (fast numeric path
and row path agree with Python's float()), RFC 3339 times, and Prometheus query_range JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.sources import recording
from scaler.sources.recording import RecordingError

T0 = 1772409600  # 2026-03-02T00:00:00Z


def write(tmp_path: Path, content: str | bytes, name: str = "rec.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def load_error(path: Path, column: str | None = None) -> str:
    with pytest.raises(RecordingError) as info:
        recording.load(path, column)
    message = str(info.value)
    assert str(path) in message
    return message


def query_range(*series: dict) -> str:
    return json.dumps({"status": "success",
                       "data": {"resultType": "matrix", "result": list(series)}})


# --------------------------------------------------------------------------- bad inputs

BAD_CSV = [
    pytest.param("", None, ["empty recording"], id="empty-file"),
    pytest.param("\n\n", None, ["empty recording"], id="blank-lines-only"),
    pytest.param("timestamp,value\n", None, ["empty recording", "no rows"], id="header-only"),
    pytest.param("timestamp,value", None, ["empty recording", "no rows"],
                 id="header-only-no-newline"),
    pytest.param("timestamp,value\n\n\n", None, ["empty recording"],
                 id="header-and-blank-lines"),
    pytest.param("time,value\n1,2\n", None, ["line 1", "'timestamp'", "'time'"],
                 id="no-timestamp-column"),
    pytest.param("value,timestamp\n1,2\n", None, ["line 1", "'timestamp'"],
                 id="timestamp-not-first"),
    pytest.param("timestamp\n1\n", None, ["line 1", "no value column"], id="no-value-column"),
    pytest.param("timestamp,a,b\n1,2,3\n", "c", ["line 1", "no column 'c'", "a, b"],
                 id="column-missing"),
    pytest.param("timestamp,a,b\n1,2,3\n", None, ["line 1", "several value columns", "a, b",
                                                  "--column"], id="several-columns-no-choice"),
    pytest.param("timestamp,value\n1,2\nabc,3\n", None, ["line 3", "'abc'", "RFC 3339"],
                 id="unparsable-timestamp"),
    pytest.param("timestamp,value\n1,2\n2,3\n,4\n", None, ["line 4", "timestamp ''"],
                 id="empty-timestamp"),
    pytest.param("timestamp,value\n2026-03-02T00:00:00Z,1\n2026-03-02T00:00:01,2\n", None,
                 ["line 3", "'2026-03-02T00:00:01'", "no time zone"], id="rfc3339-without-zone"),
    pytest.param("timestamp,value\n2026-03-02,1\n", None, ["line 2", "no time zone"],
                 id="date-only"),
    pytest.param("timestamp,value\n1,2\n3,2\n2,2\n", None, ["line 4", "earlier"],
                 id="unsorted-fast-path"),
    pytest.param("timestamp,value\n1,2\n3,2\n2,2.5e0\n", None, ["line 4", "earlier"],
                 id="unsorted-row-path"),
    pytest.param("timestamp,value\n2026-03-02T00:00:10Z,1\n2026-03-02T00:00:09Z,1\n", None,
                 ["line 3", "earlier"], id="unsorted-rfc3339"),
    pytest.param("timestamp,value\n1,2\n2,nan\n", None, ["line 3", "NaN"], id="nan"),
    pytest.param("timestamp,value\n1,2\n2,NaN\n", None, ["line 3", "NaN"], id="nan-capitalised"),
    pytest.param("timestamp,value\n1,2\n2,3\n3,inf\n", None, ["line 4", "not finite"], id="inf"),
    pytest.param("timestamp,value\n1,2\n2,-inf\n", None, ["line 3", "not finite"],
                 id="minus-inf"),
    pytest.param("timestamp,value\n1,2\n2,3\n3,-1\n", None, ["line 4", "negative"],
                 id="negative-fast-path"),
    pytest.param("timestamp,value\n1,2\n2,3\n3,-0.5\n4,x y\n", None, ["line 4", "negative"],
                 id="negative-row-path"),
    pytest.param("timestamp,value\n1,2\n2,3,4\n", None, ["line 3", "expected 2 fields",
                                                         "found 3"], id="ragged-long"),
    pytest.param("timestamp,value\n1,2\n2\n", None, ["line 3", "expected 2 fields", "found 1"],
                 id="ragged-short"),
    pytest.param("timestamp,value\n1,2\n2,many\n", None, ["line 3", "'many'", "not a number"],
                 id="value-not-a-number"),
    pytest.param("timestamp,value\n1,2\n2,\n", None, ["line 3", "not a number"],
                 id="value-empty"),
    pytest.param("timestamp,value\n1,2\n\n2,3\n\n3,-4\n", None, ["line 6", "negative"],
                 id="line-number-counts-blank-lines"),
    pytest.param("timestamp,value\nnan,2\n", None, ["line 2", "'nan'"], id="nan-timestamp"),
    pytest.param("timestamp,value\ninf,2\n", None, ["line 2", "'inf'"], id="inf-timestamp"),
]


@pytest.mark.parametrize(("content", "column", "fragments"), BAD_CSV)
def test_bad_csv(tmp_path, content, column, fragments):
    message = load_error(write(tmp_path, content), column)
    for fragment in fragments:
        assert fragment in message, message


BAD_JSON = [
    pytest.param(query_range({"metric": {"pod": "a"}, "values": [[1, "1"]]},
                             {"metric": {"pod": "b", "zone": "x"}, "values": [[1, "2"]]}),
                 ["2 series", '{pod="a"}', '{pod="b", zone="x"}'], id="two-series-lists-labels"),
    pytest.param(query_range(), ["no series"], id="no-series"),
    pytest.param(json.dumps({"status": "success",
                             "data": {"resultType": "vector",
                                      "result": [{"metric": {}, "value": [1, "2"]}]}}),
                 ["'values'"], id="instant-vector-not-range"),
    pytest.param(json.dumps({"status": "error", "error": "bad query"}),
                 ["not a Prometheus query_range response"], id="error-response"),
    pytest.param(json.dumps([1, 2, 3]), ["not a Prometheus query_range response"],
                 id="json-list"),
    pytest.param(json.dumps({"data": 5}), ["not a Prometheus query_range response"],
                 id="data-not-a-mapping"),
    pytest.param(json.dumps({"data": {"result": [5]}}), ["series"],
                 id="series-not-a-mapping"),
    pytest.param("{not json", ["not valid JSON"], id="not-valid-json"),
    pytest.param(query_range({"metric": {}, "values": [[1, "1"], [2, "x"]]}),
                 ["point 2", "'x'"], id="unparsable-value"),
    pytest.param(query_range({"metric": {}, "values": [[1, "1"], [2]]}), ["point 2"],
                 id="short-point"),
    pytest.param(query_range({"metric": {}, "values": [[1, "1"], "12"]}), ["point 2"],
                 id="point-is-a-string"),
    pytest.param(query_range({"metric": {}, "values": [[1, "1"], [2, "2"], [3, "NaN"]]}),
                 ["point 3", "NaN"], id="nan"),
    pytest.param(query_range({"metric": {}, "values": [[1, "1"], [2, "+Inf"]]}),
                 ["point 2", "not finite"], id="inf"),
    pytest.param(query_range({"metric": {}, "values": [[1, "1"], [2, "-3"]]}),
                 ["point 2", "negative"], id="negative"),
    pytest.param(query_range({"metric": {}, "values": [[1, "1"], [3, "1"], [2, "1"]]}),
                 ["point 3", "earlier"], id="unsorted"),
    pytest.param(query_range({"metric": {}, "values": []}), ["empty"], id="no-points"),
]


@pytest.mark.parametrize(("content", "fragments"), BAD_JSON)
def test_bad_json(tmp_path, content, fragments):
    message = load_error(write(tmp_path, content, "rec.json"))
    for fragment in fragments:
        assert fragment in message, message


def test_json_with_column_is_an_error(tmp_path):
    path = write(tmp_path, query_range({"metric": {}, "values": [[1, "1"]]}), "rec.json")
    assert "--column" in load_error(path, "value")


def test_many_series_are_listed_with_a_count(tmp_path):
    series = [{"metric": {"pod": f"p{i:02d}"}, "values": [[1, "1"]]} for i in range(13)]
    message = load_error(write(tmp_path, query_range(*series), "rec.json"))
    assert "13 series" in message
    assert '{pod="p00"}' in message and '{pod="p09"}' in message
    assert "and 3 more" in message


def test_missing_file(tmp_path):
    assert "cannot read" in load_error(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- good inputs

def test_plain_csv(tmp_path):
    rec = recording.load(write(tmp_path, f"timestamp,value\n{T0},1.5\n{T0 + 1},0\n{T0 + 1},7\n"))
    assert rec.times.tolist() == [T0, T0 + 1, T0 + 1]
    assert rec.values.tolist() == [1.5, 0.0, 7.0]
    assert rec.times.dtype == np.float64 and rec.values.dtype == np.float64
    assert rec.column == "value"
    assert len(rec) == 3


def test_column_picks_one_of_several(tmp_path):
    path = write(tmp_path, "timestamp,rps,inflight\n10,100,4\n11,120,5.5\n")
    assert recording.load(path, "inflight").values.tolist() == [4.0, 5.5]
    assert recording.load(path, "rps").values.tolist() == [100.0, 120.0]
    assert recording.load(path, "inflight").column == "inflight"


def test_other_columns_may_hold_anything(tmp_path):
    """Only timestamp and the chosen column are read; a text column forces the row path."""
    path = write(tmp_path, "timestamp,value,note\n10,1,ok\n11,2,-\n12,3,\n")
    rec = recording.load(path, "value")
    assert rec.values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(("stamp", "unix"), [
    pytest.param("2026-03-02T00:00:00Z", T0, id="zulu"),
    pytest.param("2026-03-02T00:00:00z", T0, id="lower-z"),
    pytest.param("2026-03-02T01:00:00+01:00", T0, id="positive-offset"),
    pytest.param("2026-03-01T19:00:00-05:00", T0, id="negative-offset"),
    pytest.param("2026-03-02T00:00:00.250Z", T0 + 0.25, id="fraction"),
    pytest.param("2026-03-02T00:00:00+00:00", T0, id="plus-zero"),
])
def test_rfc3339_timestamps(tmp_path, stamp, unix):
    rec = recording.load(write(tmp_path, f"timestamp,value\n{stamp},3\n"))
    assert rec.times.tolist() == [unix]
    assert rec.values.tolist() == [3.0]


def test_rfc3339_rows_in_order(tmp_path):
    rows = "".join(f"2026-03-02T00:00:{s:02d}Z,{s}\n" for s in range(0, 60, 7))
    rec = recording.load(write(tmp_path, "timestamp,value\n" + rows))
    assert rec.times.tolist() == [T0 + s for s in range(0, 60, 7)]


def test_crlf_quotes_blank_lines_and_bom(tmp_path):
    content = ('\ufefftimestamp,"value"\r\n'
               f'{T0},1\r\n'
               '\r\n'
               f'"{T0 + 1}","2.5"\r\n'
               f' {T0 + 2} , 3 \r\n'
               '\r\n')
    rec = recording.load(write(tmp_path, content.encode("utf-8")))
    assert rec.times.tolist() == [T0, T0 + 1, T0 + 2]
    assert rec.values.tolist() == [1.0, 2.5, 3.0]


def test_crlf_error_line_numbers(tmp_path):
    message = load_error(write(tmp_path, f"timestamp,value\r\n{T0},1\r\n\r\n{T0 + 1},-2\r\n"))
    assert "line 4" in message


def test_last_line_without_newline(tmp_path):
    rec = recording.load(write(tmp_path, "timestamp,value\n1,2\n3,4"))
    assert rec.values.tolist() == [2.0, 4.0]


def test_query_range_json(tmp_path):
    content = query_range({"metric": {"__name__": "inflight", "app": "web"},
                           "values": [[T0, "1"], [T0 + 1.5, "2.25"], [T0 + 3, "0"]]})
    rec = recording.load(write(tmp_path, "  \n" + content, "rec.json"))
    assert rec.times.tolist() == [T0, T0 + 1.5, T0 + 3]
    assert rec.values.tolist() == [1.0, 2.25, 0.0]


def test_query_range_json_without_labels(tmp_path):
    """`sum(...)` gives a series with an empty label set."""
    content = query_range({"metric": {}, "values": [[T0, "10"]]})
    rec = recording.load(write(tmp_path, content, "anything.txt"))
    assert rec.values.tolist() == [10.0]


# ------------------------------------------------------------------- fast path == row path

def decimal(max_int: int, max_places: int) -> st.SearchStrategy[str]:
    """A non-negative decimal with 0..max_places decimal places, spelled as a CSV may."""

    def spell(whole: int, places: int, frac: int, style: str) -> str:
        digits = f"{frac % 10**places:0{places}d}" if places else ""
        if style == "dot-first" and whole == 0 and places:
            return f".{digits}"
        text = f"0{whole}" if style == "leading-zero" else str(whole)
        return f"{text}.{digits}" if places else text

    return st.builds(spell, st.integers(0, max_int), st.integers(0, max_places),
                     st.integers(0, 10**max_places - 1),
                     st.sampled_from(["plain", "plain", "plain", "leading-zero", "dot-first"]))


@st.composite
def recordings(draw) -> tuple[list[str], list[str]]:
    """Sorted timestamps (integer or with up to 3 decimals) and non-negative values with
    0-6 decimal places, as the text a CSV would hold (at most 15 digits per field)."""
    rows = draw(st.lists(st.tuples(decimal(2_000_000_000, 3), decimal(99_999_999, 6)),
                         min_size=1, max_size=40))
    stamps = sorted((t for t, _ in rows), key=Decimal)
    return stamps, [v for _, v in rows]


def csv_bytes(stamps: list[str], values: list[str], newline: str) -> bytes:
    return ("timestamp,value" + newline
            + "".join(f"{t},{v}{newline}" for t, v in zip(stamps, values))).encode()


@settings(max_examples=200, deadline=None)
@given(recordings())
def test_fast_path_and_row_path_match_float(data):
    stamps, values = data
    expected_t = np.array([float(t) for t in stamps])
    expected_v = np.array([float(v) for v in values])
    fast_body = csv_bytes(stamps, values, "\n").split(b"\n", 1)[1]

    table = recording.parse._parse_plain_numbers(fast_body, 0, 2)
    assert table is not None, "plain numbers must take the fast path"
    assert table[:, 0].tobytes() == expected_t.tobytes()
    assert table[:, 1].tobytes() == expected_v.tobytes()

    rows_t, rows_v = recording.parse._parse_rows(fast_body, 2, 1, "rec.csv")
    assert rows_t.tobytes() == expected_t.tobytes()
    assert rows_v.tobytes() == expected_v.tobytes()


@settings(max_examples=40, deadline=None)
@given(recordings())
def test_load_gives_the_same_arrays_for_lf_and_crlf(data):
    """Through load(): "\\n" takes the fast path, "\\r\\n" the row path."""
    import tempfile

    stamps, values = data
    with tempfile.TemporaryDirectory() as tmp:
        lf = write(Path(tmp), csv_bytes(stamps, values, "\n"), "lf.csv")
        crlf = write(Path(tmp), csv_bytes(stamps, values, "\r\n"), "crlf.csv")
        a, b = recording.load(lf), recording.load(crlf)
    expected_v = np.array([float(v) for v in values])
    assert a.values.tobytes() == expected_v.tobytes() == b.values.tobytes()
    assert a.times.tobytes() == b.times.tobytes()


@pytest.mark.parametrize("text", [
    pytest.param("123456789012345", id="15-digits"),
    pytest.param("1234567890123456", id="16-digits-falls-back"),
    pytest.param("0.000000000000001", id="tiny"),
    pytest.param("9007199254740993", id="above-2**53"),
    pytest.param("0.1", id="0.1"),
    pytest.param("1772409600.123456", id="microsecond-timestamp"),
    pytest.param("000", id="zeros"),
    pytest.param("5.", id="trailing-dot"),
    pytest.param(".5", id="leading-dot"),
])
def test_single_value_matches_float(tmp_path, text):
    rec = recording.load(write(tmp_path, f"timestamp,value\n1,{text}\n"))
    assert rec.values.tobytes() == np.array([float(text)]).tobytes()
    # Both columns through the parsers directly (timestamps this large are refused as
    # unix seconds by load(), but the parsing itself must still be exact).
    body = f"{text},{text}\n".encode()
    table = recording.parse._parse_plain_numbers(body, 0, 2)
    if table is None:   # more than 15 digits: the row path
        t, v = recording.parse._parse_rows(body, 2, 1, "rec.csv")
        table = np.column_stack((t, v))
    assert table.tobytes() == np.array([[float(text), float(text)]]).tobytes()


@pytest.mark.parametrize("stamp", [
    pytest.param("1772409600000", id="milliseconds"),
    pytest.param("-5", id="before-1970"),
    pytest.param("1e300", id="absurd"),
])
def test_timestamps_that_are_not_unix_seconds_are_refused(tmp_path, stamp):
    with pytest.raises(recording.RecordingError, match="line 3: timestamp .* is not unix seconds"):
        recording.load(write(tmp_path, f"timestamp,value\n1,1\n{stamp},1\n"))


def test_large_file_spanning_several_chunks(tmp_path):
    """Over 4 MB: the fast path parses in chunks; the result must not change."""
    n = 300_000
    rng = np.random.default_rng(1)
    stamps = [str(T0 + i) for i in range(n)]
    values = [f"{v:.3f}" for v in rng.uniform(0, 10_000, n)]
    content = csv_bytes(stamps, values, "\n")
    assert len(content) > 4 << 20
    rec = recording.load(write(tmp_path, content))
    assert len(rec) == n
    assert rec.times.tobytes() == np.array([float(t) for t in stamps]).tobytes()
    assert rec.values.tobytes() == np.array([float(v) for v in values]).tobytes()


def test_large_file_error_names_the_line(tmp_path):
    n = 300_000
    lines = [f"{T0 + i},{i % 97}" for i in range(n)]
    lines[250_000] = f"{T0 + 250_000},-1"
    message = load_error(write(tmp_path, "timestamp,value\n" + "\n".join(lines) + "\n"))
    assert "line 250002" in message


# --------------------------------------------------------------------------------------
# A recording served as a metric source


def source_of(times, values):
    return recording.RecordingSource(
        recording.Recording(np.array(times, dtype=np.float64),
                            np.array(values, dtype=np.float64), "rec.csv"))


def test_a_span_of_seconds_returns_the_samples_that_became_visible_in_it():
    src = source_of([100.0, 100.5, 101.0, 101.0, 103.2], [1, 2, 3, 4, 5])
    assert src.read("q", 100, 100, deadline=0).samples == ((100.0, 1.0),)
    # 100.5 is first visible at second 101, with both samples stamped 101
    assert src.read("q", 101, 101, deadline=0).samples == ((100.5, 2.0), (101.0, 3.0),
                                                           (101.0, 4.0))
    assert src.read("q", 102, 103, deadline=0).samples == ()        # 103.2 shows at 104
    assert src.read("q", 102, 104, deadline=0).samples == ((103.2, 5.0),)


def test_reading_span_after_span_hands_over_every_sample_once():
    times = [99.5, 100.0, 100.25, 103.0, 103.75, 110.0]
    src = source_of(times, range(len(times)))
    got = []
    for end in range(100, 113, 3):   # the loop reads (previous end, end] each tick
        got += src.read("q", end - 2, end, deadline=0).samples
    assert [t for t, _ in got] == times


def test_an_empty_span_is_a_valid_empty_reading_not_an_error():
    reading = source_of([100.0], [1.0]).read("q", 200, 260, deadline=0)
    assert reading.ok and reading.samples == ()


def test_history_at_a_coarser_step_takes_the_second_ending_at_each_step():
    src = source_of([float(t) for t in range(0, 300)], [float(t) for t in range(0, 300)])
    assert src.history("q", 0, 299, step=60.0).samples == tuple(
        (float(t), float(t)) for t in (0, 60, 120, 180, 240))
    assert src.history("q", 10, 12).samples == src.read("q", 10, 12, deadline=0).samples
