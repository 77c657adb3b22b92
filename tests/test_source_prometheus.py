"""PrometheusSource against the real Prometheus, and against a scripted stdlib server for
what a real Prometheus will not produce (garbage bodies, 5xx, 429, slow answers, TLS)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.exporter import LoadExporter
from support.fakeprometheus import FakePrometheus, Reply, Seen, grid_answer, matrix
from support.prometheus import PrometheusServer, eventually, openmetrics

from scaler.clock import ManualClock
from scaler.sources import NO_DATA_REASONS, Reading
from scaler.sources.prometheus import (
    MAX_POINTS_PER_QUERY,
    Connection,
    PrometheusSource,
    chunk_ranges,
)
from scaler.sources.wire import format_labels, format_seconds

LOAD = "app_inflight_requests"

# 3.5 hours of recorded load at 1 s, backfilled: more than one query_range may return.
RECORDED_POINTS = 12_600
RECORDED_T0 = (math.floor(time.time()) // 60) * 60 - 4 * 3600
RECORDED = [(float(RECORDED_T0 + k), float(k % 97)) for k in range(RECORDED_POINTS)]


def _deadline(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


# ---------------------------------------------------------------------------------------
# Against the real Prometheus (one server for the module, scraping every second)


@pytest.fixture(scope="module")
def load_exporter() -> Iterator[LoadExporter]:
    # Set before Prometheus starts, so the first scrape already carries every series.
    with LoadExporter() as exporter:
        exporter.set(LOAD, 12.5)
        exporter.set("app_requests_by_pod", 3, labels={"pod": "a"})
        exporter.set("app_requests_by_pod", 4, labels={"pod": "b"})
        yield exporter


@pytest.fixture(scope="module")
def prometheus(load_exporter: LoadExporter) -> Iterator[PrometheusServer]:
    backfill = openmetrics({"rec_load": [({"job": "recorded"}, RECORDED)]})
    with PrometheusServer([load_exporter.target], backfill=backfill) as server:
        yield server


@pytest.fixture(scope="module")
def source(prometheus: PrometheusServer) -> Iterator[PrometheusSource]:
    with PrometheusSource(prometheus.url) as src:
        # The first sample can be newer than the last whole second: wait for one evaluated
        # second to hold it.
        eventually(lambda: _read_last(src, LOAD, 1)[2].ok)
        yield src


def _read_last(source: PrometheusSource, query: str, seconds: float) -> tuple[float, float,
                                                                                Reading]:
    end = time.time()
    return end - seconds, end, source.read(query, end - seconds, end, deadline=_deadline())


def test_reads_the_value_the_exporter_serves(
    source: PrometheusSource, load_exporter: LoadExporter
) -> None:
    _, _, reading = _read_last(source, LOAD, 2)
    assert reading.ok and reading.samples[-1][1] == 12.5
    load_exporter.set("app_changing", 1)
    eventually(lambda: _read_last(source, "app_changing", 1)[2].ok)
    load_exporter.set("app_changing", 20)
    eventually(lambda: _read_last(source, "app_changing", 1)[2].samples[-1][1] == 20)


def test_one_point_per_whole_second_of_the_range(source: PrometheusSource) -> None:
    def covered() -> tuple[float, float, Reading] | None:
        start, end, reading = _read_last(source, LOAD, 5.5)
        full = reading.ok and reading.samples[0][0] == math.ceil(start)
        return (start, end, reading) if full else None

    start, end, reading = eventually(covered)  # once the series is 6 s old
    assert [t for t, _ in reading.samples] == list(range(math.ceil(start), math.floor(end) + 1))
    assert {v for _, v in reading.samples} == {12.5}


def test_fetch_reports_the_series_labels_and_one_attempt(source: PrometheusSource) -> None:
    end = time.time()
    fetched = source.fetch(LOAD, end - 2, end, deadline=_deadline())
    assert fetched.reading.ok and fetched.attempts == 1
    assert fetched.labels["__name__"] == LOAD and fetched.labels["job"] == "load"


NO_DATA_CASES = [
    pytest.param('app_inflight_requests{pod="no-such-pod"}', "empty", ["no series"],
                 id="empty-selector"),
    pytest.param("app_requests_by_pod", "multiple_series", ['pod="a"', 'pod="b"', "sum("],
                 id="several-series-listed-by-labels"),
    pytest.param("0/0", "nan", ["NaN"], id="nan-zero-by-zero"),
    pytest.param(f"({LOAD} - {LOAD}) / 0", "nan", ["NaN"], id="nan-from-the-metric"),
    pytest.param(f"{LOAD} / 0", "inf", ["infinite"], id="plus-inf"),
    pytest.param(f"-{LOAD} / 0", "inf", ["infinite"], id="minus-inf"),
    pytest.param(f"-1 * {LOAD}", "negative", ["negative"], id="negative"),
    # The series exists only until `cut` (15 s ago): its newest point is too old.
    pytest.param("vector(1) unless on() (vector(time()) > {cut})", "stale", ["bound 10 s"],
                 id="stale-series-ended"),
    pytest.param(f"sum({LOAD}", "query_error", ["(400)", "parse error"], id="parse-error-400"),
    pytest.param(f"{LOAD}[1m]", "query_error", ["range vector"], id="range-vector-400"),
    pytest.param("app_requests_by_pod * on() app_requests_by_pod", "query_error",
                 ["(422)", "many-to-many"], id="execution-error-422"),
]


@pytest.mark.parametrize(("query", "reason", "needles"), NO_DATA_CASES)
def test_no_data_cases_from_real_prometheus(
    source: PrometheusSource, query: str, reason: str, needles: list[str]
) -> None:
    assert reason in NO_DATA_REASONS
    end = time.time()
    query = query.replace("{cut}", f"{end - 15:.0f}")
    fetched = source.fetch(query, end - 20, end, deadline=_deadline())
    assert fetched.reading.error == reason, fetched.reading
    assert fetched.reading.samples == () and fetched.labels == {}
    for needle in needles:
        assert needle in fetched.reading.detail
    assert fetched.attempts == 1  # none of these is worth a retry


def test_history_in_chunks_equals_one_query(source: PrometheusSource) -> None:
    def past_range_with_data() -> tuple[int, int] | None:
        end = math.floor(time.time()) - 1  # wholly in the past: both calls see the same data
        return (end - 7, end) if source.history(LOAD, end - 7, end - 7).ok else None

    start, end = eventually(past_range_with_data)
    chunked = source.fetch_history(LOAD, start, end, chunk_points=3)
    whole = source.fetch_history(LOAD, start, end)
    assert (chunked.attempts, whole.attempts) == (3, 1)  # 8 points: 3 + 3 + 2
    assert chunked.reading == whole.reading
    assert [t for t, _ in chunked.reading.samples] == list(range(start, end + 1))


def test_history_over_hours_of_recorded_load_in_default_chunks(
    source: PrometheusSource, prometheus: PrometheusServer
) -> None:
    start, end = RECORDED_T0, RECORDED_T0 + RECORDED_POINTS - 1
    # One request over this range is refused by Prometheus itself ...
    with pytest.raises(Exception, match="400"):
        prometheus.query_range("rec_load", start, end)
    # ... history() splits it (11,000 + 1,600 points) and joins the parts seamlessly.
    fetched = source.fetch_history("rec_load", start, end)
    assert fetched.attempts == 2
    assert fetched.reading.samples == tuple(RECORDED)


def test_history_on_a_sub_second_grid(source: PrometheusSource) -> None:
    end = math.floor(time.time()) - 1
    reading = source.history(LOAD, end - 2, end, step=0.5, chunk_points=2)
    assert [t for t, _ in reading.samples] == [end - 2 + 0.5 * k for k in range(5)]


def test_unreachable_within_deadline_then_back_after_restart(
    source: PrometheusSource, prometheus: PrometheusServer
) -> None:
    prometheus.kill()
    began = time.monotonic()
    end = time.time()
    fetched = source.fetch(LOAD, end - 2, end, deadline=began + 1.5)
    elapsed = time.monotonic() - began
    assert fetched.reading.error == "unreachable"
    assert "Connection refused" in fetched.reading.detail
    assert fetched.attempts >= 2 and elapsed < 1.5 + 0.5  # retried, and within the deadline

    prometheus.restart(wait_for_fresh_scrape=False)
    end = time.time()
    assert source.read(LOAD, end - 2, end, deadline=_deadline()).ok


# ---------------------------------------------------------------------------------------
# A scripted stdlib server (support/fakeprometheus.py), for answers a real Prometheus does
# not give on demand


def _fake_source(fake: FakePrometheus, **kwargs: Any) -> PrometheusSource:
    connection = kwargs.pop("connection", None) or Connection(fake.url)
    return PrometheusSource(connection, **kwargs)


def _read_now(source: PrometheusSource, deadline: float = 5.0) -> Any:
    end = time.time()
    return source.fetch("load", end - 3, end, deadline=_deadline(deadline))


def test_query_range_uses_the_callers_times_in_whole_seconds() -> None:
    with FakePrometheus() as fake, _fake_source(fake) as source:
        fetched = source.fetch("sum(load)", 1000.2, 1010.7, deadline=_deadline())
    assert fetched.reading.ok
    assert [t for t, _ in fetched.reading.samples] == [float(t) for t in range(1001, 1011)]
    (seen,) = fake.seen
    assert seen.path == "/api/v1/query_range"
    assert seen.params == {"query": "sum(load)", "start": "1001", "end": "1010", "step": "1"}


def test_a_single_second_is_one_point() -> None:
    with FakePrometheus() as fake, _fake_source(fake) as source:
        reading = source.read("load", 1005.0, 1005.0, deadline=_deadline())
    assert reading.samples == ((1005.0, 5.0),)
    assert fake.seen[0].params["start"] == fake.seen[0].params["end"] == "1005"


BAD_BODIES = [
    pytest.param("<html>proxy error</html>", "not JSON", id="html-page"),
    pytest.param({"status": "success"}, "no data.result", id="json-without-data"),
    pytest.param({"data": {"result": "x"}}, "not a list", id="result-not-a-list"),
    pytest.param(matrix(({}, [(1000, "lots")])), "not a number", id="value-not-a-number"),
    pytest.param({"data": {"result": [{"metric": {}, "values": [[1000]]}]}},
                 "not [timestamp", id="point-without-value"),
    pytest.param({"data": {"result": [{"values": []}]}}, "lacks 'metric'", id="series-no-labels"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_BODIES)
def test_garbage_bodies_are_bad_response_without_retry(body: Any, needle: str) -> None:
    with FakePrometheus([Reply(body=body)]) as fake, _fake_source(fake) as source:
        fetched = _read_now(source)
    assert fetched.reading.error == "bad_response"
    assert needle in fetched.reading.detail
    assert fetched.attempts == 1 and len(fake.seen) == 1


TRANSIENT = [
    pytest.param(Reply(status=500, body="boom"), id="500"),
    pytest.param(Reply(status=502, body="bad gateway"), id="502"),
    pytest.param(Reply(status=503, body={"status": "error", "error": "busy"}), id="503"),
    pytest.param(Reply(status=429, body="slow down", headers={"Retry-After": "0"}), id="429"),
    pytest.param(Reply(drop=True), id="connection-dropped"),
]


@pytest.mark.parametrize("first", TRANSIENT)
def test_transient_failure_then_success_is_retried_once(first: Reply) -> None:
    with FakePrometheus([first, Reply()]) as fake, _fake_source(fake) as source:
        fetched = _read_now(source)
    assert fetched.reading.ok, fetched.reading
    # Exactly two requests reached the server: the library's own retries are off.
    assert fetched.attempts == 2 and len(fake.seen) == 2


def test_persistent_5xx_gives_up_before_the_deadline() -> None:
    with FakePrometheus([Reply(status=503, body="overloaded")]) as fake, \
            _fake_source(fake) as source:
        began = time.monotonic()
        fetched = _read_now(source, deadline=1.0)
        elapsed = time.monotonic() - began
    assert fetched.reading.error == "http_error"
    assert "HTTP 503" in fetched.reading.detail and "deadline reached" in fetched.reading.detail
    assert fetched.attempts >= 2 and fetched.attempts == len(fake.seen)
    assert elapsed < 1.0 + 0.5


def test_backoff_is_bounded_by_the_deadline_on_a_manual_clock() -> None:
    clock = ManualClock(1000.0)
    with FakePrometheus([Reply(status=500, body="boom")]) as fake, \
            _fake_source(fake, clock=clock, backoff_initial=0.5, backoff_max=4) as source:
        fetched = source.fetch("load", 10, 12, deadline=1000.0 + 10)
    # Backoff sleeps advanced the manual clock; never past the deadline.
    assert fetched.reading.error == "http_error"
    assert 3 <= fetched.attempts == len(fake.seen)
    assert clock.monotonic() <= 1010.0


@pytest.mark.parametrize(("status", "body", "reason", "needle"), [
    pytest.param(400, {"status": "error", "errorType": "bad_data", "error": "parse error: x"},
                 "query_error", "parse error: x", id="400-prometheus-message"),
    pytest.param(422, {"status": "error", "errorType": "execution", "error": "too many samples"},
                 "query_error", "too many samples", id="422-prometheus-message"),
    pytest.param(401, "Unauthorized", "http_error", "HTTP 401", id="401"),
    pytest.param(403, "Forbidden", "http_error", "HTTP 403", id="403"),
    pytest.param(404, "404 page not found", "http_error", "HTTP 404", id="404-wrong-path"),
])
def test_client_errors_are_not_retried(status: int, body: Any, reason: str, needle: str) -> None:
    with FakePrometheus([Reply(status=status, body=body)]) as fake, \
            _fake_source(fake) as source:
        fetched = _read_now(source)
    assert fetched.reading.error == reason
    assert needle in fetched.reading.detail
    assert fetched.attempts == 1 and len(fake.seen) == 1


def test_retry_after_past_the_deadline_returns_at_once() -> None:
    with FakePrometheus([Reply(status=429, body="later", headers={"Retry-After": "30"})]) as fake, \
            _fake_source(fake) as source:
        began = time.monotonic()
        fetched = _read_now(source, deadline=2.0)
    assert fetched.reading.error == "http_error" and "HTTP 429" in fetched.reading.detail
    assert fetched.attempts == 1 and time.monotonic() - began < 1.0


def test_slow_answer_is_a_timeout_within_the_deadline() -> None:
    with FakePrometheus([Reply(delay=5.0)]) as fake, _fake_source(fake) as source:
        began = time.monotonic()
        fetched = _read_now(source, deadline=1.0)
        elapsed = time.monotonic() - began
    assert fetched.reading.error == "timeout"
    assert elapsed < 1.0 + 0.5


def test_shutdown_mid_retry_returns_promptly() -> None:
    shutdown = threading.Event()
    # Retry-After makes the backoff 20 s, so only the shutdown event can end it early.
    overloaded = Reply(status=503, body="overloaded", headers={"Retry-After": "20"})
    with FakePrometheus([overloaded]) as fake, \
            _fake_source(fake, shutdown=shutdown) as source:
        threading.Timer(0.3, shutdown.set).start()
        began = time.monotonic()
        fetched = _read_now(source, deadline=60.0)
        elapsed = time.monotonic() - began
    assert fetched.reading.error == "http_error"
    assert "shutting down" in fetched.reading.detail
    assert fetched.attempts == 1 and elapsed < 2.0


def test_deadline_already_passed_sends_nothing() -> None:
    with FakePrometheus() as fake, _fake_source(fake) as source:
        fetched = source.fetch("load", 10, 12, deadline=time.monotonic() - 1)
    assert fetched.reading.error == "timeout" and fetched.attempts == 0 and fake.seen == []


def test_end_before_start_is_a_programming_error() -> None:
    with FakePrometheus() as fake, _fake_source(fake) as source, \
            pytest.raises(ValueError, match="before start"):
        source.read("load", 12, 10, deadline=_deadline())


# -- connection options -------------------------------------------------------------------


def test_bearer_token_file_is_reread_when_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    with FakePrometheus() as fake, _fake_source(
        fake, connection=Connection(fake.url, bearer_token_file=str(token))
    ) as source:
        assert _read_now(source).reading.ok
        token.write_text("second-token\n")  # rewritten in place
        assert _read_now(source).reading.ok
        rotated = tmp_path / "token.new"
        rotated.write_text("third\n")
        os.replace(rotated, token)  # swapped, as kubelet swaps a projected token
        assert _read_now(source).reading.ok
        assert _read_now(source).reading.ok
    assert [s.headers["Authorization"] for s in fake.seen] == [
        "Bearer first", "Bearer second-token", "Bearer third", "Bearer third"]


def test_missing_token_file_is_unreachable_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-token"
    with FakePrometheus() as fake, _fake_source(
        fake, connection=Connection(fake.url, bearer_token_file=str(missing))
    ) as source:
        fetched = _read_now(source)
    assert fetched.reading.error == "unreachable"
    assert str(missing) in fetched.reading.detail and fake.seen == []


def test_basic_auth_and_extra_headers_are_sent() -> None:
    with FakePrometheus() as fake, _fake_source(fake, connection=Connection(
        fake.url, basic_auth=("scaler", "s3cret"), headers={"X-Scope-OrgID": "team-a"}
    )) as source:
        assert _read_now(source).reading.ok
    (seen,) = fake.seen
    assert seen.headers["Authorization"] == "Basic c2NhbGVyOnMzY3JldA=="
    assert seen.headers["X-Scope-OrgID"] == "team-a"


@pytest.mark.parametrize("kwargs", [
    pytest.param({"url": "127.0.0.1:9090"}, id="url-without-scheme"),
    pytest.param({"bearer_token_file": "/t", "basic_auth": ("a", "b")}, id="two-auth-methods"),
    pytest.param({"basic_auth": ("a", "b"), "headers": {"authorization": "x"}},
                 id="auth-header-and-basic-auth"),
    pytest.param({"ca_bundle": "/ca.pem", "insecure_skip_verify": True},
                 id="ca-bundle-and-no-verification"),
])
def test_contradictory_connection_options_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Connection(**{"url": "https://prometheus:9090", **kwargs})


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate (apt-get install openssl)"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize(("options", "error"), [
    pytest.param({}, "unreachable", id="verified-by-default-so-refused"),
    pytest.param({"ca_bundle": "CERT"}, None, id="trusted-with-ca-bundle"),
    pytest.param({"insecure_skip_verify": True}, None, id="explicit-opt-out"),
])
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification(
    self_signed: tuple[Path, Path], options: dict[str, Any], error: str | None
) -> None:
    cert, _ = self_signed
    options = {k: str(cert) if v == "CERT" else v for k, v in options.items()}
    with FakePrometheus(tls=self_signed) as fake, _fake_source(
        fake, connection=Connection(fake.url, **options)
    ) as source:
        fetched = _read_now(source)
    assert fetched.reading.error == error
    if error:
        assert "certificate" in fetched.reading.detail and fetched.attempts == 1


# -- history ------------------------------------------------------------------------------


def test_history_joins_chunks_without_duplicate_timestamps() -> None:
    def overlapping(seen: Seen) -> Reply:
        # Each answer also repeats the point before its range, as a sloppy proxy might.
        params = dict(seen.params, start=str(float(seen.params["start"]) - 1))
        return grid_answer(Seen(seen.path, params, seen.headers))

    with FakePrometheus(overlapping) as fake, _fake_source(fake) as source:
        fetched = source.fetch_history("load", 0, 100, chunk_points=7)
    assert [t for t, _ in fetched.reading.samples] == [float(t) for t in range(-1, 101)]
    assert fetched.attempts == len(fake.seen) == 15  # ceil(101 / 7)
    assert all(float(s.params["end"]) - float(s.params["start"]) <= 6 for s in fake.seen)


def test_history_sees_series_changing_labels_across_chunks() -> None:
    def by_chunk(seen: Seen) -> Reply:
        version = "v1" if float(seen.params["start"]) < 5 else "v2"
        return grid_answer(seen, labels={"__name__": "load", "version": version})

    with FakePrometheus(by_chunk) as fake, _fake_source(fake) as source:
        reading = source.history("load", 0, 9, chunk_points=5)
    assert reading.error == "multiple_series"
    assert 'version="v1"' in reading.detail and 'version="v2"' in reading.detail


def test_history_failure_names_the_chunk() -> None:
    replies = [Reply(), Reply(status=400, body={"status": "error", "error": "nope"}), Reply()]
    with FakePrometheus(replies) as fake, _fake_source(fake) as source:
        reading = source.history("load", 0, 9, chunk_points=4)
    assert reading.error == "query_error" and "chunk 2 of 3" in reading.detail


def test_shutdown_between_history_chunks_stops_the_rest() -> None:
    shutdown = threading.Event()

    def second_sets_shutdown(seen: Seen) -> Reply:
        if len(fake.seen) == 2:
            shutdown.set()
        return grid_answer(seen)

    with FakePrometheus(second_sets_shutdown) as fake, \
            _fake_source(fake, shutdown=shutdown) as source:
        fetched = source.fetch_history("load", 0, 99, chunk_points=10)
    assert "shutting down" in fetched.reading.detail and "chunk 3 of 10" in fetched.reading.detail
    assert fetched.attempts == len(fake.seen) == 2


@given(
    start=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    steps=st.floats(min_value=0, max_value=300, allow_nan=False),  # range length in steps
    step=st.sampled_from([0.001, 0.25, 0.5, 1.0, 2.0, 15.0, 60.0]),
    max_points=st.integers(min_value=1, max_value=40),
)
def test_chunks_cover_the_grid_exactly_once(
    start: float, steps: float, step: float, max_points: int
) -> None:
    end = start + steps * step
    # The grid in integer milliseconds (Prometheus's resolution), computed the slow way.
    step_ms, start_ms, end_ms = round(step * 1000), round(start * 1000), round(end * 1000)
    first = next(k for k in range(start_ms // step_ms, start_ms // step_ms + 2)
                 if k * step_ms >= start_ms)
    grid = list(range(first * step_ms, end_ms + 1, step_ms))

    chunks = chunk_ranges(start, end, step, max_points)
    covered = [ms for a, b in chunks for ms in range(round(a * 1000), round(b * 1000) + 1,
                                                     step_ms)]
    assert covered == grid
    assert all(round((b - a) * 1000) // step_ms < max_points for a, b in chunks)


def test_chunks_of_the_default_size_for_a_day_at_one_second() -> None:
    chunks = chunk_ranges(0, 86_400, 1.0, MAX_POINTS_PER_QUERY)
    assert len(chunks) == math.ceil(86_401 / MAX_POINTS_PER_QUERY)
    assert chunks[0] == (0, MAX_POINTS_PER_QUERY - 1) and chunks[-1][1] == 86_400


# --------------------------------------------------------------------------------------
# Times and series as Prometheus writes them (scaler.sources.wire)


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(1772409600.0, "1772409600", id="whole"),
    pytest.param(0.5, "0.5", id="half"),
    pytest.param(1772409600.25, "1772409600.25", id="fraction"),
    pytest.param(1.0004, "1", id="below-a-millisecond"),
    pytest.param(2.0, "2", id="step"),
])
def test_seconds_are_written_to_the_millisecond(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_labels_are_written_as_prometheus_prints_a_series() -> None:
    assert format_labels({"__name__": "up", "job": "a", "instance": "b"}) == (
        'up{instance="b", job="a"}')
    assert format_labels({"pod": "a"}) == '{pod="a"}'
