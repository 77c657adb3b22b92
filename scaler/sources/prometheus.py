"""The live metric source: PromQL over Prometheus's HTTP API.

:meth:`PrometheusSource.read` evaluates the query at every whole second of ``[start, end]``
with one ``query_range`` (step 1 s), because the windows downstream keep 1-second buckets
as Knative's scraper does. ``start`` and ``end`` always come from the caller, i.e. from
the injected clock: the client library's own default times are fixed when it is imported.

Parsing is strict. Anything but exactly one series of finite, non-negative values whose
newest point is recent is a :class:`~scaler.sources.Reading` with an ``error`` from
``NO_DATA_REASONS`` and a ``detail`` a human can act on. The source never decides what no
data means (the loop holds the replica count) and never logs; the number of HTTP
attempts is returned (:class:`Fetch`) for the loop's counters.

"Stale" means the newest evaluated point is older than the staleness bound: the series
ended inside the range (its target went away and Prometheus wrote staleness markers).
A series that ended before the range started comes back "empty". Note that Prometheus
carries a sample forward for its lookback delta (5 min by default) when it simply stops
scraping, e.g. while it restarts; that cannot be told apart from a steady load here.

Retries belong to tenacity alone: prometheus-api-client's own urllib3 ``Retry`` is
switched off. Timeouts, connection errors, HTTP 5xx and 429 are retried with jittered
exponential backoff, never past the caller's deadline, and not at all once the shutdown
event is set. A ``Retry-After`` (429, 503) is honoured across calls: until it has passed
no request is sent, and the reading says how long is left.

Hostile answers are data errors, never exceptions: a body nested too deeply for the JSON
parser, numbers Python refuses, a point stamped outside the range asked for (a clock or a
proxy is wrong: such a point would land in a future bucket and pin the count) are
``bad_response``; a value above 2**53 is ``too_large`` (no load is that big, and the
windows' arithmetic would overflow on it).

Credentials stay where they belong. A password in the URL (``http://user:pass@host``) is
taken out of it into basic auth, so ``connection.url`` — what logs and errors show — never
carries it. A redirect to another host, or from https to plain http, is not followed (the
headers and credentials would go along): it is an ``http_error`` naming where it pointed.

``prometheus_api_client``, ``requests`` and ``tenacity`` are imported when a source is
built or first queries, not with this module, so commands that never talk to Prometheus
do not pay for them (measured in a fresh process: importing this module ~20 ms and
+4 MiB RSS; building a source ~65 ms and +13 MiB more; dateparser is never loaded,
because only datetime objects reach the library).
"""

from __future__ import annotations

import math
import os
import reprlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from scaler.clock import Clock, SystemClock
from scaler.sources import MAX_LOAD, Reading, missing_seconds, split_points
from scaler.sources.wire import format_labels, format_seconds

if TYPE_CHECKING:
    import requests
    from tenacity import RetryCallState

# Prometheus refuses a range query with more than 11,000 steps per series ("exceeded
# maximum resolution of 11,000 points per timeseries"); history() splits longer ranges.
MAX_POINTS_PER_QUERY = 11_000

# An attempt with less time than this left before the deadline cannot get an answer.
_MIN_ATTEMPT_SECONDS = 0.05

# Status codes worth another try: overload and server-side failures.
_RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})

# A server may ask for a pause (Retry-After); longer requests than this are capped, so
# a wrong header cannot silence a policy for hours.
MAX_RETRY_AFTER = 120.0

_MAX_REDIRECTS = 5

# Distinct queries of one pass may go to Prometheus as one query (answer_many): each
# wrapped in label_replace(..., BATCH_LABEL, "<k>", "", "") and joined with `or`, so the
# answer tells the queries' series apart. A thousand distinct queries in batches of 50
# are twenty requests, not a thousand (each request costs ~2 ms of this process's CPU).
BATCH_LABEL = "scaler_batch_query"


def batch_query(queries: Sequence[str]) -> str:
    """One PromQL expression answering every query, each series labelled with its
    query's position: ``label_replace((q0), "scaler_batch_query", "0", "", "") or ...``."""
    return " or ".join(f'label_replace(({q}), "{BATCH_LABEL}", "{k}", "", "")'
                       for k, q in enumerate(queries))


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``http://user:pass@host/p`` → (``http://host/p``, (user, pass)); percent-escapes
    in the credentials are decoded, as requests does. A URL without them is unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, (unquote(user), unquote(password))


