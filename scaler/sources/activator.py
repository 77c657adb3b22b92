"""The activator as a metric source: every activator's ``/v1/stats``, read every second and
summed over replicas, for policies with ``metric: {source: activator}``.

Each activator counts its requests in flight exactly and integrates that count over time
(``in_flight_seconds``); it also counts arrivals (``requests``). Two reads of one activator
give the exact average concurrency (and request rate) between them. This source reads
every activator just after each whole second, spreads each interval's averages over the
1 s buckets it covers, and sums the activators: bucket ``s`` holds the average over
``(s-1, s]``, like a Prometheus evaluation at ``s``. The loop's tick at ``T`` (run at
``T + 0.5``) thus finds bucket ``T`` complete.

No data is not zero:

* a failed read covers nothing; the next good read of that activator covers the whole
  interval since its last one, exactly, so a short outage loses nothing;
* a new ``activator`` id means the process restarted and its counters began again at its
  start (``uptime`` ago): what it did between the last read of the old process and the
  start of the new one is unknown, and those seconds are left out, never counted as zero;
* while any activator has not been read up to a tick's last second, that tick has no
  data (``unreachable`` or ``timeout``); an activator that nothing names any more (gone
  from discovery) stops counting after its last read;
* the first read of an activator only sets its baseline, unless it started within the last
  ``FRESH`` seconds (then its counts since start are exact).

Activators are ``--activator-url`` (their admin base URL) and, in a cluster, whatever a
discovery callable returns (the activator Service's EndpointSlices, read every
``DISCOVERY_INTERVAL`` seconds). The stats also say on which port each activator takes
traffic: :meth:`ActivatorSource.proxies`, for the daemon's serve/proxy switch.

Queries name the policy and what to count: :func:`query_for`.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from scaler.clock import Clock, SystemClock
from scaler.sources import Reading

STATS_PATH = "/v1/stats"
READ_OFFSET = 0.05          # read this long after each whole second
READ_TIMEOUT = 0.5
FRESH = 3.0                 # an activator this young at first sight: its counts since start
DISCOVERY_INTERVAL = 5.0
MIN_KEEP = 120              # seconds of buckets kept (more if a longer range is asked for)
KINDS = ("concurrency", "rps")


def query_for(policy: str, kind: str = "concurrency") -> str:
    """The query that names a policy's load at the activators: ``concurrency:checkout``."""
    return f"{kind}:{policy}"


def parse_query(query: str) -> tuple[str, str]:
    kind, sep, policy = query.partition(":")
    if not sep or kind not in KINDS or not policy:
        raise ValueError(f"{query!r} is not KIND:POLICY with KIND one of {KINDS}")
    return kind, policy


# ------------------------------------------------------------------------------------------
# pure: reads of activators in, per-second averages out


@dataclass
class _Target:
    """One activator (by its admin URL) and what its reads have covered."""

    url: str
    id: str | None = None
    uptime: float = 0.0
    read_at: float | None = None        # daemon time of the last good read
    covered_from: float | None = None   # first time its buckets are known from
    counters: dict[str, tuple[float, float]] = field(default_factory=dict)
    gaps: list[tuple[float, float]] = field(default_factory=list)   # unknown intervals
    buckets: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    proxy_port: int | None = None
    error: str | None = None            # why its last read failed (None: it succeeded)
    retired_at: float | None = None

    def add(self, policy: str, a: float, b: float, concurrency: float, rps: float) -> None:
        """Spread averages over (a, b] onto the buckets (s-1, s] it overlaps."""
        if b <= a:
            return
        per = self.buckets.setdefault(policy, {})
        for s in range(math.floor(a) + 1, math.ceil(b) + 1):
            overlap = min(b, s) - max(a, s - 1)
            if overlap <= 0:
                continue
            cell = per.setdefault(s, [0.0, 0.0, 0.0])
            cell[0] += concurrency * overlap
            cell[1] += rps * overlap
            cell[2] += overlap

    def state(self, s: int) -> str:
        """``out`` (not counted at s), ``pending`` (not read up to s yet), ``lost``, ``known``."""
        if self.covered_from is None or s - 1 < self.covered_from - 1e-9:
            return "out"
        if self.retired_at is not None and (self.read_at is None or s > self.read_at + 1e-9):
            return "out"
        if self.read_at is None or self.read_at < s - 1e-9:
            return "pending"
        if any(a < s and b > s - 1 for a, b in self.gaps):
            return "lost"
        return "known"


