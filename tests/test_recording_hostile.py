"""Hostile recordings: whatever a file holds, reading it gives a recording or one clear
RecordingError — never another exception, never a traceback from `scaler replay`."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler import cli
from scaler.sources import MAX_LOAD, recording
from scaler.sources.recording import RecordingError

T0 = 1772409600


def write(tmp_path: Path, content: bytes, name: str = "rec.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def replay(tmp_path: Path, path: Path, capsys) -> tuple[int, str]:
    """`scaler replay PATH` as a user runs it: the exit code and what it printed on stderr."""
    code = cli.main(["replay", str(path), "--out", str(tmp_path / "out"), "--no-chart"])
    return code, capsys.readouterr().err


HOSTILE = [
    pytest.param(b"[" * 100_000, "rec.json", ["nested too deeply"], id="100000-brackets"),
    pytest.param(b'{"data":' * 50_000 + b"1" + b"}" * 50_000, "rec.json",
                 ["nested too deeply"], id="deeply-nested-objects"),
    pytest.param(b"timestamp,value\n1,2\n2," + b"7" * 131_073 + b"\n", "rec.csv",
                 ["line 3", "field larger than field limit"], id="131073-character-field"),
    pytest.param(b"timestamp,value\n1,2\n2,\"" + b"x" * 131_073 + b"\"\n", "rec.csv",
                 ["line 3", "field larger than field limit"], id="131073-character-quoted-field"),
    pytest.param(b"timestamp,value\n1,2\n2,3e0\n3,1.8e302\n", "rec.csv",
                 ["line 4", "beyond any load", "9.0072e+15"], id="value-1.8e302"),
    pytest.param(b"timestamp,value\n1,2\n2,1.8e302\n", "rec.csv",
                 ["line 3", "beyond any load"], id="value-1.8e302-fast-path-file"),
    pytest.param(json.dumps({"data": {"result": [{"metric": {}, "values": [
        [1, "1"], [2, "1.8e302"]]}]}}).encode(), "rec.json",
                 ["point 2", "beyond any load"], id="json-value-1.8e302"),
    pytest.param(b"timestamp,value\n1,2\n2,1e400\n", "rec.csv", ["line 3", "not finite"],
                 id="value-beyond-float"),
    pytest.param(json.dumps({"data": {"result": [{"metric": {}, "values": [
        [10 ** 400, "1"]]}]}}).encode(), "rec.json", ["point 1", "not [unix_seconds"],
                 id="json-time-beyond-float"),
    pytest.param(b'{"data": {"result": [{"metric": {}, "values": [[1, "1"], [2, '
                 + b"9" * 5000 + b"]]}]}}", "rec.json", ["not valid JSON"],
                 id="json-5000-digit-integer"),
    pytest.param(b"timestamp,value\n1,2\n2,NaN\n", "rec.csv", ["line 3", "NaN"], id="nan"),
    pytest.param(b"timestamp,value\n1,2\n2,-Infinity\n", "rec.csv", ["line 3", "not finite"],
                 id="minus-infinity"),
    pytest.param(b"timestamp,value\n1,2\n2,3\x00\n", "rec.csv", ["line 3"], id="nul-byte"),
    pytest.param(b"timestamp,value\n1,2\n" + b"1" * 5000 + b",3\n", "rec.csv",
                 ["line 3", "timestamp", "..."], id="5000-digit-timestamp"),
    pytest.param(b"timestamp," + b",".join(b"c%d" % i for i in range(20_000)) + b"\n1"
                 + b",1" * 20_000 + b"\n", "rec.csv", ["several value columns", "19990 more"],
                 id="20000-columns"),
    pytest.param(json.dumps({"data": {"result": [{"metric": 5, "values": []},
                                                 {"metric": [], "values": []}]}}).encode(),
                 "rec.json", ["2 series"], id="labels-not-a-mapping"),
    pytest.param(json.dumps({"data": {"result": [{"metric": {}, "values": [[True, "1"]]}]}})
                 .encode(), "rec.json", ["point 1"], id="json-time-is-a-boolean"),
    pytest.param(b"\xff\xfe\x00t\x00i\x00m\x00e", "rec.csv", ["line 1", "'timestamp'"],
                 id="utf-16"),
]


@pytest.mark.parametrize(("content", "name", "fragments"), HOSTILE)
def test_a_hostile_recording_is_one_clear_error_with_exit_2(tmp_path, capsys, content, name,
                                                            fragments):
    path = write(tmp_path, content, name)
    with pytest.raises(RecordingError) as info:
        recording.load(path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)[:300]
    code, err = replay(tmp_path, path, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err[:300]
    assert len(err) < 500 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("newline", [b"\r", b"\r\n", b"\n"], ids=["cr-only", "crlf", "lf"])
def test_any_line_ending_is_the_same_csv(tmp_path, newline):
    """Old Mac exports end lines with a lone CR: read as the CSV it is, on the fast path."""
    rows = [b"timestamp,value"] + [b"%d,%d.5" % (T0 + i, i) for i in range(5)]
    rec = recording.load(write(tmp_path, newline.join(rows) + newline))
    assert rec.times.tolist() == [T0 + i for i in range(5)]
    assert rec.values.tolist() == [i + 0.5 for i in range(5)]


def test_a_cr_only_file_names_the_line_of_an_error(tmp_path):
    content = b"timestamp,value\r1,1\r\r2,-2\r"
    with pytest.raises(RecordingError, match="line 4: value -2 is negative"):
        recording.load(write(tmp_path, content))


@pytest.mark.parametrize("name, body", [
    pytest.param("rec.csv", b"timestamp,value\n1,2\n2,3\n", id="csv"),
    pytest.param("rec.json", json.dumps({"data": {"result": [
        {"metric": {}, "values": [[1, "2"], [2, "3"]]}]}}).encode(), id="json"),
])
def test_a_utf8_byte_order_mark_is_ignored(tmp_path, name, body):
    rec = recording.load(write(tmp_path, b"\xef\xbb\xbf" + body, name))
    assert rec.times.tolist() == [1.0, 2.0] and rec.values.tolist() == [2.0, 3.0]


# ------------------------------------------------------------------ anything at all

def only_recording_errors(path: Path) -> None:
    try:
        rec = recording.load(path)
    except RecordingError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message and len(message) < 1000
    else:
        # What loads is what replay can take: sorted, finite, loads within range.
        assert len(rec) > 0
        assert all(0 <= v <= MAX_LOAD for v in rec.values.tolist())
        assert all(math.isfinite(t) for t in rec.times.tolist())
        assert rec.times.tolist() == sorted(rec.times.tolist())


csv_text = st.text(alphabet=string.digits + ",.-+eE\r\n\"' \tnaifNIF:TZ\x00\ufeff",
                   max_size=300)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400),
                 csv_text.map(lambda t: ("timestamp,value\n" + t).encode("utf-8", "replace")),
                 csv_text.map(lambda t: t.encode("utf-8", "replace"))))
def test_arbitrary_bytes_give_a_recording_or_a_recording_error(tmp_path_factory, content):
    only_recording_errors(write(tmp_path_factory.mktemp("fuzz"), content))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["data", "result", "metric", "values", "status", "x"]), inner,
        max_size=4),
    max_leaves=30)

points = st.lists(st.one_of(
    st.tuples(st.one_of(st.integers(-10, 10**12), st.floats(), st.text(max_size=5)),
              st.one_of(st.text(max_size=8), st.floats().map(str), st.integers().map(str),
                        st.none())).map(list),
    json_values), max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    json_values,
    st.builds(lambda pts, metric: {"status": "success", "data": {"resultType": "matrix",
                                   "result": [{"metric": metric, "values": pts}]}},
              points, st.one_of(st.dictionaries(st.text(max_size=3), st.text(max_size=3)),
                                json_values)),
))
def test_arbitrary_json_gives_a_recording_or_a_recording_error(tmp_path_factory, doc):
    content = json.dumps(doc, allow_nan=True).encode()
    path = write(tmp_path_factory.mktemp("fuzz"), b" " + content if content[:1] not in
                 b"{[" else content, "rec.json")
    only_recording_errors(path)