def redirect_problem(source: str, target: str) -> str | None:
    """Why following a redirect from ``source`` to ``target`` would leak the request's
    headers and credentials, or None when it stays with the same server (same host; the
    same port, or http upgraded to https on the default ports)."""
    a, b = urlsplit(source), urlsplit(target)
    if (a.hostname or "").lower() != (b.hostname or "").lower():
        return "to another host"
    if a.scheme == "https" and b.scheme != "https":
        return "from https to plain http"
    default = {"http": 80, "https": 443}
    ports = (a.port or default.get(a.scheme), b.port or default.get(b.scheme))
    if ports[0] != ports[1] and not (a.scheme, b.scheme, *ports) == ("http", "https", 80, 443):
        return "to another port"
    return None


@dataclass(frozen=True)
class Connection:
    """Where Prometheus is and how to authenticate to it.

    ``bearer_token_file`` is re-read whenever the file changes, because projected
    service-account tokens rotate under a running daemon. TLS certificates are verified
    unless ``insecure_skip_verify`` is set explicitly; ``ca_bundle`` adds a private CA.
    """

    url: str
    bearer_token_file: str | None = None
    basic_auth: tuple[str, str] | None = None
    ca_bundle: str | None = None
    insecure_skip_verify: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        url, userinfo = split_userinfo(self.url)
        # From here on the URL is safe to show: its credentials became basic auth.
        object.__setattr__(self, "url", url)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus url {url!r} must start with http:// or https://")
        if userinfo is not None:
            if self.basic_auth:
                raise ValueError("credentials both in the Prometheus url and in basic_auth; "
                                 "keep one")
            object.__setattr__(self, "basic_auth", userinfo)
        if self.bearer_token_file and self.basic_auth:
            raise ValueError("choose one of bearer_token_file and basic_auth, not both")
        if (self.bearer_token_file or self.basic_auth) and any(
            name.lower() == "authorization" for name in self.headers
        ):
            raise ValueError("an Authorization header conflicts with bearer_token_file/basic_auth")
        if self.ca_bundle and self.insecure_skip_verify:
            raise ValueError("ca_bundle has no effect with insecure_skip_verify; drop one")


@dataclass(frozen=True)
class Fetch:
    """A reading plus what the loop may count or show about how it was obtained."""

    reading: Reading
    labels: Mapping[str, str]  # the one series' labels; empty when the reading is an error
    attempts: int  # HTTP requests made, retries included


@dataclass(frozen=True)
class Answer:
    """A query's whole answer over ``[start, end]``: every series it returned, or why there
    is none (``failure``). Policies that share the query each take their reading from it
    with :meth:`reading`: their ``select``, from their own first second on."""

    query: str
    start: float
    end: float
    step: float = 1.0
    series: tuple[_Series, ...] = ()
    failure: Reading | None = None
    attempts: int = 0
    staleness: float | None = None    # the source's bound on the newest point's age

    def reading(self, select: Sequence[tuple[str, str]] = (),
                start: float | None = None, *, fresh: bool = True) -> Reading:
        """The reading of the one series whose labels match all of ``select`` (without a
        select: the only series), over ``[max(start, self.start), end]``. No series
        matching is ``empty``, several are ``multiple_series``: no data, never zero.
        ``fresh``: a tick's reading, whose newest point must be within the staleness
        bound (a warm start's history takes ``fresh=False``: old data is the point)."""
        if self.failure is not None:
            return self.failure
        first = self.start if start is None else max(self.start, float(start))
        series = list(self.series)
        if select:
            wanted = dict(select)
            shown = format_labels(wanted)
            series = self._matching(tuple(select))
            if not series:
                return Reading(error="empty", detail=(
                    f"none of the {len(self.series)} series of {self.query!r} has the labels "
                    f"{shown} (spec.metric.select)"
                    + (f"; e.g. {format_labels(self.series[0].labels)}" if self.series else "")))
            if len(series) > 1:
                listed = ", ".join(format_labels(s.labels) for s in series[:5])
                return Reading(error="multiple_series", detail=(
                    f"{len(series)} series of {self.query!r} have the labels {shown}: "
                    f"{listed}; add the label that tells them apart to spec.metric.select"))
        if first > self.start:
            series = [_Series(s.labels, tuple(pt for pt in s.points
                                              if pt[0] >= first - _RANGE_SLACK))
                      for s in series]
        return _checked(self.query, series, first, self.end, self.attempts,
                        staleness=self.staleness if fresh else None, now=self.end,
                        step=self.step).reading

    def _matching(self, select: tuple[tuple[str, str], ...]) -> list[_Series]:
        """The series whose labels match ``select``, from an index by the select's label
        names built once per answer: a thousand policies picking their series from one
        answer cost a thousand lookups, not a million label comparisons."""
        names = tuple(label for label, _ in select)
        indexes = self.__dict__.setdefault("_indexes", {})   # frozen: not a field
        index = indexes.get(names)
        if index is None:
            index = {}
            for one in self.series:
                key = tuple(one.labels.get(label) for label in names)
                if None not in key:
                    index.setdefault(key, []).append(one)
            indexes[names] = index
        return list(index.get(tuple(value for _, value in select), ()))


