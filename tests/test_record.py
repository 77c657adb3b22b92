"""`scaler record` end to end against the real Prometheus (hours of backfilled load), plus
the file format details with a hand-written source."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.prometheus import PrometheusServer, free_port, openmetrics

from scaler.sources.recording.write import Recorded, RecordError, record
from scaler.sources import Reading
from scaler.sources.prometheus import Fetch, PrometheusSource

# 3.5 hours of a recorded load at 1 s, backfilled with promtool: more points than one
# query_range may return (11,000), so recording it takes two chunks.
POINTS = 12_600
T0 = (math.floor(time.time()) // 60) * 60 - 4 * 3600
LOAD = [(float(T0 + k), (k % 120) * 0.25) for k in range(POINTS)]  # exact in binary
BY_POD = [({"pod": "a"}, LOAD[:10]), ({"pod": "b"}, LOAD[:10])]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    # Backfilled blocks are queryable at once: no scrape target, no 6 s wait.
    text = openmetrics({"rec_load": [({"job": "recorded"}, LOAD)], "rec_by_pod": BY_POD})
    with PrometheusServer(backfill=text) as server:
        yield server


@pytest.fixture(scope="module")
def source(prometheus: PrometheusServer) -> Iterator[PrometheusSource]:
    with PrometheusSource(prometheus.url) as src:
        yield src


def test_csv_of_a_long_recording_is_the_recorded_load(
    source: PrometheusSource, tmp_path: Path
) -> None:
    out = tmp_path / "load.csv"
    recorded = record(source, "rec_load", T0, T0 + POINTS - 1, 1, out)
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,value"
    assert [(float(t), float(v)) for t, v in (line.split(",") for line in lines[1:])] == LOAD
    assert all("." not in line.split(",")[0] for line in lines[1:])  # integer seconds
    assert (recorded.points, recorded.first, recorded.last) == (POINTS, T0, T0 + POINTS - 1)
    assert recorded.labels == {"__name__": "rec_load", "job": "recorded"}


def test_json_is_exactly_what_prometheus_answers(
    source: PrometheusSource, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    start, end = T0 + 100, T0 + 400
    out = tmp_path / "load.json"
    record(source, "rec_load", start, end, 1, out)
    saved = json.loads(out.read_text())
    assert saved["status"] == "success" and saved["data"]["resultType"] == "matrix"
    # Same series, same [timestamp, "value"] pairs as Prometheus's own query_range.
    assert saved["data"]["result"] == prometheus.query_range("rec_load", start, end)


def test_coarser_step_takes_every_nth_point(source: PrometheusSource, tmp_path: Path) -> None:
    out = tmp_path / "minutely.csv"
    record(source, "rec_load", T0, T0 + POINTS - 1, 60, out)
    rows = out.read_text().splitlines()[1:]
    assert rows == [f"{T0 + k},{((k % 120) * 0.25):g}" for k in range(0, POINTS, 60)]


def test_sub_second_step_keeps_fractional_timestamps(
    source: PrometheusSource, tmp_path: Path
) -> None:
    out = tmp_path / "half.csv"
    record(source, "rec_load", T0 + 10, T0 + 11, 0.5, out)
    # At T0+10.5 Prometheus carries the T0+10 sample forward (lookback).
    assert out.read_text().splitlines()[1:] == [
        f"{T0 + 10},2.5", f"{T0 + 10}.5,2.5", f"{T0 + 11},2.75"]


@pytest.mark.parametrize(("query", "needles"), [
    pytest.param("rec_by_pod", ["multiple_series", 'pod="a"', 'pod="b"'],
                 id="several-series-lists-labels"),
    pytest.param('rec_load{job="other"}', ["empty", "no series"], id="no-data"),
    pytest.param("sum(rec_load", ["query_error", "parse error"], id="bad-query"),
    pytest.param("-1 - rec_load", ["negative"], id="negative-values"),
])
def test_failures_leave_the_old_file_alone(
    source: PrometheusSource, tmp_path: Path, query: str, needles: list[str]
) -> None:
    out = tmp_path / "load.csv"
    out.write_text("timestamp,value\n1,1\n")
    with pytest.raises(RecordError) as raised:
        record(source, query, T0, T0 + 5, 1, out)
    for needle in needles:
        assert needle in str(raised.value)
    assert out.read_text() == "timestamp,value\n1,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["load.csv"]  # no temp file left


def test_unreachable_prometheus_is_a_record_error(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with PrometheusSource(closed, history_timeout=0.5) as nowhere, \
            pytest.raises(RecordError, match="unreachable.*Connection refused"):
        record(nowhere, "rec_load", 100, 110, 1, tmp_path / "load.csv")
    assert list(tmp_path.iterdir()) == []


# -- format and argument details, with a hand-written source ------------------------------


class CannedSource:
    def __init__(self, samples: tuple[tuple[float, float], ...]) -> None:
        self.samples = samples

    def fetch_history(self, query: str, start: float, end: float, step: float = 1.0) -> Fetch:
        return Fetch(Reading(samples=self.samples), {"__name__": "load"}, 1)


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(3.0, "3", id="integer-without-point-zero"),
    pytest.param(0.1, "0.1", id="shortest-decimal"),
    pytest.param(12.345678901234567, "12.345678901234567", id="full-precision"),
    pytest.param(1e-05, "1e-05", id="tiny"),
    pytest.param(0.0, "0", id="zero"),
])
def test_values_read_back_as_the_same_float(value: float, text: str, tmp_path: Path) -> None:
    out = tmp_path / "v.csv"
    record(CannedSource(((100.0, value),)), "load", 100, 100, 1, out)
    assert out.read_text().splitlines()[1] == f"100,{text}"
    assert float(text) == value


def test_an_existing_recording_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "load.csv"
    out.write_text("timestamp,value\n" + "".join(f"{t},9\n" for t in range(100)))
    recorded = record(CannedSource(((5.0, 1.0), (6.0, 2.0))), "load", 5, 6, 1, out)
    assert out.read_text() == "timestamp,value\n5,1\n6,2\n"
    assert recorded == Recorded(out, 2, 5.0, 6.0, {"__name__": "load"})
    assert out.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(("args", "error", "match"), [
    pytest.param((10, 20, 0, "x.csv"), ValueError, "step must be positive", id="zero-step"),
    pytest.param((20, 10, 1, "x.csv"), ValueError, "before start", id="end-before-start"),
    pytest.param((10, 20, 1, "x.parquet"), ValueError, ".csv or .json", id="unknown-format"),
    pytest.param((10, 20, 1, "missing/x.csv"), RecordError, "does not exist", id="no-directory"),
])
def test_bad_arguments_are_refused_before_querying(
    args: tuple, error: type[Exception], match: str, tmp_path: Path
) -> None:
    start, end, step, name = args
    with pytest.raises(error, match=match):
        record(CannedSource(()), "load", start, end, step, tmp_path / name)


@pytest.mark.parametrize("name", [pytest.param("r.csv", id="csv"), pytest.param("r.json", id="json")])
def test_the_replay_reads_back_what_was_recorded(name: str, tmp_path: Path) -> None:
    from scaler.sources import recording

    samples = ((100.0, 0.0), (101.0, 2.5), (102.0, 1e-05), (103.0, 12.345678901234567))
    record(CannedSource(samples), "load", 100, 103, 1, tmp_path / name)
    loaded = recording.load(tmp_path / name)
    assert list(zip(loaded.times.tolist(), loaded.values.tolist(), strict=True)) == list(samples)


def test_a_15s_recording_replays_as_the_load_held_not_a_fifteenth_of_it(
    prometheus: PrometheusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scaler record --step 15s` writes a row every 15 s; `scaler replay` detects the
    resolution, holds each row for its 15 s and says so — the load it replays is the
    recorded one, as at 1 s, where "a missing second is zero" made it a fifteenth."""
    from support.daemon import write_policy

    from scaler import cli

    policy = write_policy(tmp_path / "policies", "saw", "rec_load", target=5,
                          targetUtilizationPercentage=100)
    replays = {}
    for step in ("1s", "15s"):
        out = tmp_path / f"load-{step}.csv"
        assert cli.main(["record", str(out), "--prometheus-url", prometheus.url,
                         "--query", "rec_load", "--start", str(T0),
                         "--end", str(T0 + POINTS - 1), "--step", step]) == 0
        stamps = [int(line.split(",")[0]) for line in out.read_text().splitlines()[1:]]
        assert set(b - a for a, b in zip(stamps, stamps[1:])) == {int(step[:-1])}
        assert cli.main(["replay", str(out), "--policy", str(policy), "--no-chart",
                         "--out", str(tmp_path / f"replay-{step}")]) == 0
        replays[step] = json.loads((tmp_path / f"replay-{step}" / "summary.json").read_text())
        assert f"resolution          {step}, no second unknown" in capsys.readouterr().out
    coarse, fine = replays["15s"], replays["1s"]
    assert coarse["recording"]["resolution_seconds"] == 15.0
    assert coarse["recording"]["unknown_seconds"] == 0 == fine["recording"]["unknown_seconds"]
    assert coarse["ticks_without_data"] == 0
    # Each row counts for its 15 s: the rows of the sawtooth (0, 3.75, … 26.25 every two
    # minutes) average 13.125 against 14.875 for every second — not a fifteenth.
    per_second = coarse["demand_seconds"] / (coarse["duration_seconds"])
    assert per_second == pytest.approx(13.125, rel=0.01)
    assert fine["demand_seconds"] / fine["duration_seconds"] == pytest.approx(14.875, rel=0.01)
    assert coarse["mean_replicas"] == pytest.approx(fine["mean_replicas"], rel=0.15)