class StatsSeries:
    """Per-second load of each policy, from reads of every activator. Pure: times are
    passed in (daemon wall-clock seconds)."""

    def __init__(self) -> None:
        self.targets: dict[str, _Target] = {}
        self.keep = MIN_KEEP

    def set_targets(self, urls: Iterable[str], at: float) -> None:
        urls = list(dict.fromkeys(urls))
        for url in urls:
            target = self.targets.setdefault(url, _Target(url))
            target.retired_at = None
        for url, target in list(self.targets.items()):
            if url not in urls and target.retired_at is None:
                target.retired_at = at
                if target.read_at is None:
                    del self.targets[url]

    def observe(self, url: str, at: float, stats: dict) -> None:
        """A good read of ``url`` at ``at``: the activator's /v1/stats answer."""
        t = self.targets.setdefault(url, _Target(url))
        ident, uptime = str(stats["activator"]), float(stats["uptime"])
        routes = stats.get("routes") or {}
        counters = {p: (float(r.get("in_flight_seconds", 0.0)), float(r.get("requests", 0)))
                    for p, r in routes.items() if isinstance(r, dict)}
        t.proxy_port = stats.get("proxy_port") if isinstance(stats.get("proxy_port"),
                                                              int) else None
        t.error = None
        if ident == t.id and uptime >= t.uptime:
            span = uptime - t.uptime
            start = t.read_at
            for policy in set(counters) | set(t.counters):
                now_i, now_r = counters.get(policy, (0.0, 0.0))
                old_i, old_r = t.counters.get(policy, (0.0, 0.0))
                if span > 0:
                    t.add(policy, start, at, max(0.0, now_i - old_i) / span,
                          max(0.0, now_r - old_r) / span)
        else:
            began = at - uptime
            if t.read_at is not None and began < t.read_at - 1e-6:
                # A process that started before the last read, yet another one answered
                # then: this address reaches more than one activator.
                t.error = ("bad_response: more than one activator answers at this address "
                           "(a Service's?); give each activator's own")
                t.id = None
                return
            if t.id is None and uptime > FRESH:
                began = at                             # a baseline: nothing before is known
            elif t.read_at is not None and began > t.read_at:
                t.gaps.append((t.read_at, began))      # a restart: that stretch is lost
            if uptime > 0 and began < at:
                for policy, (i, r) in counters.items():
                    t.add(policy, began, at, i / uptime, r / uptime)
            if t.covered_from is None:
                t.covered_from = began if began < at else at
        t.id, t.uptime, t.read_at, t.counters = ident, uptime, at, counters

    def failed(self, url: str, reason: str) -> None:
        self.targets.setdefault(url, _Target(url)).error = reason

    def routed(self, policy: str) -> bool:
        return any(policy in t.counters for t in self.targets.values() if t.retired_at is None)

    def value(self, policy: str, kind: str, s: int) -> float | str:
        """The policy's load in bucket ``s`` summed over activators, or why it is not known:
        ``pending`` (an activator has not been read that far), ``lost``, or ``none`` (no
        activator was counting yet: before the first reads)."""
        total = 0.0
        counted = False
        index = 0 if kind == "concurrency" else 1
        for t in self.targets.values():
            state = t.state(s)
            if state == "out":
                continue
            if state != "known":
                return state
            counted = True
            cell = t.buckets.get(policy, {}).get(s)
            if cell is not None and cell[2] > 0:
                total += cell[index] / cell[2]
        return total if counted else "none"

    def prune(self, now: float) -> None:
        oldest = math.floor(now) - self.keep
        for url, t in list(self.targets.items()):
            for per in t.buckets.values():
                for s in [s for s in per if s < oldest]:
                    del per[s]
            t.gaps = [(a, b) for a, b in t.gaps if b >= oldest]
            if t.retired_at is not None and t.retired_at < oldest:
                del self.targets[url]


