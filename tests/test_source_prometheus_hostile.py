"""Prometheus answers that are hostile or broken, servers that throttle or redirect, and
credentials in the URL: every case a Reading with a named reason, never an exception,
never a secret in an error, never a credential sent to another host.

Served over real HTTP on 127.0.0.1 (support/fakeprometheus.py), and hypothesis throws
arbitrary bytes at the whole path (HTTP, JSON, checks) and arbitrary JSON at the check.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fakeprometheus import FakePrometheus, Reply, Seen, grid_answer, matrix

from scaler.clock import ManualClock
from scaler.sources import NO_DATA_REASONS
from scaler.sources.prometheus import (
    MAX_LOAD,
    Connection,
    PrometheusSource,
    answer_reading,
    redirect_problem,
    split_userinfo,
)

NOW = 1_772_409_600.0


def read(source: PrometheusSource, start: float = NOW - 3, end: float = NOW,
         deadline: float = 3.0):
    return source.fetch("sum(load)", start, end, deadline=time.monotonic() + deadline)


def answer_with(points: list[tuple[Any, str]]) -> Reply:
    return Reply(body=matrix(({"__name__": "load"}, points)))


# ------------------------------------------------------------------ hostile answers

HOSTILE = [
    pytest.param(Reply(body="[" * 100_000), "bad_response", "nested too deeply",
                 id="100000-brackets"),
    pytest.param(Reply(body='{"status":"success","data":{"resultType":"matrix","result":'
                       + "[" * 5000 + "]" * 5000 + "}}"),
                 "bad_response", "nested too deeply", id="deep-result"),
    pytest.param(Reply(body='{"data":{"result":[{"metric":{},"values":[[' + "1" * 5000
                       + ',"1"]]}]}}'), "bad_response", "Python can read",
                 id="5000-digit-timestamp"),
    pytest.param(Reply(body=b"\xff\xfe\x00garbage"), "bad_response", "not JSON",
                 id="not-utf8"),
    pytest.param(answer_with([(NOW - 1, "1e303")]), "too_large", "1e+303", id="value-1e303"),
    pytest.param(answer_with([(NOW - 1, "9.1e15")]), "too_large", "beyond any load",
                 id="value-above-2**53"),
    pytest.param(answer_with([(NOW - 1, "1e400")]), "inf", "infinite", id="value-1e400"),
    pytest.param(answer_with([(NOW - 2, "5"), (NOW + 3600, "100")]), "bad_response",
                 "3,600 s after the range", id="point-an-hour-ahead"),
    pytest.param(answer_with([(NOW - 600, "5")]), "bad_response", "before the range",
                 id="point-before-the-range"),
    pytest.param(Reply(body='{"data":{"result":[{"metric":{},"values":[[NaN,"1"]]}]}}'),
                 "bad_response", "not a finite time", id="nan-timestamp"),
    pytest.param(Reply(body='{"data":{"result":[{"metric":{"a":[[[1]]]},"values":[]}]}}'),
                 "empty", "without points", id="label-not-a-string"),
]


@pytest.mark.parametrize(("reply", "reason", "needle"), HOSTILE)
def test_hostile_answer_is_a_named_reason(reply: Reply, reason: str, needle: str) -> None:
    with FakePrometheus([reply]) as fake, PrometheusSource(fake.url) as source:
        fetched = read(source)
    assert fetched.reading.error == reason, fetched.reading
    assert needle in fetched.reading.detail
    assert len(fetched.reading.detail) < 400
    assert fetched.attempts == 1     # bad data is not retried


def test_a_load_just_below_the_bound_is_data() -> None:
    with FakePrometheus([answer_with([(NOW, repr(MAX_LOAD))])]) as fake, \
            PrometheusSource(fake.url) as source:
        assert read(source).reading.samples == ((NOW, MAX_LOAD),)


# ------------------------------------------------------------------ fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
POINTS = st.lists(st.tuples(st.floats(NOW - 5, NOW + 5) | st.integers() | JSON,
                            st.sampled_from(["1", "1e303", "NaN", "-1", "+Inf", "x", ""])
                            | st.text(max_size=8) | JSON), max_size=5)
RESULTS = st.one_of(
    JSON,
    st.lists(st.fixed_dictionaries({"metric": st.dictionaries(st.text(max_size=5), JSON,
                                                              max_size=3) | JSON,
                                     "values": POINTS.map(lambda ps: [list(p) for p in ps])
                                     | JSON}), max_size=3))


@settings(max_examples=500, deadline=None)
@given(RESULTS)
def test_any_decoded_answer_is_a_reading(result: object) -> None:
    reading = answer_reading(result, "sum(load)", NOW - 5, NOW + 5)
    if reading.ok:
        assert all(NOW - 5 <= t <= NOW + 5 and 0 <= v <= MAX_LOAD for t, v in reading.samples)
    else:
        assert reading.error in NO_DATA_REASONS and not reading.samples
        assert "\n" not in reading.detail


def test_a_label_with_a_newline_stays_on_one_line():
    # Found by the property above: two series, one with a label named "\n".
    reading = answer_reading([{"metric": {}, "values": []},
                              {"metric": {"\n": None, "a": 'x"\ny'}, "values": []}],
                             "sum(load)", NOW - 5, NOW + 5)
    assert reading.error == "multiple_series"
    assert "\n" not in reading.detail and '\\n="None"' in reading.detail


@pytest.fixture(scope="module")
def scripted() -> Any:
    """One server for all examples; each example sets the bytes it answers with."""
    state: dict[str, Any] = {"body": b""}
    with FakePrometheus(lambda seen: Reply(body=state["body"])) as fake, \
            PrometheusSource(fake.url, backoff_initial=0.01, backoff_max=0.02) as source:
        yield state, source


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=200),
                 RESULTS.map(lambda r: json.dumps({"status": "success", "data": {
                     "resultType": "matrix", "result": r}}).encode()),
                 st.sampled_from([b"[" * 50_000, b'{"data":' * 3000, b"1" * 6000,
                                  b'{"data":{"result":NaN}}', b"\xef\xbb\xbf{}"])))
def test_any_bytes_over_http_are_a_reading(scripted: Any, body: bytes) -> None:
    state, source = scripted
    state["body"] = body
    fetched = read(source, NOW - 5, NOW + 5)
    assert fetched.reading.ok or fetched.reading.error in NO_DATA_REASONS


# ------------------------------------------------------------------ Retry-After

def test_retry_after_is_honoured_across_calls() -> None:
    """A 429 asking for 5 s: no request until they have passed, whatever the callers do."""
    clock = ManualClock(1000.0)
    replies = [Reply(status=429, body="slow down", headers={"Retry-After": "5"}), Reply()]
    with FakePrometheus(replies) as fake, PrometheusSource(fake.url, clock=clock) as source:
        first = source.fetch("load", NOW - 2, NOW, deadline=clock.monotonic() + 1)
        assert first.reading.error == "http_error" and "HTTP 429" in first.reading.detail
        waited = []
        for _ in range(9):                         # a call every half second for 4.5 s
            clock.advance(0.5)
            fetched = source.fetch("load", NOW - 2, NOW, deadline=clock.monotonic() + 1)
            waited.append((fetched.attempts, fetched.reading.error))
            assert "Retry-After" in fetched.reading.detail and "left" in fetched.reading.detail
        assert waited == [(0, "http_error")] * 9
        assert len(fake.seen) == 1
        clock.advance(0.6)                         # 5.1 s after the 429
        assert source.fetch("load", NOW - 2, NOW, deadline=clock.monotonic() + 1).reading.ok
        assert len(fake.seen) == 2


def test_retry_after_on_503_within_the_deadline_is_waited_out_once() -> None:
    clock = ManualClock(1000.0)
    replies = [Reply(status=503, body="busy", headers={"Retry-After": "2"}), Reply()]
    with FakePrometheus(replies) as fake, PrometheusSource(fake.url, clock=clock) as source:
        fetched = source.fetch("load", NOW - 2, NOW, deadline=clock.monotonic() + 5)
    assert fetched.reading.ok and fetched.attempts == 2 == len(fake.seen)
    assert clock.monotonic() >= 1002.0


def test_an_absurd_retry_after_is_capped() -> None:
    clock = ManualClock(1000.0)
    replies = [Reply(status=429, body="later", headers={"Retry-After": "86400"}), Reply()]
    with FakePrometheus(replies) as fake, PrometheusSource(fake.url, clock=clock) as source:
        source.fetch("load", NOW - 2, NOW, deadline=clock.monotonic() + 1)
        clock.advance(121)
        assert source.fetch("load", NOW - 2, NOW, deadline=clock.monotonic() + 1).reading.ok
    assert len(fake.seen) == 2


# ------------------------------------------------------------------ redirects

SECRET_HEADER = {"X-Scope-OrgID": "tenant-secret"}


def redirect_to(location: str) -> Reply:
    return Reply(status=302, body="", headers={"Location": location})


def test_a_redirect_to_another_host_is_not_followed() -> None:
    """127.0.0.1 redirects to localhost: another host name, so nothing is sent there."""
    with FakePrometheus() as other:
        target = f"http://localhost:{other.server.server_port}/api/v1/query_range"
        with FakePrometheus([redirect_to(target)]) as fake, PrometheusSource(Connection(
                fake.url, headers=SECRET_HEADER, basic_auth=("scaler", "pw"))) as source:
            fetched = read(source)
    assert fetched.reading.error == "http_error"
    assert "redirect to another host" in fetched.reading.detail
    assert "not followed" in fetched.reading.detail and target in fetched.reading.detail
    assert other.seen == [] and len(fake.seen) == 1
    assert fake.seen[0].headers["X-Scope-OrgID"] == "tenant-secret"


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
        check=True, capture_output=True)
    return cert, key


def test_a_redirect_from_https_to_http_is_not_followed(self_signed: tuple[Path, Path]) -> None:
    cert, _ = self_signed
    with FakePrometheus() as plain:
        target = f"http://127.0.0.1:{plain.server.server_port}/api/v1/query_range"
        with FakePrometheus([redirect_to(target)], tls=self_signed) as fake, \
                PrometheusSource(Connection(fake.url, headers=SECRET_HEADER,
                                            ca_bundle=str(cert))) as source:
            fetched = read(source)
    assert fetched.reading.error == "http_error"
    assert "from https to plain http" in fetched.reading.detail
    assert plain.seen == []


def test_a_redirect_within_the_same_server_is_followed() -> None:
    def script(seen: Seen) -> Reply:
        if seen.path == "/api/v1/query_range":
            return redirect_to("/prometheus/api/v1/query_range?" + "&".join(
                f"{k}={v}" for k, v in seen.params.items()))
        return grid_answer(seen)

    with FakePrometheus(script) as fake, PrometheusSource(Connection(
            fake.url, headers=SECRET_HEADER)) as source:
        fetched = read(source)
    assert fetched.reading.ok
    assert [s.path for s in fake.seen] == ["/api/v1/query_range",
                                           "/prometheus/api/v1/query_range"]
    assert all(s.headers["X-Scope-OrgID"] == "tenant-secret" for s in fake.seen)


@pytest.mark.parametrize(("source", "target", "problem"), [
    ("http://a:9090/x", "http://a:9090/y", None),
    ("http://A:9090/x", "http://a:9090/y", None),
    ("http://a/x", "https://a/x", None),
    ("http://a:9090/x", "https://a:9090/x", None),
    ("https://a/x", "http://a/x", "from https to plain http"),
    ("http://a:9090/x", "http://b:9090/x", "to another host"),
    ("http://a:9090/x", "http://a:9091/x", "to another port"),
    ("http://127.0.0.1:9090/x", "http://localhost:9090/x", "to another host"),
])
def test_which_redirects_stay_with_the_server(source: str, target: str,
                                              problem: str | None) -> None:
    assert redirect_problem(source, target) == problem


# ------------------------------------------------------------------ credentials in the URL

def test_a_password_in_the_url_becomes_basic_auth_and_is_never_shown() -> None:
    with FakePrometheus([Reply(status=500, body="boom")]) as fake:
        url = fake.url.replace("http://", "http://scaler:p%40ss%3Aword@")
        connection = Connection(url)
        with PrometheusSource(connection, backoff_initial=0.01, backoff_max=0.02) as source:
            fetched = read(source, deadline=0.3)
    assert connection.url == fake.url
    assert connection.basic_auth == ("scaler", "p@ss:word")
    expected = "Basic " + base64.b64encode(b"scaler:p@ss:word").decode()
    assert {s.headers["Authorization"] for s in fake.seen} == {expected}
    assert fetched.reading.error == "http_error"
    assert fake.url in fetched.reading.detail
    assert "p%40ss" not in fetched.reading.detail and "p@ss" not in fetched.reading.detail


def test_credentials_in_the_url_and_in_basic_auth_conflict() -> None:
    with pytest.raises(ValueError, match="keep one"):
        Connection("http://a:b@prometheus:9090", basic_auth=("c", "d"))
    with pytest.raises(ValueError, match="not both"):
        Connection("http://a:b@prometheus:9090", bearer_token_file="/token")


@pytest.mark.parametrize(("url", "clean", "userinfo"), [
    ("http://prometheus:9090", "http://prometheus:9090", None),
    ("https://u:p@prometheus:9090/prefix?x=1", "https://prometheus:9090/prefix?x=1",
     ("u", "p")),
    ("http://only-user@prometheus", "http://prometheus", ("only-user", "")),
    ("http://u:a%2Fb@[::1]:9090", "http://[::1]:9090", ("u", "a/b")),
])
def test_split_userinfo(url: str, clean: str, userinfo: tuple[str, str] | None) -> None:
    assert split_userinfo(url) == (clean, userinfo)


def test_record_with_a_password_in_the_url_never_prints_it(tmp_path: Path, capsys) -> None:
    from scaler import cli

    with FakePrometheus([Reply(status=403, body="Forbidden")]) as fake:
        url = fake.url.replace("http://", "http://scaler:hunter2@")
        code = cli.main(["record", str(tmp_path / "out.csv"), "--prometheus-url", url,
                         "--query", "up", "--start", "now-1m"])
    err = capsys.readouterr().err
    assert code == 2 and f"HTTP 403 from {fake.url}" in err
    assert "hunter2" not in err
