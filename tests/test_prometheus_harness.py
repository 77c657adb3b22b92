"""The test harness itself: a real Prometheus scraping a LoadExporter the test controls.

One server for the module (first sample ~6 s after start); the outage test restarts it and
leaves it running.
"""

from __future__ import annotations

import math
import socket
import time
import urllib.error
import urllib.request

import pytest
from support.exporter import LoadExporter, steps
from support.prometheus import INSTALL_HINT, PrometheusNotInstalled, PrometheusServer, eventually


def _value(server: PrometheusServer, promql: str) -> float | None:
    result = server.query(promql)
    return float(result[0]["value"][1]) if result else None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_up_cost_is_recorded_and_bounded(prometheus: PrometheusServer) -> None:
    # Ready is near-instant; the first sample waits for the scrape manager's 5 s tick.
    assert prometheus.ready_after is not None and prometheus.first_sample_after is not None
    assert prometheus.ready_after < prometheus.first_sample_after < 20
    print(f"ready after {prometheus.ready_after:.2f} s, "
          f"first sample after {prometheus.first_sample_after:.2f} s")


def test_gauge_value_set_by_the_test_comes_back(
    prometheus: PrometheusServer, load_exporter: LoadExporter
) -> None:
    load_exporter.set("app_inflight_requests", 12.5)
    eventually(lambda: _value(prometheus, "app_inflight_requests") == 12.5)
    load_exporter.set("app_inflight_requests", 3)
    assert eventually(lambda: _value(prometheus, "app_inflight_requests") == 3)


def test_labelled_series_and_counters(
    prometheus: PrometheusServer, load_exporter: LoadExporter
) -> None:
    load_exporter.set("app_requests_by_pod", 1, labels={"pod": "a"})
    load_exporter.set("app_requests_by_pod", 2, labels={"pod": "b"})
    load_exporter.inc("app_requests", 7)
    eventually(lambda: len(prometheus.query("app_requests_by_pod")) == 2)
    assert eventually(lambda: _value(prometheus, "app_requests_total") == 7)
    with pytest.raises(ValueError, match="labels"):
        load_exporter.set("app_requests_by_pod", 1, labels={"zone": "x"})


def test_removed_series_goes_stale(
    prometheus: PrometheusServer, load_exporter: LoadExporter
) -> None:
    load_exporter.set("app_leaving", 1)
    eventually(lambda: _value(prometheus, "app_leaving") == 1)
    load_exporter.remove("app_leaving")
    # A staleness marker ends the series at the next scrape, not after 5 min of lookback.
    assert eventually(lambda: not prometheus.query("app_leaving"), timeout=5)


def test_playback_is_evaluated_at_scrape_time(
    prometheus: PrometheusServer, load_exporter: LoadExporter
) -> None:
    started = time.time()
    load_exporter.play("app_clock", lambda t: t)
    # value = seconds since play(); at the sample's own timestamp that is ts - started.
    eventually(lambda: prometheus.query("app_clock"))
    skew = _value(prometheus, f"app_clock - (timestamp(app_clock) - {started:f})")
    assert skew is not None and abs(skew) < 0.25


def test_playback_follows_a_step_schedule_with_gaps(
    prometheus: PrometheusServer, load_exporter: LoadExporter
) -> None:
    load_exporter.play("app_replayed", steps([(0, 5.0), (1.5, 7.0), (3, None)]))
    began = time.time()
    eventually(lambda: _value(prometheus, "app_replayed") == 7.0)
    assert eventually(lambda: not prometheus.query("app_replayed"), timeout=10)
    end = time.time()
    values = [float(v) for _, v in prometheus.query_range("app_replayed", began, end)[0]["values"]]
    # 5 first, then 7, never anything else, and the series ends (no carried value).
    assert set(values) <= {5.0, 7.0} and values[-1] == 7.0
    assert len(values) < math.ceil(end - began)


def test_outage_kill_then_restart_on_same_port_with_data(
    prometheus: PrometheusServer, load_exporter: LoadExporter
) -> None:
    load_exporter.set("app_before_outage", 42)
    eventually(lambda: _value(prometheus, "app_before_outage") == 42)
    before = time.time()
    port, pid = prometheus.port, prometheus.pid

    prometheus.kill()
    assert not _port_open(port)
    assert not prometheus.is_ready()

    prometheus.restart()
    assert prometheus.port == port and prometheus.pid != pid
    # The WAL survived SIGKILL: the pre-outage sample is still there ...
    assert float(prometheus.query("app_before_outage", at=before)[0]["value"][1]) == 42
    # ... and restart() returned only after a fresh scrape.
    assert prometheus.query(f"timestamp(up) > {before:.3f}")


def test_stop_is_by_pid_and_frees_the_port() -> None:
    server = PrometheusServer(admin_api=True).start()
    try:
        pid, port = server.pid, server.port
        assert _port_open(port)
        snapshot = urllib.request.Request(
            f"{server.url}/api/v1/admin/tsdb/snapshot", method="POST"
        )
        with urllib.request.urlopen(snapshot, timeout=5) as response:
            assert response.status == 200  # --web.enable-admin-api took effect
    finally:
        server.close()
    assert not _port_open(port)
    with pytest.raises(RuntimeError):
        server.pid  # noqa: B018 - the property raises once the process is gone
    assert pid > 0


def test_admin_api_is_off_by_default(prometheus: PrometheusServer) -> None:
    snapshot = urllib.request.Request(f"{prometheus.url}/api/v1/admin/tsdb/snapshot",
                                      method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(snapshot, timeout=5)
    # Prometheus 2.42 answers 500 "unavailable" rather than 403 here.
    assert b"admin APIs disabled" in raised.value.read()


def test_missing_binary_fails_with_the_install_command() -> None:
    with pytest.raises(PrometheusNotInstalled, match="apt-get install prometheus") as raised:
        PrometheusServer(binary="/nonexistent/prometheus").start()
    assert INSTALL_HINT in str(raised.value)
