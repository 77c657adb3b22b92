"""What the activator says about itself: structured logs and Prometheus metrics.

Per-request figures are read from the routes' own counters when Prometheus scrapes (a
collector), so the request path pays nothing for them; only hold times, which end a cold
start, go through a histogram. Metrics use a registry passed in, never the global one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from scaler.activator.routing import OUTCOMES, RouteState

COLD_START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300)


def configure_logging(stream=None, *, json: bool | None = None,
                      level: int = logging.INFO) -> None:
    """JSON lines when not on a terminal (what log pipelines want), key=value on one."""
    stream = stream or sys.stdout
    if json is None:
        json = not getattr(stream, "isatty", lambda: False)()
    renderer = (structlog.processors.JSONRenderer() if json
                else structlog.dev.ConsoleRenderer(colors=True))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False)


class RoutesCollector(Collector):
    """Requests, in-flight, pending and ready endpoints per policy, read at scrape time."""

    def __init__(self, routes: Callable[[], Iterable[RouteState]],
                 unrouted: Callable[[], int]) -> None:
        self._routes = routes
        self._unrouted = unrouted

    def collect(self):
        requests = CounterMetricFamily(
            "scaler_activator_requests", "Requests by policy and how they ended",
            labels=["policy", "outcome"])
        in_flight = GaugeMetricFamily(
            "scaler_activator_in_flight",
            "Requests in flight per policy, from arrival (held ones included) to the end of "
            "the response", labels=["policy"])
        pending = GaugeMetricFamily(
            "scaler_activator_pending_requests", "Requests held at zero ready endpoints",
            labels=["policy"])
        ready = GaugeMetricFamily(
            "scaler_activator_ready_endpoints", "Ready endpoints the activator forwards to",
            labels=["policy"])
        for route in list(self._routes()):
            for outcome in OUTCOMES:
                requests.add_metric([route.policy, outcome], route.outcomes[outcome])
            in_flight.add_metric([route.policy], route.in_flight)
            pending.add_metric([route.policy], route.pending)
            ready.add_metric([route.policy], len(route.ready))
        unrouted = CounterMetricFamily(
            "scaler_activator_unrouted_requests",
            "Requests whose Host matched no policy (answered 404, or 400 without a Host)")
        unrouted.add_metric([], self._unrouted())
        yield from (requests, in_flight, pending, ready, unrouted)


class Metrics:
    """The activator's own metrics, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.cold_start = Histogram(
            "scaler_activator_cold_start_seconds",
            "How long held requests waited for a ready endpoint", ["policy"],
            buckets=COLD_START_BUCKETS, registry=registry)
        self.pokes = Counter(
            "scaler_activator_pokes", "Pokes sent to daemons when a request arrived at zero",
            ["result"], registry=registry)
        self.upstream_errors = Counter(
            "scaler_activator_upstream_errors",
            "Connections to endpoints that failed (refused, timed out, closed mid-response)",
            ["policy"], registry=registry)

    def watch_routes(self, routes: Callable[[], Iterable[RouteState]],
                     unrouted: Callable[[], int]) -> None:
        self.registry.register(RoutesCollector(routes, unrouted))
