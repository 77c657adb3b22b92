"""Under concurrent load from a real load generator (Debian's ``hey``): exact in-flight
counts, least-in-flight balancing, and a burst held at zero that is released whole."""

from __future__ import annotations

import time

import pytest

from support.activator import ActivatorThread, route
from support.backends import Backend
from support.load import hey, parse


def test_in_flight_is_exact_under_concurrency_and_integrates_to_the_latencies():
    with Backend("gated") as backend, \
            ActivatorThread([route("app")], {"app": [backend.address]}) as a:
        backend.close_gate()
        before = a.route_stats()
        load = hey(f"http://127.0.0.1:{a.port}/gate", n=100, c=50, background=True)
        a.wait_for(lambda: backend.gate_in_flight == 50, 20, "50 requests at the backend")
        for _ in range(5):                            # steady: the count is exact, not about
            stats = a.route_stats()
            assert (stats["in_flight"], stats["pending"]) == (50, 0)
            assert backend.gate_in_flight == 50
            time.sleep(0.1)
        backend.open_gate()
        out, _ = load.communicate(timeout=60)
        rows = parse(out)
        after = a.route_stats()
        assert [status for _, status in rows] == [200] * 100
        assert after["in_flight"] == 0
        assert after["requests"] - before["requests"] == 100
        assert a.sample("scaler_activator_requests_total", policy="app",
                        outcome="proxied") == 100
        # ∫ in_flight dt is the sum of every request's time in the activator; hey's own
        # response times add a little network and client time on top.
        integral = after["in_flight_seconds"] - before["in_flight_seconds"]
        measured = sum(seconds for seconds, _ in rows)
        assert measured * 0.9 <= integral <= measured * 1.01, (integral, measured)


def test_least_in_flight_sends_most_requests_to_the_faster_endpoint():
    with Backend("fast") as fast, Backend("slow", delay=0.05) as slow, \
            ActivatorThread([route("app")], {"app": [fast.address, slow.address]}) as a:
        rows = hey(f"http://127.0.0.1:{a.port}/id", n=400, c=8)
        assert [status for _, status in rows] == [200] * 400
        assert fast.hits + slow.hits == 400
        assert fast.hits > 3 * slow.hits, (fast.hits, slow.hits)
        assert slow.hits > 0                   # busy, not excluded


def test_equal_endpoints_one_request_at_a_time_alternate_exactly():
    with Backend("one") as one, Backend("two") as two, \
            ActivatorThread([route("app")], {"app": [one.address, two.address]}) as a:
        rows = hey(f"http://127.0.0.1:{a.port}/id", n=100, c=1)
        assert len(rows) == 100
        assert (one.hits, two.hits) == (50, 50)


@pytest.mark.parametrize("burst", [300])
def test_a_burst_at_zero_is_held_whole_and_released_without_a_loss(burst):
    with Backend("late") as backend, ActivatorThread([route("app")], {"app": []}) as a:
        load = hey(f"http://127.0.0.1:{a.port}/id", n=burst, c=burst, background=True)
        a.wait_for(lambda: a.route_stats()["pending"] == burst, 20, f"{burst} held")
        assert a.route_stats()["in_flight"] == burst
        a.set_endpoints("app", [backend.address])
        out, _ = load.communicate(timeout=60)
        rows = parse(out)
        assert [status for _, status in rows] == [200] * burst
        stats = a.route_stats()
        assert (stats["in_flight"], stats["pending"]) == (0, 0)
        assert a.sample("scaler_activator_requests_total", policy="app",
                        outcome="held") == burst
        assert a.sample("scaler_activator_cold_start_seconds_count", policy="app") == burst
