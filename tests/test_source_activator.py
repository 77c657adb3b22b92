"""The activators as the daemon's metric source: exact averages between reads spread over
1 s buckets and summed over activators, restarts detected by the activator id, failed reads
that are no data (never zero), and the reader against real activators."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from scaler.clock import ManualClock, SystemClock
from scaler.sources.activator import ActivatorSource, StatsSeries, parse_query, query_for
from support.activator import ActivatorThread, route


def stats(ident: str, uptime: float, in_flight_seconds: float, requests: int = 0,
          policy: str = "app", port: int = 8080) -> dict:
    return {"activator": ident, "uptime": uptime, "proxy_port": port,
            "routes": {policy: {"in_flight_seconds": in_flight_seconds,
                                "requests": requests}}}


def values(series: StatsSeries, first: int, last: int, kind="concurrency") -> dict:
    return {s: series.value("app", kind, s) for s in range(first, last + 1)}


def test_a_steady_concurrency_reads_exactly_in_every_known_second():
    series = StatsSeries()
    series.set_targets(["a"], 100.0)
    for k in range(6):                       # reads at 100.05, 101.05, ...: 3 in flight
        series.observe("a", 100.05 + k, stats("x", 500.0 + k, 3.0 * k, requests=10 * k))
    got = values(series, 100, 106)
    # The first read is a baseline, the bucket it cuts is left out; 106 is not read yet.
    assert got[100] == got[101] == "none"
    assert [round(got[s], 9) for s in range(102, 106)] == [3.0] * 4
    assert got[106] == "pending"
    assert round(series.value("app", "rps", 104), 9) == 10.0


def test_an_interval_is_spread_over_the_seconds_it_covers():
    series = StatsSeries()
    series.set_targets(["a"], 0.0)
    series.observe("a", 10.5, stats("x", 100.0, 0.0))
    series.observe("a", 11.5, stats("x", 101.0, 2.0))     # 2 in flight over (10.5, 11.5]
    series.observe("a", 12.5, stats("x", 102.0, 2.0))     # then none over (11.5, 12.5]
    assert series.value("app", "concurrency", 12) == pytest.approx(1.0)  # half and half


def test_a_failed_read_is_pending_then_the_next_one_covers_the_gap_exactly():
    series = StatsSeries()
    series.set_targets(["a"], 0.0)
    series.observe("a", 10.05, stats("x", 100.0, 0.0))
    series.observe("a", 11.05, stats("x", 101.0, 4.0))
    series.failed("a", "unreachable: refused")
    assert series.value("app", "concurrency", 12) == "pending"      # never zero
    series.observe("a", 13.05, stats("x", 103.0, 4.0 + 2 * 6.0))    # 6 in flight since
    assert series.value("app", "concurrency", 12) == pytest.approx(6.0 * 0.95 + 4.0 * 0.05)
    assert series.value("app", "concurrency", 13) == pytest.approx(6.0)


def test_a_restart_loses_only_the_seconds_between_the_old_and_the_new_process():
    series = StatsSeries()
    series.set_targets(["a"], 0.0)
    series.observe("a", 10.05, stats("old", 100.0, 0.0))
    series.observe("a", 11.05, stats("old", 101.0, 1.0))
    series.observe("a", 12.05, stats("old", 102.0, 2.0))
    # The process died after 12.05 and a new one started at 13.55 (uptime 0.5 at 14.05).
    series.observe("a", 14.05, stats("new", 0.5, 1.0))
    series.observe("a", 15.05, stats("new", 1.5, 3.0))
    got = values(series, 12, 15)
    assert got[12] == pytest.approx(1.0)
    assert got[13] == got[14] == "lost"                  # (12.05, 13.55] is unknown
    assert got[15] == pytest.approx(2.0)                 # the new counts are exact


def test_two_activators_are_summed_and_one_lagging_holds_the_second():
    series = StatsSeries()
    series.set_targets(["a", "b"], 0.0)
    for k in range(4):
        series.observe("a", 20.05 + k, stats("x", 100.0 + k, 2.0 * k))
    for k in range(3):
        series.observe("b", 20.06 + k, stats("y", 50.0 + k, 5.0 * k))
    assert series.value("app", "concurrency", 22) == pytest.approx(7.0, abs=1e-6)
    assert series.value("app", "concurrency", 23) == "pending"       # b not read that far


def test_an_activator_that_leaves_discovery_stops_counting_after_its_last_read():
    series = StatsSeries()
    series.set_targets(["a", "b"], 0.0)
    for k in range(3):
        series.observe("a", 20.05 + k, stats("x", 100.0 + k, 2.0 * k))
        series.observe("b", 20.05 + k, stats("y", 100.0 + k, 1.0 * k))
    series.set_targets(["a"], 23.0)                  # b was removed from the Service
    series.observe("a", 23.05, stats("x", 103.0, 6.0))
    assert series.value("app", "concurrency", 22) == pytest.approx(3.0)
    assert series.value("app", "concurrency", 23) == pytest.approx(2.0)


def test_one_address_answered_by_two_activators_is_an_error_not_a_number():
    series = StatsSeries()
    series.set_targets(["svc"], 0.0)
    series.observe("svc", 10.0, stats("x", 100.0, 0.0))
    series.observe("svc", 11.0, stats("y", 300.0, 0.0))      # another, older process
    assert "more than one activator" in series.targets["svc"].error


def test_queries_name_a_kind_and_a_policy():
    assert parse_query(query_for("checkout", "rps")) == ("rps", "checkout")
    with pytest.raises(ValueError):
        parse_query("sum(x)")


def test_urls_must_be_http_admin_addresses():
    with pytest.raises(ValueError, match="admin port"):
        ActivatorSource(["127.0.0.1:9090"])


# ----------------------------------------------------------------------------------------
# the reader against real activators


def hold(activator) -> None:
    """A request that waits at zero until the activator stops (then it is cut, as meant)."""
    try:
        activator.get("/", timeout=30)
    except OSError:
        pass


def test_reads_of_two_real_activators_sum_their_held_requests():
    """Three requests held at zero on one activator and two on the other: each second the
    source reads 5 in flight, exactly, and says where each activator takes traffic."""
    routes = [route("app", timeout=30.0), route("other", hosts=["other.test"])]
    with ActivatorThread(routes) as a, ActivatorThread(routes) as b:
        holders = []
        for activator, n in ((a, 3), (b, 2)):
            for _ in range(n):
                t = threading.Thread(target=hold, args=(activator,), daemon=True)
                t.start()
                holders.append(t)
        a.wait_for(lambda: a.route_stats()["pending"] == 3, what="3 held on a")
        b.wait_for(lambda: b.route_stats()["pending"] == 2, what="2 held on b")
        source = ActivatorSource([f"http://127.0.0.1:{a.admin_port}",
                                  f"http://127.0.0.1:{b.admin_port}"]).start()
        try:
            clock = SystemClock()
            end = int(clock.now()) + 3           # the first read is a baseline
            time.sleep(end + 0.2 - clock.now())
            reading = source.read(query_for("app"), end - 1, end,
                                  deadline=clock.monotonic() + 1)
            assert reading.ok, reading.detail
            assert [t for t, _v in reading.samples] == [end - 1, end]
            assert [v for _t, v in reading.samples] == pytest.approx([5.0, 5.0], abs=1e-4)
            assert source.read(query_for("other"), end, end,
                               deadline=clock.monotonic() + 1).samples == ((end, 0.0),)
            assert source.proxies() == sorted([("127.0.0.1", a.port), ("127.0.0.1", b.port)])
            missing = source.read(query_for("nope"), end, end, deadline=clock.monotonic())
            assert (missing.error, "no activator routes policy 'nope'" in missing.detail) \
                == ("empty", True)
        finally:
            source.close()
            a.set_endpoints("app", [])


def test_an_unreachable_activator_is_no_data_within_the_deadline():
    clock = ManualClock(1000.0)
    closed = socket.socket()                     # bound, not listening: refuses
    closed.bind(("127.0.0.1", 0))
    source = ActivatorSource([f"http://127.0.0.1:{closed.getsockname()[1]}"], clock=clock)
    source.read_round()
    closed.close()
    reading = source.read(query_for("app"), 999, 1000, deadline=clock.monotonic())
    assert reading.error == "unreachable" and "refused" in reading.detail.lower()
    assert source.history(query_for("app"), 900, 1000).error == "unreachable"
    source.close()


def test_no_activator_at_all_is_no_data():
    source = ActivatorSource([], discover=lambda: [], clock=ManualClock(10.0))
    source._discover()
    source.read_round()
    reading = source.read(query_for("app"), 9, 10, deadline=0.0)
    assert reading.error == "empty" and "none discovered" in reading.detail
