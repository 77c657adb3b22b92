"""RouteState on synthetic time: least-in-flight choice, the hold queue, exact counting."""

from __future__ import annotations

import pytest

from scaler.activator.config import Route
from scaler.activator.endpoints import Endpoint
from scaler.activator.routing import (CANCELLED, HELD, HOLD, PROXIED, REJECT, TIMED_OUT,
                                      EndpointState, RouteState)

A, B, C = (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80), Endpoint("10.0.0.3", 80))


class Timers:
    """call_later on a manual clock: timers fire when the test advances time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pending: list[list] = []

    def clock(self) -> float:
        return self.now

    def call_later(self, delay, fn, *args):
        timer = [self.now + delay, fn, args, False]

        class Handle:
            def cancel(self_inner) -> None:
                timer[3] = True
        self.pending.append(timer)
        return Handle()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.pending if t[0] <= self.now and not t[3]]
        self.pending = [t for t in self.pending if t not in due]
        for _, fn, args, _ in sorted(due, key=lambda t: t[0]):
            fn(*args)


class Waiter:
    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log
        self.endpoint: EndpointState | None = None

    def forward(self, endpoint: EndpointState) -> None:
        self.endpoint = endpoint
        self.log.append(("forward", self.name, endpoint.endpoint))

    def hold_expired(self) -> None:
        self.log.append(("expired", self.name))


def make(max_pending: int = 3, timeout: float = 10.0, **hooks):
    timers = Timers()
    route = Route(policy="app", namespace="ns", service="app", port=80, hosts=("app.test",),
                  max_pending=max_pending, timeout=timeout)
    state = RouteState(route, call_later=timers.call_later, clock=timers.clock, **hooks)
    return state, timers


def test_least_in_flight_wins_and_ties_go_round_robin():
    state, _ = make()
    state.set_endpoints([A, B, C])
    picks = [state.pick().endpoint for _ in range(3)]
    assert sorted(picks) == [A, B, C]                 # each idle endpoint once
    by = {s.endpoint: s for s in state.ready}
    by[A].in_flight -= 1                              # A finished one: it is now the least
    assert state.pick().endpoint == A
    by[B].in_flight += 5                              # B is busy
    later = [state.pick().endpoint for _ in range(4)]
    assert B not in later[:3]                         # A and C, equal, alternate first
    assert later[:2] in ([A, C], [C, A])


def test_an_endpoint_that_stays_keeps_its_count_across_updates():
    state, _ = make()
    state.set_endpoints([A, B])
    state.pick()
    state.pick()
    busy = {s.endpoint: s.in_flight for s in state.ready}
    state.set_endpoints([A, B, C])
    assert {s.endpoint: s.in_flight for s in state.ready} == {**busy, C: 0}
    assert state.pick().endpoint == C


def test_requests_at_zero_are_held_then_released_in_arrival_order():
    released: list[float] = []
    state, timers = make(max_pending=5, on_released=lambda s, waited: released.append(waited))
    state.set_endpoints([])
    log: list = []
    waiters = [Waiter(f"r{i}", log) for i in range(4)]
    for w in waiters:
        state.arrive()
        assert state.admit(w) is HOLD
        timers.advance(0.5)
    assert state.pending == 4 and state.in_flight == 4
    state.set_endpoints([A, B])
    assert [entry[1] for entry in log] == ["r0", "r1", "r2", "r3"]
    assert released == [2.0, 1.5, 1.0, 0.5]
    assert state.pending == 0
    assert sorted(w.endpoint.endpoint for w in waiters) == [A, A, B, B]   # spread evenly
    timers.advance(60)                                # their timeouts were cancelled
    assert not any(entry[0] == "expired" for entry in log)


def test_the_queue_is_bounded_and_the_overflow_rejected():
    state, _ = make(max_pending=2)
    state.set_endpoints([])
    log: list = []
    assert [state.admit(Waiter(f"r{i}", log)) for i in range(3)] == [HOLD, HOLD, REJECT]


def test_max_pending_zero_rejects_at_once():
    state, _ = make(max_pending=0)
    state.set_endpoints([])
    assert state.admit(Waiter("r", [])) is REJECT


def test_a_held_request_expires_after_the_timeout():
    state, timers = make(timeout=10)
    state.set_endpoints([])
    log: list = []
    first, second = Waiter("first", log), Waiter("second", log)
    state.admit(first)
    timers.advance(4)
    state.admit(second)
    timers.advance(6)
    assert log == [("expired", "first")]
    assert state.pending == 1
    timers.advance(4)
    assert log == [("expired", "first"), ("expired", "second")]
    assert state.pending == 0


def test_a_request_arriving_while_others_are_held_queues_behind_them():
    """Endpoints are released synchronously, so a queue and ready endpoints never coexist;
    admit still refuses to overtake if they ever did."""
    state, _ = make()
    state.set_endpoints([])
    log: list = []
    state.admit(Waiter("old", log))
    state.ready = [EndpointState(A)]                  # as if endpoints came without a release
    assert state.admit(Waiter("new", log)) is HOLD


def test_forgetting_a_held_request_removes_it_and_its_timer():
    state, timers = make()
    state.set_endpoints([])
    log: list = []
    w = Waiter("gone", log)
    state.admit(w)
    assert state.forget(w) is True
    assert state.forget(w) is False
    timers.advance(60)
    state.set_endpoints([A])
    assert log == []


def test_in_flight_counts_from_arrival_to_departure_and_integrates_exactly():
    state, timers = make()
    state.set_endpoints([A])
    state.arrive()                 # t=100: 1
    timers.advance(2)
    state.arrive()                 # t=102: 2
    timers.advance(1)
    state.depart(PROXIED)          # t=103: 1
    timers.advance(3)
    state.depart(HELD)             # t=106: 0
    timers.advance(10)
    snap = state.snapshot()
    assert snap["in_flight"] == 0 and snap["requests"] == 2
    assert snap["in_flight_seconds"] == pytest.approx(1 * 2 + 2 * 1 + 1 * 3)
    assert state.outcomes[PROXIED] == 1 and state.outcomes[HELD] == 1


def test_zero_arrivals_call_the_hook_every_time_it_holds():
    seen: list[str] = []
    state, _ = make(on_zero_arrival=lambda s: seen.append(s.policy))
    state.set_endpoints([])
    for i in range(3):
        state.admit(Waiter(str(i), []))
    assert seen == ["app", "app", "app"]


def test_hold_episodes_log_once_at_start_and_once_at_end():
    class Log:
        def __init__(self):
            self.lines = []

        def info(self, event, **kw):
            self.lines.append((event, kw))

    log = Log()
    state, timers = make(max_pending=2, log=log)
    state.set_endpoints([])
    for i in range(3):
        state.admit(Waiter(str(i), []))
    timers.advance(1.25)
    state.set_endpoints([A])
    events = [e for e, _ in log.lines]
    assert events == ["endpoints changed", "holding requests", "endpoints changed",
                      "hold ended"]
    ended = log.lines[-1][1]
    assert ended["held"] == 2 and ended["released"] == 2 and ended["rejected"] == 1
    assert ended["longest"] == 1.25 and ended["timed_out"] == 0


def test_take_held_empties_the_queue_for_shutdown():
    state, timers = make()
    state.set_endpoints([])
    log: list = []
    waiters = [Waiter(str(i), log) for i in range(3)]
    for w in waiters:
        state.admit(w)
    assert state.take_held() == waiters
    timers.advance(60)
    assert log == [] and state.pending == 0


@pytest.mark.parametrize("outcome", [CANCELLED, TIMED_OUT])
def test_outcomes_are_counted_by_name(outcome):
    state, _ = make()
    state.arrive()
    state.depart(outcome)
    assert state.outcomes[outcome] == 1 and sum(state.outcomes.values()) == 1
