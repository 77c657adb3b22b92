"""A metrics endpoint whose load the test controls, for the real Prometheus to scrape.

    with LoadExporter() as exporter:
        exporter.set("app_inflight_requests", 12.5)
        exporter.set("app_requests_by_pod", 3, labels={"pod": "a"})
        exporter.inc("app_requests", 10)               # exposed as app_requests_total
        exporter.play("app_replayed_load", recording)  # value(t) computed at scrape time
        exporter.refuse(); ...; exporter.resume()      # the scrape target gone, then back

Each exporter has its own registry, so several can run in one process, and serves it on
127.0.0.1 with an ephemeral port (no port races).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Self

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# value(t) with t = seconds since play() was called; None means "no sample at this
# scrape" (the series disappears, as when a workload's exporter goes away).
Schedule = Callable[[float], float | None]


class _Playback(Collector):
    """One gauge series whose value is computed from a schedule when Prometheus scrapes.

    Computing at scrape time (not from a background thread) makes the sample's value
    match the scrape's timestamp, so a recorded load comes back shifted only by where
    the scrape fell, never by a thread's lag.
    """

    def __init__(
        self,
        name: str,
        schedule: Schedule,
        labels: Mapping[str, str],
        started: float,
        wall_clock: Callable[[], float],
    ) -> None:
        self._name = name
        self._schedule = schedule
        self._labels = dict(labels)
        self._started = started
        self._wall_clock = wall_clock

    def collect(self) -> Iterable[Metric]:
        value = self._schedule(self._wall_clock() - self._started)
        if value is None:
            return []
        family = GaugeMetricFamily(
            self._name, "Load played back from a schedule.", labels=list(self._labels)
        )
        family.add_metric(list(self._labels.values()), float(value))
        return [family]


class LoadExporter:
    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self._wall_clock = wall_clock
        self._gauges: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        self._label_names: dict[str, list[str]] = {}
        self._playbacks: dict[tuple[str, tuple[tuple[str, str], ...]], _Playback] = {}
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        self._server, self._thread = start_http_server(self._port, addr="127.0.0.1",
                                                       registry=self.registry)
        self._port = int(self._server.server_port)
        return self

    def refuse(self) -> None:
        """Close the listening socket: scrapes are refused, as when the target is gone.
        Prometheus marks the target's series stale at its next scrape."""
        self.stop()

    def resume(self) -> None:
        """Listen again on the same port, with the same series: the target is back."""
        self.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the exporter is not running; call start() first")
        return int(self._server.server_port)

    @property
    def target(self) -> str:
        """``host:port`` as Prometheus's static_configs want it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    # -- the load the test controls --------------------------------------------------

    def set(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Set a gauge series (created on first use)."""
        gauge = self._metric(self._gauges, Gauge, name, labels)
        (gauge.labels(**labels) if labels else gauge).set(value)

    def inc(self, name: str, amount: float = 1.0, labels: Mapping[str, str] | None = None) -> None:
        """Increase a counter series; Prometheus sees it as ``<name>_total``."""
        counter = self._metric(self._counters, Counter, name, labels)
        (counter.labels(**labels) if labels else counter).inc(amount)

    def remove(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Stop exposing a series; Prometheus marks it stale at the next scrape."""
        with self._lock:
            for family in (self._gauges, self._counters):
                metric = family.get(name)
                if metric is None:
                    continue
                if labels:
                    metric.remove(*[labels[k] for k in sorted(labels)])
                else:
                    self.registry.unregister(metric)
                    del family[name], self._label_names[name]
                return
            key = (name, _label_key(labels))
            if key in self._playbacks:
                self.registry.unregister(self._playbacks.pop(key))
                return
        raise KeyError(f"no series {name}{dict(labels or {})} on this exporter")

    def play(
        self, name: str, schedule: Schedule, labels: Mapping[str, str] | None = None
    ) -> None:
        """Expose ``schedule(seconds since now)`` as a gauge, evaluated at each scrape."""
        key = (name, _label_key(labels))
        playback = _Playback(name, schedule, labels or {}, self._wall_clock(), self._wall_clock)
        with self._lock:
            if key in self._playbacks:
                self.registry.unregister(self._playbacks.pop(key))
            self.registry.register(playback)
            self._playbacks[key] = playback

    def _metric(self, family: dict, kind: type, name: str, labels: Mapping[str, str] | None):
        label_names = sorted(labels or {})
        with self._lock:
            metric = family.get(name)
            if metric is None:
                metric = kind(name, f"Test load {name}.", label_names, registry=self.registry)
                family[name] = metric
                self._label_names[name] = label_names
            elif self._label_names[name] != label_names:
                raise ValueError(f"{name} has labels {self._label_names[name]}, not {label_names}")
            return metric


def _label_key(labels: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((labels or {}).items()))


def steps(points: Iterable[tuple[float, float | None]]) -> Schedule:
    """A schedule that holds each ``(from_second, value)`` until the next one starts.

    Handy for replaying a recording: ``steps([(0, 5.0), (2, 7.0)])`` is 5 for two
    seconds, then 7. Before the first point the series is absent.
    """
    table = sorted(points, key=lambda p: p[0])

    def value(t: float) -> float | None:
        current: float | None = None
        for start, v in table:
            if start > t:
                break
            current = v
        return current

    return value