class PrometheusSource:
    """Implements :class:`~scaler.sources.MetricSource` against a Prometheus server."""

    def __init__(
        self,
        connection: Connection | str,
        *,
        clock: Clock | None = None,
        shutdown: threading.Event | None = None,
        staleness: float = 10.0,
        request_timeout: float = 10.0,
        history_timeout: float = 60.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
    ) -> None:
        if isinstance(connection, str):
            connection = Connection(connection)
        if staleness <= 0 or request_timeout <= 0 or history_timeout <= 0:
            raise ValueError("staleness, request_timeout and history_timeout must be positive")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("backoff needs 0 < backoff_initial <= backoff_max")
        self.connection = connection
        self._clock = clock or SystemClock()
        self._shutdown = shutdown or threading.Event()
        self._staleness = staleness
        self._request_timeout = request_timeout
        self._history_timeout = history_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._client = _Client(connection)
        # Called as on_chunk(done, total) after each chunk of a long history (a progress bar).
        self.on_chunk: Callable[[int, int], None] | None = None
        # Monotonic time before which the server asked not to be queried (Retry-After).
        self._not_before = -math.inf
        self._not_before_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- MetricSource ----------------------------------------------------------------

    def read(self, query: str, start: float, end: float, *, deadline: float) -> Reading:
        return self.fetch(query, start, end, deadline=deadline).reading

    def fetch(self, query: str, start: float, end: float, *, deadline: float) -> Fetch:
        """:meth:`read`, plus the series' labels and the number of attempts."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        first, last = math.ceil(start), math.floor(end)
        if first > last:
            return Fetch(Reading(error="empty", detail=f"no whole second in [{start}, {end}]"),
                         {}, 0)
        outcome, attempts = self._query_range(query, first, last, 1.0, deadline)
        if isinstance(outcome, _Failure):
            return Fetch(outcome.reading(), {}, attempts)
        return _checked(query, outcome, first, last, attempts, staleness=self._staleness,
                        now=end)

    # -- whole answers, shared by the policies that ask the same query -----------------

    def answer(self, query: str, start: float, end: float, *, deadline: float) -> Answer:
        """Every series ``query`` answers at every whole second of ``[start, end]``, with
        the staleness bound of :meth:`read` applied when a policy takes its reading."""
        first, last = math.ceil(start), math.floor(end)
        if first > last:
            return Answer(query, start, end, failure=Reading(
                error="empty", detail=f"no whole second in [{start}, {end}]"))
        outcome, attempts = self._query_range(query, first, last, 1.0, deadline)
        if isinstance(outcome, _Failure):
            return Answer(query, first, last, failure=outcome.reading(), attempts=attempts)
        return Answer(query, first, last, 1.0, tuple(outcome), attempts=attempts,
                      staleness=self._staleness)

    def answer_many(self, queries: Sequence[str], start: float, end: float, *,
                    deadline: float, history: bool = False) -> dict[str, Answer]:
        """:meth:`answer` (``history``: :meth:`answer_history`) for several queries at
        once, in one request (:func:`batch_query`). A query Prometheus rejects (400/422)
        or an answer that is not a range result fails the batch: each is then asked
        alone, so only its own policies go without data. A failure of the server itself
        (unreachable, 5xx, timeout) is every query's: asking each again would not help."""
        def ask(query: str) -> Answer:
            if history:
                return self.answer_history(query, start, end, 1.0, deadline=deadline)
            return self.answer(query, start, end, deadline=deadline)

        if len(queries) == 1:
            return {queries[0]: ask(queries[0])}
        combined = ask(batch_query(queries))
        if combined.failure is not None:
            if combined.failure.error in ("query_error", "bad_response"):
                return {q: ask(q) for q in queries}
            return {q: replace(combined, query=q) for q in queries}
        parts: list[list[_Series]] = [[] for _ in queries]
        for one in combined.series:
            k = one.labels.get(BATCH_LABEL, "")
            if k.isdigit() and int(k) < len(queries):
                parts[int(k)].append(_Series(
                    {a: b for a, b in one.labels.items() if a != BATCH_LABEL}, one.points))
        return {q: replace(combined, query=q, series=tuple(parts[k]))
                for k, q in enumerate(queries)}

    def answer_history(self, query: str, start: float, end: float, step: float = 1.0, *,
                       deadline: float | None = None,
                       chunk_points: int = MAX_POINTS_PER_QUERY) -> Answer:
        """:meth:`fetch_history` keeping every series: one warm-start query for all the
        policies that share ``query``."""
        got, attempts, span = self._history_series(query, start, end, step, deadline,
                                                   chunk_points)
        if span is None:
            return Answer(query, start, end, step, attempts=attempts, failure=got)
        return Answer(query, span[0], span[1], step, tuple(got), attempts=attempts,
                      staleness=self._staleness)

    # -- history: warm start and `scaler record` --------------------------------------

    def history(self, query: str, start: float, end: float, step: float = 1.0,
                **options: Any) -> Reading:
        """:meth:`fetch_history`'s reading (``options``: ``deadline``, ``chunk_points``)."""
        return self.fetch_history(query, start, end, step, **options).reading

    def fetch_history(
        self,
        query: str,
        start: float,
        end: float,
        step: float = 1.0,
        *,
        deadline: float | None = None,
        chunk_points: int = MAX_POINTS_PER_QUERY,
    ) -> Fetch:
        """Evaluate ``query`` every ``step`` seconds over a range of any length.

        The points fall on multiples of ``step`` (whole seconds for a 1 s step). Ranges
        longer than ``chunk_points`` steps are fetched in consecutive chunks and joined
        without duplicate timestamps. No staleness check: old data is the point here.
        ``deadline`` (a ``Clock.monotonic()`` value) bounds all chunks together and
        defaults to ``history_timeout`` from now.
        """
        got, attempts, span = self._history_series(query, start, end, step, deadline,
                                                   chunk_points)
        if span is None:
            return Fetch(got, {}, attempts)
        return _checked(query, got, span[0], span[1], attempts, step=step)

    def _history_series(
        self, query: str, start: float, end: float, step: float, deadline: float | None,
        chunk_points: int,
    ) -> tuple[Any, int, tuple[float, float] | None]:
        """Every series of ``query`` over ``[start, end]``, fetched in chunks of at most
        ``chunk_points`` steps: (series, attempts, the span covered), or (the failure's
        reading, attempts, None)."""
        if not 1 <= chunk_points <= MAX_POINTS_PER_QUERY:
            raise ValueError(f"chunk_points must be in [1, {MAX_POINTS_PER_QUERY}]")
        chunks = chunk_ranges(start, end, step, chunk_points)
        if not chunks:
            return Reading(error="empty", detail=f"no multiple of {step} s in "
                                                 f"[{start}, {end}]"), 0, None
        if deadline is None:
            deadline = self._clock.monotonic() + self._history_timeout
        series: list[_Series] = []
        attempts = 0
        for number, (chunk_start, chunk_end) in enumerate(chunks, start=1):
            where = f" (chunk {number} of {len(chunks)})" if len(chunks) > 1 else ""
            if number > 1 and self._shutdown.is_set():
                return _stopped(None, "shutting down").reading(suffix=where), attempts, None
            # A point repeated from before a chunk is old history (joined without
            # duplicates below); only points after the range are refused.
            outcome, made = self._query_range(query, chunk_start, chunk_end, step, deadline,
                                              earlier_ok=True)
            attempts += made
            if isinstance(outcome, _Failure):
                return outcome.reading(suffix=where), attempts, None
            series.extend(outcome)
            if self.on_chunk is not None:
                self.on_chunk(number, len(chunks))
        return _merge(series), attempts, (chunks[0][0], chunks[-1][1])

    # -- one query_range, with retries -------------------------------------------------

    def _query_range(
        self, query: str, start: float, end: float, step: float, deadline: float, *,
        earlier_ok: bool = False,
    ) -> tuple[list[_Series] | _Failure, int]:
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_when_event_set,
            wait_random_exponential,
        )

        attempts = 0
        last_failure: _Failure | None = None

        def attempt() -> list[_Series]:
            nonlocal attempts, last_failure
            if attempts and self._shutdown.is_set():
                # Woken from the backoff sleep by shutdown: no further request.
                raise _stopped(last_failure, "shutting down")
            now = self._clock.monotonic()
            remaining = deadline - now
            if remaining < _MIN_ATTEMPT_SECONDS:
                if last_failure is not None:
                    raise _stopped(last_failure, "deadline reached")
                raise _Failure("timeout", "the deadline passed before the first request")
            with self._not_before_lock:
                waiting = self._not_before - now
            if waiting > 0:
                # The server asked for a pause (Retry-After) that has not passed: no request.
                raise self._waiting(waiting, last_failure)
            attempts += 1
            try:
                return self._client.query_range(
                    query, start, end, step, timeout=min(self._request_timeout, remaining),
                    earlier_ok=earlier_ok)
            except _Failure as failure:
                last_failure = failure
                if failure.retry_after is not None:
                    pause = min(failure.retry_after, MAX_RETRY_AFTER)
                    with self._not_before_lock:
                        self._not_before = max(self._not_before,
                                               self._clock.monotonic() + pause)
                raise

        shortest = self._backoff[0]
        # Full jitter between the shortest and the (growing, capped) longest backoff; the
        # floor keeps a server that fails instantly from being hammered in a tight loop.
        jitter = wait_random_exponential(multiplier=shortest, min=shortest, max=self._backoff[1])

        def wait(state: RetryCallState) -> float:
            backoff = jitter(state)
            retry_after = _failure_of(state).retry_after
            if retry_after is not None and retry_after > backoff:
                # The server asked for this pause; out_of_time gives up rather than
                # shorten it.
                return min(retry_after, MAX_RETRY_AFTER)
            # Shorten the last backoff so one more attempt still fits before the deadline.
            room = deadline - self._clock.monotonic() - _MIN_ATTEMPT_SECONDS
            return max(0.0, min(backoff, room))

        def out_of_time(state: RetryCallState) -> bool:
            upcoming = state.upcoming_sleep or 0.0
            left = deadline - self._clock.monotonic() - _MIN_ATTEMPT_SECONDS
            # Stop when the pause would cross the deadline, or when not even the shortest
            # pause fits (the pause was cut short last time round).
            return upcoming > left or left < shortest

        def gave_up(state: RetryCallState) -> _Failure:
            failure = _failure_of(state)
            why = "shutting down" if self._shutdown.is_set() else "deadline reached"
            return _stopped(failure, why)

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Failure) and e.retriable),
            stop=stop_when_event_set(self._shutdown) | out_of_time,
            wait=wait,
            sleep=lambda seconds: self._clock.sleep(seconds, self._shutdown),
            retry_error_callback=gave_up,
        )
        try:
            outcome: list[_Series] | _Failure = retrying(attempt)
        except _Failure as failure:
            outcome = failure
        if isinstance(outcome, _Failure) and attempts > 1:
            outcome = outcome.with_suffix(f" ({attempts} attempts)")
        return outcome, attempts

    def _waiting(self, seconds: float, last: _Failure | None) -> _Failure:
        why = last.detail if last is not None else (
            f"{self.connection.url} asked to wait (Retry-After)")
        return _Failure(last.reason if last is not None else "http_error",
                        f"{why}; waiting out its Retry-After, {seconds:.1f} s left, no "
                        "request sent")


