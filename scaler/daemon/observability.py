"""What the daemon says about itself: structured logs, /metrics, /healthz and /readyz.

Logs: one JSON object per line when stdout is not a terminal (what log pipelines want),
coloured key=value lines on a terminal. Metrics use a registry passed in, never the
process-global default, so tests read exactly what one daemon exported.
"""

from __future__ import annotations

import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def configure_logging(stream=None, *, json: bool | None = None, level: int = logging.INFO) -> None:
    stream = stream or sys.stdout
    if json is None:
        json = not getattr(stream, "isatty", lambda: False)()
    renderer = (structlog.processors.JSONRenderer() if json
                else structlog.dev.ConsoleRenderer(colors=True))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


class Metrics:
    """The daemon's own metrics, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = ["policy"]
        self.desired = Gauge("scaler_desired_replicas", "Replicas the last decision asked for",
                             p, registry=registry)
        self.current = Gauge("scaler_current_replicas", "spec.replicas of the target", p,
                             registry=registry)
        self.ready = Gauge("scaler_ready_replicas", "Ready replicas of the target", p,
                           registry=registry)
        self.stable = Gauge("scaler_stable_value", "Stable window average of the load", p,
                            registry=registry)
        self.panic = Gauge("scaler_panic_value", "Panic window average of the load", p,
                           registry=registry)
        self.panic_mode = Gauge("scaler_panic_mode", "1 while the decider is in panic mode", p,
                                registry=registry)
        self.forecast = Gauge("scaler_forecast_value",
                              "Upper forecast of the load at now + horizon", p,
                              registry=registry)
        self.forecast_active = Gauge(
            "scaler_forecast_active",
            "1 while the forecast may raise the replica floor (0: warming up or fallen back)",
            p, registry=registry)
        self.paused = Gauge("scaler_paused", "1 while the target carries scaler/paused: true",
                            p, registry=registry)
        self.tick_duration = Histogram(
            "scaler_tick_duration_seconds", "Time to query, decide and act for one policy",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=registry)
        self.metric_errors = Counter(
            "scaler_metric_errors_total", "Ticks whose metric query gave no usable data",
            ["policy", "reason"], registry=registry)
        self.patch_errors = Counter(
            "scaler_patch_errors_total",
            "Ticks whose target could not be read or scaled, by reason (while backing off "
            "from a target that cannot be scaled, each tick counts the last reason)",
            ["policy", "reason"], registry=registry)
        self.tick_errors = Counter("scaler_tick_errors_total",
                                   "Ticks that failed unexpectedly (held; see the log)", p,
                                   registry=registry)
        self.conflicts = Counter("scaler_patch_conflicts_total",
                                 "Scale writes refused because the target changed (409)", p,
                                 registry=registry)
        self.scale_actions = Counter("scaler_scale_actions_total", "Replica changes written",
                                     ["policy", "direction"], registry=registry)
        self.leader = Gauge("scaler_leader", "1 while this process holds the lease",
                            registry=registry)
        self.reload_success = Gauge("scaler_policy_reload_success",
                                    "1 if the last policy (re)load succeeded",
                                    registry=registry)
        self.reload_time = Gauge("scaler_policy_reload_timestamp_seconds",
                                 "When policies were last (re)loaded successfully",
                                 registry=registry)
        self.tick_overruns = Counter(
            "scaler_tick_overruns_total",
            "Policy-ticks not decided before the policy's next tick was due (late or "
            "skipped): the loop has more targets than it can serve on time", registry=registry)
        self.shared_queries = Counter(
            "scaler_metric_queries_total",
            "Metric queries made for ticks and warm starts (one per query string shared by "
            "several policies)", registry=registry)
        self.buckets_held = Gauge("scaler_buckets_held",
                                  "Bucket Leases this replica holds (with --shard)",
                                  registry=registry)
        self.targets_served = Gauge("scaler_targets_served",
                                    "Policies this replica works on (all of them without "
                                    "--shard)", registry=registry)
        # The activator's side of the daemon: pokes, and the serve/proxy switch.
        self.pokes = Counter("scaler_pokes_total",
                             "Pokes from activators (a request held at zero replicas)", p,
                             registry=registry)
        self.activator_in_path = Gauge(
            "scaler_activator_in_path",
            "1 while the policy's public Service points at the activators, 0 at the pods", p,
            registry=registry)

    def forget(self, policy: str) -> None:
        """Drop a removed policy's series so dashboards don't show stale values."""
        for gauge in (self.desired, self.current, self.ready, self.stable, self.panic,
                      self.panic_mode, self.paused, self.forecast, self.forecast_active,
                      self.activator_in_path):
            try:
                gauge.remove(policy)
            except KeyError:
                pass


Route = Callable[[str], tuple[int, str, bytes]]   # Accept header → status, type, body
Post = Callable[[bytes], tuple[int, str]]         # request body → status, text


class EndpointServer:
    """A few endpoints on one port, for probes, scrapes and the activators' pokes.

    Plain ``http.server``, threaded, keep-alive, logging nothing (probes every few seconds
    would drown the decision log). It says no more than it must: the Server header is
    ``scaler`` (http.server would announce the Python version), and any other path is a
    bare 404. ``posts`` are POST paths, each a callable from the body to (status, text).
    """

    def __init__(self, host: str, port: int, routes: dict[str, Route], name: str, *,
                 posts: dict[str, Post] | None = None) -> None:
        posted = dict(posts or {})

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def version_string(self) -> str:
                return "scaler"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                handler = posted.get(self.path.split("?")[0])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 16))
                if length > len(body):
                    self.close_connection = True    # the rest is not read: no keep-alive
                if handler is None:
                    status, text = 404, f"no POST handler for {self.path}"
                else:
                    status, text = handler(body)
                self._answer(status, "text/plain; charset=utf-8", text.encode() + b"\n")

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self._answer(404, "text/plain; charset=utf-8", b"not found\n")
                else:
                    self._answer(*route(self.headers.get("Accept", "")))

            def _answer(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll keeps stop() quick (shutdown waits for one poll interval).
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,),
                                        name=name, daemon=True)

    def start(self) -> EndpointServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    shutdown = stop


class HealthServer(EndpointServer):
    """/healthz and /readyz on their own port, answered from two callables; ``posts`` adds
    POST paths (the activators' /v1/poke)."""

    def __init__(self, port: int, *, healthy: Callable[[], tuple[bool, str]],
                 ready: Callable[[], tuple[bool, str]], host: str = "0.0.0.0",
                 posts: dict[str, Post] | None = None) -> None:
        def answer(check: Callable[[], tuple[bool, str]]) -> Route:
            def route(accept: str) -> tuple[int, str, bytes]:
                ok, why = check()
                body = (why or ("ok" if ok else "not ok")).encode() + b"\n"
                return 200 if ok else 503, "text/plain; charset=utf-8", body
            return route

        super().__init__(host, port, {"/healthz": answer(healthy), "/readyz": answer(ready)},
                         "health", posts=posts)


def serve_metrics(registry: CollectorRegistry, port: int,
                  host: str = "0.0.0.0") -> EndpointServer:
    """Serve /metrics for ``registry`` (text or OpenMetrics, as the scraper asks);
    returns the started server (call shutdown() to stop)."""
    from prometheus_client.exposition import choose_encoder

    def metrics(accept: str) -> tuple[int, str, bytes]:
        encoder, content_type = choose_encoder(accept)
        return 200, content_type, encoder(registry)

    return EndpointServer(host, port, {"/metrics": metrics}, "metrics").start()