# ------------------------------------------------------------------------------------------
# the reader: one thread, a read of every activator each second


class ActivatorSource:
    """The :class:`~scaler.sources.MetricSource` over the activators' stats."""

    def __init__(self, urls: Iterable[str] = (), *,
                 discover: Callable[[], list[str]] | None = None, clock: Clock | None = None,
                 shutdown: threading.Event | None = None, read_timeout: float = READ_TIMEOUT,
                 discovery_interval: float = DISCOVERY_INTERVAL, log=None) -> None:
        self.static = [u.rstrip("/") for u in urls]
        for url in self.static:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"--activator-url {url!r} is not http://HOST:PORT (the "
                                 "activator's admin port)")
        self.discover = discover
        self.clock = clock or SystemClock()
        self.stop = shutdown or threading.Event()
        self.read_timeout = read_timeout
        self.discovery_interval = discovery_interval
        self.log = log
        self.series = StatsSeries()
        self.changed = threading.Condition()
        self.rounds = 0
        self.discovered: list[str] = []
        self.discovery_error: str | None = None
        self._connections: dict[str, http.client.HTTPConnection] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    query_for = staticmethod(query_for)

    # -- the MetricSource protocol -----------------------------------------------------------
    def read(self, query: str, start: float, end: float, *, deadline: float) -> Reading:
        kind, policy = parse_query(query)
        first, last = math.ceil(start), math.floor(end)
        self.series.keep = max(self.series.keep, last - first + 60)
        with self.changed:
            while True:
                missing = self._not_ready(policy, kind, last)
                if missing is None or self.clock.monotonic() >= deadline or self.stop.is_set():
                    break
                self.changed.wait(max(0.0, min(0.05, deadline - self.clock.monotonic())))
            if missing is not None:
                return missing
            return Reading(samples=self._samples(policy, kind, first, last))

    def history(self, query: str, start: float, end: float, step: float = 1.0, *,
                deadline: float | None = None) -> Reading:
        """What the reads so far hold (the activators keep no history): at a daemon's start
        often nothing, and the windows fill from the next reads."""
        kind, policy = parse_query(query)
        with self.changed:
            if deadline is not None:
                while self.rounds < 1 and self.clock.monotonic() < deadline:
                    self.changed.wait(max(0.0, min(0.05, deadline - self.clock.monotonic())))
            problem = self._unavailable(policy)
            if problem is not None:
                return problem
            seconds = self._samples(policy, kind, math.ceil(start), math.floor(end))
        if step <= 1.0:
            return Reading(samples=seconds)
        grouped: dict[float, list[float]] = {}
        for t, v in seconds:
            grouped.setdefault(start + math.floor((t - start) / step) * step, []).append(v)
        return Reading(samples=tuple((t, sum(v) / len(v)) for t, v in sorted(grouped.items())))

    # -- what the switch needs ----------------------------------------------------------------
    def proxies(self) -> list[tuple[str, int]]:
        """(address, port) where each activator read successfully last takes traffic."""
        with self.changed:
            return sorted((urlsplit(t.url).hostname or "", t.proxy_port)
                          for t in self.series.targets.values()
                          if t.error is None and t.retired_at is None and t.proxy_port
                          and t.read_at is not None)

    # -- the reader ---------------------------------------------------------------------------
    def start(self) -> ActivatorSource:
        self._thread = threading.Thread(target=self._run, name="activator-stats", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for conn in self._connections.values():
            conn.close()

    def _run(self) -> None:
        next_discovery = 0.0
        while not self.stop.is_set():
            if self.discover is not None and self.clock.monotonic() >= next_discovery:
                next_discovery = self.clock.monotonic() + self.discovery_interval
                self._discover()
            self.read_round()
            now = self.clock.now()
            wait = math.floor(now) + 1 + READ_OFFSET - now
            self.clock.sleep(wait, self.stop)

    def _discover(self) -> None:
        try:
            found = self.discover()
        except Exception as exc:  # noqa: BLE001 (the API's failure keeps the last list)
            if self.discovery_error is None and self.log is not None:
                self.log.warning("activator discovery failing; keeping the last list",
                                 reason=str(exc))
            self.discovery_error = str(exc)
            return
        if self.discovery_error is not None and self.log is not None:
            self.log.info("activator discovery recovered")
        self.discovery_error = None
        if found != self.discovered and self.log is not None:
            self.log.info("activators", found=found)
        self.discovered = found

    def urls(self) -> list[str]:
        return list(dict.fromkeys(self.static + self.discovered))

    def read_round(self) -> None:
        """Read every activator once (concurrently) and record what they said."""
        urls = self.urls()
        with self.changed:
            self.series.set_targets(urls, self.clock.now())
        if urls:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8,
                                                thread_name_prefix="activator-read")
            results = list(self._pool.map(self._read_one, urls))
        else:
            results = []
        with self.changed:
            for url, at, stats, error in results:
                if error is None:
                    try:
                        self.series.observe(url, at, stats)
                        continue
                    except (KeyError, TypeError, ValueError) as exc:
                        error = f"bad_response: {type(exc).__name__}: {exc}"
                self.series.failed(url, error)
            self.series.prune(self.clock.now())
            self.rounds += 1
            self.changed.notify_all()

    def _read_one(self, url: str) -> tuple[str, float, dict | None, str | None]:
        conn = self._connections.get(url)
        try:
            if conn is None:
                parts = urlsplit(url)
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                                  timeout=self.read_timeout)
                self._connections[url] = conn
            conn.request("GET", urlsplit(url).path + STATS_PATH)
            response = conn.getresponse()
            body = response.read()
            at = self.clock.now()
            if response.status != 200:
                return url, at, None, f"http_error: HTTP {response.status}"
            return url, at, json.loads(body), None
        except (OSError, http.client.HTTPException) as exc:
            self._connections.pop(url, None)
            if conn is not None:
                conn.close()
            reason = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
            return url, self.clock.now(), None, f"{reason}: {exc or type(exc).__name__}"
        except ValueError as exc:
            return url, self.clock.now(), None, f"bad_response: {exc}"

    # -- answers --------------------------------------------------------------------------------
    def _unavailable(self, policy: str) -> Reading | None:
        live = [t for t in self.series.targets.values() if t.retired_at is None]
        if not live:
            return Reading(error="empty", detail=(
                "no activator to read: none given with --activator-url"
                + (" and none discovered" if self.discover else "")
                + (f" (discovery: {self.discovery_error})" if self.discovery_error else "")))
        if all(t.error is not None for t in live):
            reason = live[0].error.split(":", 1)[0]
            return Reading(error=reason if reason in ("timeout", "unreachable", "http_error",
                                                      "bad_response") else "unreachable",
                           detail="; ".join(f"{t.url}: {t.error}" for t in live))
        if self.rounds and not self.series.routed(policy) and \
                all(t.read_at is not None for t in live if t.error is None):
            return Reading(error="empty", detail=(
                f"no activator routes policy {policy!r} (do they read the same policy "
                "files?)"))
        return None

    def _not_ready(self, policy: str, kind: str, last: int) -> Reading | None:
        problem = self._unavailable(policy)
        if problem is not None:
            return problem
        state = self.series.value(policy, kind, last)
        if not isinstance(state, str) or state == "none":
            return None
        failing = [t for t in self.series.targets.values()
                   if t.retired_at is None and t.error is not None]
        if state == "lost":
            return Reading(error="empty", detail=(
                f"second {last} is unknown: an activator restarted and what it counted "
                "before is lost"))
        if failing:
            reason = failing[0].error.split(":", 1)[0]
            return Reading(error=reason if reason in ("timeout", "unreachable", "http_error",
                                                      "bad_response") else "unreachable",
                           detail="; ".join(f"{t.url}: {t.error}" for t in failing))
        return Reading(error="timeout", detail=(
            f"the activators were not read up to second {last} in time"))

    def _samples(self, policy: str, kind: str, first: int,
                 last: int) -> tuple[tuple[float, float], ...]:
        out = []
        for s in range(first, last + 1):
            value = self.series.value(policy, kind, s)
            if not isinstance(value, str):
                out.append((float(s), round(value, 9)))
        return tuple(out)