# ---------------------------------------------------------------------------------------
# Chunking


def chunk_ranges(
    start: float, end: float, step: float, max_points: int
) -> list[tuple[float, float]]:
    """Split the grid of multiples of ``step`` inside ``[start, end]`` into query ranges.

    Each range holds at most ``max_points`` grid points; ranges are consecutive and share
    no point. The arithmetic is in integer milliseconds, the resolution of Prometheus's
    timestamps, so long ranges neither drift nor gain or lose a point to float rounding.
    """
    step_ms = round(step * 1000)
    if step_ms < 1:
        raise ValueError(f"step must be at least 0.001 s (Prometheus's resolution), not {step}")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    first = -(-round(start * 1000) // step_ms)  # ceil
    last = round(end * 1000) // step_ms  # floor
    return [
        (k * step_ms / 1000, min(k + max_points - 1, last) * step_ms / 1000)
        for k in range(first, last + 1, max_points)
    ]


# ---------------------------------------------------------------------------------------
# Checking a result


@dataclass(frozen=True)
class _Series:
    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def _merge(chunks: Sequence[_Series]) -> list[_Series]:
    """Join per-chunk results by label set, dropping any repeated timestamp."""
    merged: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    labels: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
    for part in chunks:
        key = tuple(sorted(part.labels.items()))
        labels.setdefault(key, part.labels)
        points = merged.setdefault(key, [])
        for t, v in part.points:
            if not points or t > points[-1][0]:
                points.append((t, v))
    return [_Series(labels[key], tuple(points)) for key, points in merged.items()]


def _checked(
    query: str,
    series: Sequence[_Series],
    start: float,
    end: float,
    attempts: int,
    *,
    staleness: float | None = None,
    now: float | None = None,
    step: float = 1.0,
) -> Fetch:
    def fail(reason: str, detail: str) -> Fetch:
        return Fetch(Reading(error=reason, detail=detail), {}, attempts)

    if not series:
        return fail("empty", f"query {query!r} returned no series between "
                             f"{format_seconds(start)} and {format_seconds(end)}; check the "
                             "metric name and label matchers")
    if len(series) > 1:
        shown = ", ".join(format_labels(s.labels) for s in series[:5])
        more = f" and {len(series) - 5} more" if len(series) > 5 else ""
        return fail("multiple_series",
                    f"query {query!r} returned {len(series)} series where one was expected: "
                    f"{shown}{more}; aggregate them, e.g. sum(...)")
    (only,) = series
    # Points that are not a load are unknown seconds; only when none is left is there no data.
    points, bad = split_points(only.points)
    left_out = None
    for reason, words in (
        ("nan", "NaN (often 0/0, e.g. a ratio with no traffic)"),
        ("inf", "infinite (a division by zero)"),
        ("negative", "negative (a load cannot be)"),
        ("too_large", f"above {MAX_LOAD:.3g}, beyond any load"),
    ):
        hits = bad.get(reason)
        if hits:
            if reason == "too_large":
                big = max(v for t, v in only.points if t == hits[0])
                words = f"{words} ({big:g})"
            words = (f"query {query!r} is {words} at {format_seconds(hits[0])} "
                     f"({len(hits)} of {len(only.points)} points)")
            if not points:
                return fail(reason, words)
            if left_out is None:
                left_out = (reason, words + "; those seconds are unknown")
    if not points:
        return fail("empty", f"query {query!r} returned a series without points between "
                             f"{format_seconds(start)} and {format_seconds(end)}")
    newest = points[-1][0]
    if staleness is not None and now is not None and now - newest > staleness:
        return fail("stale", f"newest point of {query!r} is at {format_seconds(newest)}, "
                             f"{now - newest:.0f} s before {format_seconds(now)} "
                             f"(bound {staleness:g} s); the series has stopped")
    # A per-second answer accounts for every second: the ones it lacks are unknown.
    unknown = missing_seconds(points, math.ceil(start), math.floor(end)) if step == 1 else ()
    return Fetch(Reading(samples=tuple(points), unknown=unknown,
                         left_out=left_out and left_out[0],
                         detail=left_out[1] if left_out else ""),
                 dict(only.labels), attempts)


def answer_reading(result: object, query: str, start: float, end: float) -> Reading:
    """What a range query's decoded ``data.result`` says about ``[start, end]``: its
    samples, or a no-data reason. Never raises, whatever the server sent: this is the
    check every answer passes (without the staleness bound, which needs the time)."""
    try:
        series = parse_matrix(result, start, end)
    except _Failure as failure:
        return failure.reading()
    return _checked(query, series, start, end, 0).reading


# Shows a piece of a hostile answer in a message: a few levels and characters, never
# recursing into whatever depth the body had.
def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict = 2, 3, 3
    short.maxstring = short.maxother = short.maxlong = 40
    return short


_brief = _short_repr().repr

# Prometheus stamps range points in milliseconds: a point off [start, end] by more than
# rounding is not an answer to the question asked.
_RANGE_SLACK = 0.001


def parse_matrix(result: object, start: float | None = None,
                 end: float | None = None) -> list[_Series]:
    """``data.result`` of a range query over ``[start, end]``, checked field by field.

    Raises ``_Failure("bad_response")`` for anything but a list of series with
    ``[timestamp, "value"]`` points, finite timestamps inside the range. Never raises
    anything else, whatever the decoded JSON holds."""
    if not isinstance(result, list):
        raise _bad_body(f"data.result is {type(result).__name__}, not a list of series")
    series = []
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict) \
                or not isinstance(item.get("values"), list):
            raise _bad_body(f"series {_brief(item)} lacks 'metric' or 'values'")
        points = []
        for pair in item["values"]:
            if not (isinstance(pair, list) and len(pair) == 2
                    and isinstance(pair[0], int | float) and not isinstance(pair[0], bool)
                    and isinstance(pair[1], str)):
                raise _bad_body(f"point {_brief(pair)} is not [timestamp, \"value\"]")
            try:
                stamp, value = float(pair[0]), float(pair[1])
            except (ValueError, OverflowError):
                raise _bad_body(f"point {_brief(pair)} is not a number") from None
            if not math.isfinite(stamp):
                raise _bad_body(f"timestamp {_brief(pair[0])} is not a finite time")
            if end is not None and stamp > end + _RANGE_SLACK:
                raise _bad_body(f"point at {format_seconds(round(stamp, 3))} is "
                                f"{stamp - end:,.0f} s after the range asked for (to "
                                f"{format_seconds(end)}); a clock or a proxy is wrong")
            if start is not None and stamp < start - _RANGE_SLACK:
                raise _bad_body(f"point at {format_seconds(round(stamp, 3))} is "
                                f"{start - stamp:,.0f} s before the range asked for (from "
                                f"{format_seconds(start)}); a clock or a proxy is wrong")
            points.append((stamp, value))
        points.sort()
        labels = {str(k): str(v) if isinstance(v, str) else _brief(v)
                  for k, v in item["metric"].items()}
        series.append(_Series(labels, tuple(points)))
    return series


