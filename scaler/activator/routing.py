"""Per-route state: ready endpoints, least-in-flight choice, the hold queue at zero, counts.

Everything here runs on the event loop thread, so plain integers are exact: a request
counts in ``in_flight`` from its arrival (held ones included) until the end of its response
body, as Knative's queue-proxy counts. ``in_flight_seconds`` integrates ``in_flight`` over
time, so a reader that samples it twice gets the exact average concurrency between its
reads, bursts shorter than its period included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from scaler.activator.config import Route
from scaler.activator.endpoints import Endpoint

# Final outcomes of a request routed to a policy; each request ends in exactly one.
PROXIED = "proxied"        # forwarded at once and answered by the workload
HELD = "held"              # held at zero, then forwarded and answered
REJECTED = "rejected"      # the hold queue was full: 503
TIMED_OUT = "timed_out"    # held longer than the route's timeout: 504
FAILED = "failed"          # no endpoint could be reached, or it broke mid-response
CANCELLED = "cancelled"    # the client went away before its response was complete
OUTCOMES = (PROXIED, HELD, REJECTED, TIMED_OUT, FAILED, CANCELLED)


class Waiter(Protocol):
    """A request as the route sees it (the proxy's exchange)."""

    def forward(self, endpoint: EndpointState) -> None:
        """Go to ``endpoint`` (its in_flight is already counted)."""

    def hold_expired(self) -> None:
        """Waited the route's timeout without an endpoint: answer 504."""


class EndpointState:
    """One ready endpoint and the requests in flight to it from this activator."""

    __slots__ = ("endpoint", "in_flight", "removed")

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.in_flight = 0
        self.removed = False        # left the ready set: its connections are not kept

    def __repr__(self) -> str:
        return f"EndpointState({self.endpoint}, in_flight={self.in_flight})"


class Admission:
    """What :meth:`RouteState.admit` decided when no endpoint was handed out."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


HOLD = Admission("hold")
REJECT = Admission("reject")


class _Noop:
    def info(self, *args: object, **kwargs: object) -> None:
        pass

    warning = info


class RouteState:
    def __init__(self, route: Route, *, call_later: Callable, clock: Callable[[], float]
                 = time.monotonic, log=None,
                 on_zero_arrival: Callable[[RouteState], None] | None = None,
                 on_released: Callable[[RouteState, float], None] | None = None,
                 on_endpoints_removed: Callable[[Iterable[Endpoint]], None] | None = None
                 ) -> None:
        self.route = route
        self.policy = route.policy
        self._call_later = call_later
        self._clock = clock
        self._log = log or _Noop()
        self._on_zero_arrival = on_zero_arrival
        self._on_released = on_released
        self._on_endpoints_removed = on_endpoints_removed
        self.ready: list[EndpointState] = []
        self._by_endpoint: dict[Endpoint, EndpointState] = {}
        self._next = 0
        self.synced = False        # the source has delivered its first set
        # waiter -> (arrived at, timeout handle); a dict keeps arrival order, O(1) removal.
        self._held: dict[Waiter, tuple[float, object]] = {}
        self.in_flight = 0
        self.requests = 0
        self.in_flight_seconds = 0.0
        self._changed_at = clock()
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self._episode: dict[str, float] | None = None   # the current hold episode, for its log

    # -- counting ---------------------------------------------------------------------------
    def _integrate(self) -> None:
        now = self._clock()
        self.in_flight_seconds += self.in_flight * (now - self._changed_at)
        self._changed_at = now

    def arrive(self) -> None:
        """A request for this route arrived: it is in flight from now on."""
        self._integrate()
        self.in_flight += 1
        self.requests += 1

    def depart(self, outcome: str) -> None:
        """Its response ended (or it was answered by the activator itself)."""
        self._integrate()
        self.in_flight -= 1
        self.outcomes[outcome] += 1

    def snapshot(self) -> dict:
        self._integrate()
        return {"namespace": self.route.namespace, "mode": self.route.mode,
                "in_flight": self.in_flight, "pending": len(self._held),
                "ready_endpoints": len(self.ready), "requests": self.requests,
                "in_flight_seconds": round(self.in_flight_seconds, 6)}

    @property
    def pending(self) -> int:
        return len(self._held)

    # -- choosing an endpoint ----------------------------------------------------------------
    def pick(self) -> EndpointState:
        """The ready endpoint with the fewest requests in flight; ties go round robin."""
        ready = self.ready
        n = len(ready)
        start = self._next
        self._next = start + 1 if start + 1 < n else 0
        best = ready[start] if start < n else ready[0]
        low = best.in_flight
        if low:
            for i in range(start + 1, start + n):
                candidate = ready[i % n]
                if candidate.in_flight < low:
                    best, low = candidate, candidate.in_flight
                    if not low:
                        break
        best.in_flight += 1
        return best

    def admit(self, waiter: Waiter) -> EndpointState | Admission:
        """An endpoint to go to now, or HOLD (wait for forward/hold_expired), or REJECT."""
        if self.ready and not self._held:
            return self.pick()
        if len(self._held) >= self.route.max_pending:
            if self._episode is not None:
                self._episode["rejected"] += 1
            if not self.ready and self._on_zero_arrival is not None:
                self._on_zero_arrival(self)     # demand at zero, even if it cannot wait
            return REJECT
        now = self._clock()
        handle = self._call_later(self.route.timeout, self._expire, waiter)
        self._held[waiter] = (now, handle)
        if self._episode is None:
            self._episode = {"since": now, "held": 0, "released": 0, "timed_out": 0,
                             "rejected": 0, "cancelled": 0, "longest": 0.0}
            self._log.info("holding requests", policy=self.policy, reason=(
                "no ready endpoints" if self.synced else "endpoints not known yet"))
        self._episode["held"] += 1
        if self._on_zero_arrival is not None:
            self._on_zero_arrival(self)
        return HOLD

    def forget(self, waiter: Waiter) -> bool:
        """A held request's client went away; True if it was still held."""
        entry = self._held.pop(waiter, None)
        if entry is None:
            return False
        entry[1].cancel()
        if self._episode is not None:
            self._episode["cancelled"] += 1
        self._end_episode_if_empty()
        return True

    def _expire(self, waiter: Waiter) -> None:
        if self._held.pop(waiter, None) is None:
            return
        if self._episode is not None:
            self._episode["timed_out"] += 1
        self._end_episode_if_empty()
        waiter.hold_expired()

    def _end_episode_if_empty(self) -> None:
        if self._held or self._episode is None:
            return
        episode, self._episode = self._episode, None
        self._log.info("hold ended", policy=self.policy,
                       seconds=round(self._clock() - episode.pop("since"), 3),
                       **{k: (round(v, 3) if k == "longest" else int(v))
                          for k, v in episode.items()})

    # -- endpoint changes --------------------------------------------------------------------
    def set_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        """A new full ready set; held requests go out in arrival order if it is not empty."""
        new = sorted(set(endpoints))
        before = len(self.ready)
        first = not self.synced
        self.synced = True
        keep = {ep: self._by_endpoint.get(ep) or EndpointState(ep) for ep in new}
        removed = [ep for ep in self._by_endpoint if ep not in keep]
        for ep in removed:
            self._by_endpoint[ep].removed = True
        self._by_endpoint = keep
        self.ready = list(keep.values())
        self._next = 0
        if first or before != len(self.ready) or removed:
            self._log.info("endpoints changed", policy=self.policy, ready=len(self.ready),
                           was=before, endpoints=[str(ep) for ep in new[:10]])
        if removed and self._on_endpoints_removed is not None:
            self._on_endpoints_removed(removed)
        if self.ready and self._held:
            self._release()

    def _release(self) -> None:
        now = self._clock()
        held, self._held = self._held, {}
        episode = self._episode
        for waiter, (arrived, handle) in held.items():
            handle.cancel()
            waited = now - arrived
            if episode is not None:
                episode["released"] += 1
                episode["longest"] = max(episode["longest"], waited)
            if self._on_released is not None:
                self._on_released(self, waited)
            waiter.forward(self.pick())
        self._end_episode_if_empty()

    def take_held(self) -> list[Waiter]:
        """Stop holding: the held requests, in arrival order, for a final answer."""
        held, self._held = self._held, {}
        for _arrived, handle in held.values():
            handle.cancel()
        if self._episode is not None:
            self._episode["cancelled"] += len(held)
        self._end_episode_if_empty()
        return list(held)