def test_nan_points_among_good_ones_are_left_out_and_replay_as_unknown(
    source: PrometheusSource, tmp_path: Path
) -> None:
    """rec_load × (rec_load / rec_load) is NaN where the sawtooth is 0 (every 120 s) and
    the load elsewhere: the file leaves those rows out, says so, and replay sees the
    seconds as unknown — not as a failed recording, and not as zero load."""
    from scaler.sources import recording
    from scaler.sources.recording.seconds import per_second

    out = tmp_path / "gappy.csv"
    done = record(source, "rec_load * (rec_load / rec_load)", T0, T0 + 240, 1, out)
    assert done.points == 241 - 3
    assert "NaN" in done.left_out and "3 of 241 points" in done.left_out
    rec = recording.load(out)
    assert per_second(rec.times, rec.values).unknown.tolist() == [T0 + 120]
    assert (rec.times[0], rec.times[-1]) == (T0 + 1, T0 + 239)


# -- the command: fails fast, shows progress, takes relative times ---------------------------


class Terminal:
    """A stderr that says it is a terminal, and keeps what was written."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_record_command_shows_a_progress_bar_on_a_terminal(
    prometheus: PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scaler.cli import main

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    out = tmp_path / "load.csv"
    assert main(["record", str(out), "--prometheus-url", prometheus.url, "--query", "rec_load",
                 "--start", str(T0), "--end", str(T0 + POINTS - 1)]) == 0
    assert len(out.read_text().splitlines()) == POINTS + 1
    # Two chunks: the bar stood at 50 % and at 100 % before it was cleared.
    assert "[###############...............]  50% recording" in terminal.text
    assert "100% recording" in terminal.text
    assert terminal.text.endswith("\r")


def test_record_command_takes_a_start_relative_to_now_as_a_separate_argument(
    prometheus: PrometheusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scaler.cli import main

    out = tmp_path / "load.csv"
    # "-5h" after --start is the option's value, not an option of its own.
    assert main(["record", str(out), "--prometheus-url", prometheus.url, "--query", "rec_load",
                 "--start", "-3h", "--end", "-2h", "--step", "60s"]) == 0
    rows = out.read_text().splitlines()[1:]
    assert 50 <= len(rows) <= 61
    assert "wrote" in capsys.readouterr().out


def test_record_command_says_at_once_that_prometheus_cannot_be_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scaler.app import RECORD_PROBE_SECONDS
    from scaler.cli import main

    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    assert main(["record", str(tmp_path / "load.csv"), "--prometheus-url", closed, "--query",
                 "rec_load", "--start", "-7d"]) == 2
    elapsed = time.monotonic() - started
    # Within the probe's few seconds, not the ten minutes a week of history may take.
    assert elapsed < RECORD_PROBE_SECONDS + 10
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot record from {closed}: unreachable:")
    assert "Connection refused" in err and "port-forward" in err
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