# ---------------------------------------------------------------------------------------
# Failures (internal; they become Readings at the edge of this module)


class _Failure(Exception):
    def __init__(
        self, reason: str, detail: str, *, retriable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retriable = retriable
        self.retry_after = retry_after

    def with_suffix(self, suffix: str) -> _Failure:
        return _Failure(self.reason, self.detail + suffix, retriable=self.retriable,
                        retry_after=self.retry_after)

    def reading(self, suffix: str = "") -> Reading:
        return Reading(error=self.reason, detail=self.detail + suffix)


class _Redirected(Exception):
    """Raised from the response hook: a redirect that must not be followed."""

    def __init__(self, target: str, why: str) -> None:
        super().__init__(f"redirect {why}: {target}")
        self.target = target
        self.why = why


def _stopped(failure: _Failure | None, why: str) -> _Failure:
    if failure is None:
        return _Failure("timeout", f"no attempt made: {why}")
    return _Failure(failure.reason, f"{failure.detail}; gave up: {why}")


def _failure_of(state: RetryCallState) -> _Failure:
    assert state.outcome is not None
    failure = state.outcome.exception()
    assert isinstance(failure, _Failure)
    return failure


def _bad_body(detail: str) -> _Failure:
    return _Failure("bad_response", f"response is not a Prometheus range result: {detail}")


class _HTTPStatus(Exception):
    """Raised from a response hook so the status, message and Retry-After survive."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class _TokenError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# The HTTP client: prometheus-api-client with its retries off and strict errors


class _Client:
    def __init__(self, connection: Connection) -> None:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException
        from prometheus_api_client.prometheus_connect import PrometheusConnect
        from urllib3.util.retry import Retry

        self._requests = requests
        self._api_error = PrometheusApiClientException
        self._url = connection.url.rstrip("/")
        session = requests.Session()
        session.verify = connection.ca_bundle or not connection.insecure_skip_verify
        session.max_redirects = _MAX_REDIRECTS
        # No credentials from ~/.netrc or proxies from the environment behind our back.
        session.trust_env = False
        session.hooks["response"].append(_check_response)
        auth: Any = None
        if connection.bearer_token_file:
            auth = _BearerTokenFile(connection.bearer_token_file)
        elif connection.basic_auth:
            auth = tuple(connection.basic_auth)
        self._prom = PrometheusConnect(
            url=self._url,
            headers=dict(connection.headers) or None,
            # tenacity owns retries; the library would otherwise retry 3 times with
            # backoff inside a single attempt and blow through the caller's deadline.
            retry=Retry(total=0),
            auth=auth,
            session=session,
        )

    def close(self) -> None:
        self._prom.close()

    def query_range(
        self, query: str, start: float, end: float, step: float, *, timeout: float,
        earlier_ok: bool = False,
    ) -> list[_Series]:
        requests = self._requests
        try:
            result = self._prom.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, tz=UTC),
                end_time=datetime.fromtimestamp(end, tz=UTC),
                step=format_seconds(step),
                # The library rounds start/end to whole seconds; explicit params (merged
                # last) keep sub-second grids exact.
                params={"start": format_seconds(start), "end": format_seconds(end)},
                timeout=timeout,
            )
        except _Redirected as e:
            raise _Failure("http_error", f"{self._url} answered with a redirect {e.why} "
                                         f"({e.target}); not followed, because the headers "
                                         "and credentials would go along: point the URL at "
                                         "the final address") from e
        except _HTTPStatus as e:
            if e.status in (400, 422):
                raise _Failure("query_error",
                               f"Prometheus rejected the query ({e.status}): {e.message}") from e
            raise _Failure("http_error", f"HTTP {e.status} from {self._url}: {e.message}",
                           retriable=e.status in _RETRIABLE_STATUS,
                           retry_after=e.retry_after) from e
        except _TokenError as e:
            raise _Failure("unreachable", str(e)) from e
        except RecursionError as e:
            raise _bad_body("body is nested too deeply to be a range result") from e
        except requests.exceptions.JSONDecodeError as e:
            raise _bad_body(f"body is not JSON ({_brief(str(e))})") from e
        except (ValueError, OverflowError) as e:   # e.g. a number of 5,000 digits
            raise _bad_body(f"body is not JSON Python can read ({_brief(str(e))})") from e
        except (KeyError, TypeError, IndexError) as e:
            raise _bad_body(f"no data.result in the body ({e!r})") from e
        except requests.exceptions.Timeout as e:
            raise _Failure("timeout", f"no answer from {self._url} within {timeout:.2f} s",
                           retriable=True) from e
        except requests.exceptions.SSLError as e:
            # A certificate problem will not fix itself within a tick: no retry.
            raise _Failure("unreachable", f"TLS with {self._url} failed: {_cause(e)}") from e
        except requests.exceptions.ConnectionError as e:
            if "timed out" in _cause(e):
                # requests reports a read timeout during the body as a ConnectionError.
                raise _Failure("timeout", f"answer from {self._url} did not arrive within "
                                          f"{timeout:.2f} s", retriable=True) from e
            raise _Failure("unreachable", f"cannot reach {self._url}: {_cause(e)}",
                           retriable=True) from e
        except (requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as e:
            raise _bad_body(f"broken body ({_cause(e)})") from e
        except requests.exceptions.TooManyRedirects as e:
            raise _Failure("http_error", f"{self._url} redirected more than "
                                         f"{_MAX_REDIRECTS} times") from e
        except requests.exceptions.RequestException as e:
            raise _Failure("unreachable", f"request to {self._url} failed: {_cause(e)}") from e
        except self._api_error as e:
            # A status the hook let through but the library refuses: 2xx/3xx other than 200.
            raise _Failure("http_error", f"unexpected answer from {self._url}: "
                                         f"{str(e)[:200]}") from e
        return parse_matrix(result, None if earlier_ok else start, end)


def _check_response(response: requests.Response, *args: object, **kwargs: object) -> None:
    """requests response hook, run on every answer (redirects included) before the
    library sees it: refuse a redirect that would leak, and turn 4xx/5xx into an
    exception that keeps the details.

    The library would raise its own exception with the status folded into a string and
    without headers; Retry-After and Prometheus's error message are needed here.
    """
    if response.is_redirect:
        target = urljoin(response.url, response.headers.get("location", ""))
        why = redirect_problem(response.url, target)
        if why is not None:
            response.close()
            raise _Redirected(split_userinfo(target)[0], why)
        return
    if response.status_code < 400:
        return
    body = response.content  # read it now so the connection goes back to the pool
    message = body[:200].decode("utf-8", "replace").strip()
    try:
        parsed = response.json()
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            message = parsed["error"]
    except ValueError:
        pass
    retry_after: float | None = None
    header = response.headers.get("Retry-After", "")
    if header.strip().isdigit():
        retry_after = float(header)
    raise _HTTPStatus(response.status_code, message or response.reason or "", retry_after)


class _BearerTokenFile:
    """requests auth: ``Authorization: Bearer <token>`` from a file, re-read on change.

    The file is stat'ed per request (cheap) and read again when its inode, mtime or size
    changes; a Kubernetes projected token is swapped by symlink, which changes the inode.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._header = ""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._current()
        return request

    def _current(self) -> str:
        try:
            st = os.stat(self._path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            with self._lock:
                if stamp != self._stamp:
                    with open(self._path, encoding="utf-8") as f:
                        token = f.read().strip()
                    if not token:
                        raise _TokenError(f"bearer token file {self._path} is empty")
                    self._header, self._stamp = f"Bearer {token}", stamp
                return self._header
        except OSError as e:
            raise _TokenError(f"cannot read bearer token file {self._path}: "
                              f"{e.strerror or e}") from e


def _cause(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, in words ("Connection refused")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    deepest = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        deepest = current
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__
    strerror = getattr(deepest, "strerror", None)
    if isinstance(strerror, str) and type(deepest).__module__ != "ssl":
        return strerror
    return str(deepest)[:300]

