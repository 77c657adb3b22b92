"""The daemon's loop: for every policy, every tick — query, record, decide, act.

Ticks fall on multiples of the policy's tickInterval in unix seconds, exactly as in
replay, and tick T is processed ``evaluation_delay`` seconds after T so that Prometheus
has ingested every scrape stamped at or before T. At tick T the loop:

1. evaluates the query at every whole second since the last one it recorded, up to T
   (1 s buckets, like Knative's scraper); the first time, it refills the windows with a
   stable window of history, so a restarted daemon decides as if it had never stopped.
   Seconds the answer lacks are unknown to the windows, never zero load; an answer with a
   point outside the range asked for is bad data and is not recorded;
2. reads the target's replicas and ready replicas;
3. runs the policy's :class:`~scaler.decide.pipeline.PolicyScaler` with now = T — the
   same code replay runs. A failed, empty or stale query is "no data": the count is
   held, never lowered, never taken to zero;
4. writes a changed count through the actuator, unless the target is paused or this
   process is not the leader; a 409 means re-read and decide again. (A dry run is an
   actuator that only reports its writes: the loop does not know it is one.)

A target that fails is said once, not every tick (``faults``): one error line and, when it
will not fix itself (forbidden, missing, no scale subresource), one Warning Event, then
backoff until it works again; a run of 409s is one warning naming the other writer.

Time comes from an injected clock and sleeps wake early on shutdown and reload, so tests
drive the loop with a manual clock. Signals only set events; the work happens here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import structlog

from scaler.actuators import Actuator, ActuatorError, Conflict, ScaleStatus
from scaler.clock import Clock
from scaler.daemon.activator import ActivatorHooks
from scaler.daemon.faults import MAX_BACKOFF, TargetFaults
from scaler.daemon.observability import Metrics
from scaler.decide.kpa import go_ceil
from scaler.decide.pipeline import PolicyScaler, TickResult
from scaler.policy import Policy, PolicyError
from scaler.policy import files as policy_files
from scaler.sources import MetricSource, Reading, bad_value
from scaler.sources import shared
from scaler.sources.shared import Read

# Share of a tick the metric query may use, retries included; the actuator's calls must
# end by TICK_SHARE, so one slow dependency cannot push a tick past the next.
QUERY_SHARE = 0.5
TICK_SHARE = 0.9
# Queries (one per shared query string) and scale writes in flight at once: enough that
# one slow answer does not hold the rest of a pass up, few enough to be gentle with
# Prometheus and the API server.
CONCURRENCY = 4
# Distinct query strings sent to Prometheus in one request (scaler.sources.shared).
QUERY_BATCH = 50
# Late ticks are counted each time but said at most this often (seconds).
OVERRUN_LOG_INTERVAL = 60.0
# The origin of the --policy files among the policy sources (Daemon.set_policies).
FILES = "files"


@dataclass(frozen=True)
class TickReport:
    """What one policy's tick came to, for whoever listens (a status writer)."""

    policy: str
    t: float
    action: str                      # scaled, would_scale, none, hold, paused, standby,
                                     # backoff, conflict, error
    result: TickResult | None        # None when the target could not be read
    current: int | None = None
    ready: int | None = None
    no_data: str | None = None       # the metric's no-data reason, if any
    error: str | None = None         # the actuator's error reason, if any


@dataclass
class Target:
    """A policy and everything the loop keeps for it between ticks."""

    policy: Policy
    scaler: PolicyScaler
    next_tick: float
    recorded_until: int | None = None   # last second evaluated into the windows
    no_data: str | None = None          # current no-data reason, logged when it changes
    left_out: str | None = None         # why points were last left out as unknown, likewise
    last_value: float | None = None
    last_action: str = ""
    ticks: int = 0
    forecast_warm: bool = False         # forecast history read (or tried) once
    read_faults: TargetFaults = field(default_factory=TargetFaults)
    write_faults: TargetFaults = field(default_factory=TargetFaults)
    served: bool = True                 # this replica works on it (its bucket is held)

    @property
    def name(self) -> str:
        return self.policy.name


def first_tick(policy: Policy, now: float, evaluation_delay: float = 0.5) -> float:
    """The latest tick already due at ``now``: a (re)started daemon decides at once
    instead of waiting for the next tick boundary."""
    step = policy.tick_interval
    return math.floor((now - evaluation_delay) / step) * step


@dataclass
class Daemon(ActivatorHooks):
    policies: list[Policy]
    source: MetricSource
    actuator: Actuator
    clock: Clock
    metrics: Metrics
    policy_path: Path | None = None
    is_leader: Callable[[], bool] | None = None   # None: no leader election, always write
    evaluation_delay: float = 0.5
    staleness: float = 10.0     # warm-start history older than this is "stale"
    stop: threading.Event = field(default_factory=threading.Event)
    reload: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    log: structlog.typing.FilteringBoundLogger = field(
        default_factory=lambda: structlog.get_logger("scaler"))
    # Policies with an activator block (scaler.daemon.activator): where metric.source
    # activator reads, the serve/proxy switch, and the pokes waiting for the loop.
    activator_source: MetricSource | None = None
    traffic: Any = None
    pokes: Any = None
    # With --shard (scaler.daemon.buckets.Shards): which policies this replica works on
    # (``serves(policy)``) and may write for at this moment (``may_write(policy)``).
    shards: Any = None
    concurrency: int = CONCURRENCY
    # "all": one line per policy per tick; "changes": only ticks that act or have no
    # data (thousands of steady targets otherwise log hundreds of lines a second).
    tick_log: str = "all"

    def __post_init__(self) -> None:
        # Read at scrape time, not copied once per pass: a replica that wins the lease in
        # the middle of a pass writes at once, and its gauge must already say so.
        is_leader = self.is_leader
        self.metrics.leader.set_function(
            lambda: 1.0 if is_leader is None or is_leader() else 0.0)
        now = self.clock.now()
        self.targets: dict[str, Target] = {
            p.name: Target(p, PolicyScaler(p), first_tick(p, now, self.evaluation_delay))
            for p in self.policies}
        self._fingerprint = policy_files.fingerprint(self.policy_path) if self.policy_path else ()
        self.last_loop: float | None = None     # monotonic time of the last loop pass
        self.stop_requested_at: float | None = None   # monotonic, for the shutdown budget
        self.queried_ok = False
        self._last_replicas: dict[str, int] = {}    # each policy's last decision (pokes)
        self.metrics.reload_success.set(1)
        self.metrics.reload_time.set(now)
        # Policy sources (set_policies): origin -> its whole current set. The files'
        # set is the one the daemon was built with.
        self._origins: dict[str, list[Policy]] = {FILES: list(self.policies)}
        self._origins_changed = False
        self._origins_lock = threading.Lock()
        self._listeners: list[Callable[[TickReport], None]] = []
        self._listener_failed: set[int] = set()
        self._refused: set[tuple[str, str]] = set()   # (origin, name) clashes already said
        self._pool: ThreadPoolExecutor | None = None
        self._prefetched: dict[str, Reading | Exception] = {}
        self._writes: list[Future] | None = None    # a pass's writes in flight
        self._overruns_unsaid = 0
        self._overruns_said_at = -math.inf

    # ------------------------------------------------------------ policies in, results out

    def set_policies(self, origin: str, policies: Iterable[Policy]) -> None:
        """Replace the whole set of policies from ``origin`` (thread-safe; ``[]`` removes
        them). The loop swaps the union of all origins in at the start of its next pass;
        a name another origin already uses is refused for that policy, the first origin
        (files first) keeps it."""
        with self._origins_lock:
            self._origins[origin] = list(policies)
            self._origins_changed = True
        self.wake.set()

    def origin(self, name: str) -> list[Policy]:
        """The policies ``name`` last set (e.g. the files', for a clash check)."""
        with self._origins_lock:
            return list(self._origins.get(name, ()))

    def add_tick_listener(self, listener: Callable[[TickReport], None]) -> None:
        """Call ``listener`` on the loop's thread after every tick of every policy this
        replica works on. It must return fast (queue the work) and is never allowed to
        break the loop: an exception is logged once per listener and ignored."""
        self._listeners.append(listener)

    def _report(self, report: TickReport) -> None:
        for listener in self._listeners:
            try:
                listener(report)
            except Exception:
                if id(listener) not in self._listener_failed:
                    self._listener_failed.add(id(listener))
                    self.log.exception("tick listener failed; it is kept but not said again",
                                       policy=report.policy)

    def _merged_policies(self) -> list[Policy]:
        with self._origins_lock:
            self._origins_changed = False
            origins = sorted(self._origins.items(), key=lambda kv: (kv[0] != FILES, kv[0]))
        merged: dict[str, Policy] = {}
        for origin, policies in origins:
            for p in policies:
                if p.name in merged:
                    if (origin, p.name) not in self._refused:   # said once, not every swap
                        self._refused.add((origin, p.name))
                        self.log.error("policy name already used by another source; ignored",
                                       policy=p.name, origin=origin, source=p.source)
                    continue
                merged[p.name] = p
        return list(merged.values())

    # ---------------------------------------------------------------- health, lifecycle

    def healthy(self) -> tuple[bool, str]:
        if self.last_loop is None:
            return True, "starting"
        limit = 3 * max((t.policy.tick_interval for t in self.targets.values()), default=2.0)
        age = self.clock.monotonic() - self.last_loop
        if age > limit + self.evaluation_delay:
            return False, f"loop has not ticked for {age:.1f}s (limit {limit:g}s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.targets:
            return False, "no policies loaded"
        if not self.queried_ok and (self.shards is None or self.shards.held()):
            # A sharded replica holding no bucket has nothing to query: it is ready to
            # take buckets over, and must not hold a rollout up.
            return False, "no successful metric query yet"
        return True, "ok"

    def request_stop(self) -> None:
        if self.stop_requested_at is None:
            self.stop_requested_at = self.clock.monotonic()
        self.stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        self.reload.set()
        self.wake.set()

    def run(self) -> None:
        """Tick until :meth:`request_stop`."""
        self.log.info("started", policies=_shown(self.targets))
        while not self.stop.is_set():
            # Cleared before the pass, so a poke queued during it cuts the next sleep short.
            self.wake.clear()
            self.run_once()
            wait = self._seconds_to_next_tick()
            if not self.stop.is_set() and not self.reload.is_set():
                self.clock.sleep(min(wait, 1.0), self.wake)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.log.info("stopped")

    def run_once(self) -> None:
        """One pass: reload if asked or if a policy file changed, then every due tick."""
        try:
            if self.reload.is_set() or self._files_changed():
                self.reload.clear()
                self.reload_policies()
        except Exception:   # e.g. the policy directory became unreadable
            self.metrics.reload_success.set(0)
            self.log.exception("policy reload failed; keeping the running policies")
        if self._origins_changed:
            self._swap(self._merged_policies())
        self._take_pokes()
        now = self.clock.now()
        due: list[tuple[Target, float]] = []
        for target in list(self.targets.values()):
            if not self._serves(target):
                continue
            ready_at = now - self._evaluation_delay(target.policy)
            if target.next_tick > ready_at:
                continue
            step = target.policy.tick_interval
            # After a stall, process only the latest due tick: its query covers the
            # seconds in between, and old ticks have nothing left to act on.
            tick = math.floor(ready_at / step) * step
            skipped = round((tick - target.next_tick) / step)
            if skipped > 0 and target.ticks:
                self._overran(skipped)
            target.next_tick = tick + step
            due.append((target, tick))
        self._prefetch(due)
        self._writes = []
        try:
            for target, tick in due:
                if self.stop.is_set():
                    break
                try:
                    self.tick(target, tick)
                except Exception:
                    self._tick_failed(target)
        finally:
            writes, self._writes = self._writes, None
            for future in writes:
                future.result()     # _finish never raises: it catches its own failures
            self._prefetched.clear()
        self.metrics.targets_served.set(sum(1 for t in self.targets.values() if t.served))
        self.last_loop = self.clock.monotonic()

    def _tick_failed(self, target: Target) -> None:
        # A bug or an answer nobody foresaw must not stop the other policies or the
        # daemon: this tick holds (nothing was written), the next one retries.
        self.metrics.tick_errors.labels(target.name).inc()
        self.log.exception("tick failed; holding replicas", policy=target.name)

    def _serves(self, target: Target) -> bool:
        """Whether this replica works on the target now (with --shard: its bucket is
        held). A target given up starts afresh when its bucket comes back: new windows
        from history, a new decider, as a restarted daemon would."""
        serves = self.shards is None or self.shards.serves(target.policy)
        if serves and not target.served:
            p = target.policy
            target.scaler = PolicyScaler(p)
            target.recorded_until, target.forecast_warm, target.ticks = None, False, 0
            target.next_tick = first_tick(p, self.clock.now(), self._evaluation_delay(p))
        elif not serves and target.served:
            # Another replica reports it now: no stale gauges here.
            self.metrics.forget(target.name)
        target.served = serves
        return serves

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.concurrency),
                                            thread_name_prefix="scaler-io")
        return self._pool

    def _prefetch(self, due: list[tuple[Target, float]]) -> None:
        """Every due tick's metric read at once: one query per shared query string, a few
        in flight (scaler.sources.shared)."""
        started = self.clock.monotonic()
        reads = []
        for target, tick in due:
            read = self._plan(target, tick, started + target.policy.tick_interval * QUERY_SHARE)
            if read is not None:
                reads.append(read)
        if not reads:
            return
        self._prefetched = shared.read_all(
            reads, self._executor() if len(reads) > 1 else None,
            on_query=lambda _size: self.metrics.shared_queries.inc(), batch=QUERY_BATCH)

    def _overran(self, count: int) -> None:
        """Count late or skipped policy-ticks; say so at most once a minute."""
        self.metrics.tick_overruns.inc(count)
        self._overruns_unsaid += count
        now = self.clock.monotonic()
        if now - self._overruns_said_at >= OVERRUN_LOG_INTERVAL:
            self.log.warning("ticks overran: the loop is behind", late_or_skipped=(
                self._overruns_unsaid), targets=len(self.targets),
                hint="shard over more replicas (--shard) or lengthen tickInterval")
            self._overruns_unsaid, self._overruns_said_at = 0, now

    def _seconds_to_next_tick(self) -> float:
        if not self.targets:
            return 1.0
        due = min(t.next_tick + self._evaluation_delay(t.policy)
                  for t in self.targets.values())
        return max(0.0, due - self.clock.now())

    def _files_changed(self) -> bool:
        if self.policy_path is None:
            return False
        return policy_files.fingerprint(self.policy_path) != self._fingerprint

    # ----------------------------------------------------------------------- reload

    def reload_policies(self) -> bool:
        """Validate every file, then swap atomically; on any error keep what runs."""
        if self.policy_path is None:    # no files: only other origins (SIGHUP re-reads)
            self._swap(self._union())
            return True
        self._fingerprint = policy_files.fingerprint(self.policy_path)
        try:
            policies = policy_files.load(self.policy_path)
        except PolicyError as exc:
            self.metrics.reload_success.set(0)
            self.log.error("policy reload failed; keeping the running policies",
                           errors=exc.errors)
            return False
        with self._origins_lock:
            self._origins[FILES] = list(policies)
        self._swap(self._merged_policies())
        self.metrics.reload_success.set(1)
        self.metrics.reload_time.set(self.clock.now())
        return True

    def _swap(self, policies: list[Policy]) -> None:
        """Put ``policies`` in place of the running ones; a policy with the same name,
        query, select, windows and target keeps its windows and decider."""
        now = self.clock.now()
        targets: dict[str, Target] = {}
        for p in policies:
            old = self.targets.get(p.name)
            if (old is not None and old.scaler.same_windows(p)
                    and old.policy.scale_target_ref == p.scale_target_ref):
                # Same query and windows: the history stays, like Knative's Update().
                if old.scaler.update_policy(p):
                    old.forecast_warm = False    # a new forecaster: read its history again
                old.policy = p
                targets[p.name] = old
            else:
                targets[p.name] = Target(p, PolicyScaler(p),
                                         first_tick(p, now, self.evaluation_delay))
        for gone in set(self.targets) - set(targets):
            self.metrics.forget(gone)
        self.targets = targets
        self.log.info("policies reloaded", policies=_shown(targets))

    # ------------------------------------------------------------------------- tick

    def tick(self, target: Target, t: float, *, refresh: bool = True) -> TickResult | None:
        started = self.clock.monotonic()
        p = target.policy
        deadline = started + p.tick_interval * QUERY_SHARE
        # A poked tick decides on the windows as they are (the poke was just recorded).
        reading = self._refresh(target, t, deadline) if refresh else Reading(samples=())
        act_by = started + p.tick_interval * TICK_SHARE
        if target.read_faults.waiting(started) > 0:
            # Backing off from a target that cannot be read: said once, counted each tick.
            self.metrics.patch_errors.labels(p.name, target.read_faults.error).inc()
            self._report(TickReport(p.name, t, "backoff", None, no_data=reading.error,
                                    error=target.read_faults.error))
            return None
        try:
            status = self.actuator.read(p.scale_target_ref, deadline=act_by)
        except ActuatorError as exc:
            self._failed(target, target.read_faults, exc, "cannot read target",
                         "FailedGetScale", act_by)
            self._report(TickReport(p.name, t, "error", None, no_data=reading.error,
                                    error=exc.reason))
            return None
        self._recovered(target, target.read_faults, "target readable again")
        result = target.scaler.tick(t, status.ready_replicas, status.replicas,
                                    hold=not reading.ok)
        writes = self._writes
        if (writes is not None and p.activator is None and result.decision.valid
                and result.replicas != status.replicas and not status.paused):
            # A write: in flight beside the others', a few at once; the pass waits for it.
            writes.append(self._executor().submit(
                self._finish, target, t, status, result, reading, act_by, started))
        else:
            self._finish(target, t, status, result, reading, act_by, started)
        return result

    def _finish(self, target: Target, t: float, status: ScaleStatus, result: TickResult,
                reading: Reading, act_by: float, started: float) -> None:
        """Act on a decision, then say what happened (log line, metrics, listeners)."""
        try:
            action = self._act(target, t, status, result, act_by)
            self._after_tick(target, status, result, act_by)
            target.ticks += 1
            self._observe(target, status, result, reading, action)
            done = self.clock.monotonic()
            self.metrics.tick_duration.observe(done - started)
            if self.clock.now() > t + target.policy.tick_interval + self._evaluation_delay(
                    target.policy):
                self._overran(1)    # decided after its next tick was due
            self._report(TickReport(target.name, t, action, result, status.replicas,
                                    status.ready_replicas, reading.error,
                                    target.write_faults.error if action == "error" else None))
        except Exception:
            self._tick_failed(target)

    def _plan(self, target: Target, t: float, deadline: float) -> Read | None:
        """The read that brings the windows up to second ``t`` (a stable window of history
        the first time), or None when nothing is new since the last tick."""
        p = target.policy
        end = int(t)
        # Never ask for more than a stable window: older seconds could not change the
        # windows, and after a long outage the range would outgrow what Prometheus
        # answers in one query.
        window_start = end - p.stable_window + 1
        source, query = self._metric_of(p)
        select = p.metric.select if p.metric.source == "prometheus" else ()
        if target.recorded_until is None:
            return Read(target.name, source, query, window_start, end, deadline, select,
                        history=True)
        start = max(target.recorded_until + 1, window_start)
        if start > end:
            return None
        return Read(target.name, source, query, start, end, deadline, select)

    def _refresh(self, target: Target, t: float, deadline: float) -> Reading:
        """Bring the windows up to second ``t``; warm-start them the first time. The
        reading comes from the pass's shared queries when it was read there."""
        read = self._plan(target, t, deadline)
        if read is None:
            return Reading(samples=())   # nothing new since the last tick
        reading = self._prefetched.pop(target.name, None)
        if reading is None:
            reading = shared.read_all([read])[target.name]
        if isinstance(reading, Exception):
            raise reading
        return self._record(target, read, reading, deadline)

    def _record(self, target: Target, read: Read, reading: Reading,
                deadline: float) -> Reading:
        p = target.policy
        start, end = read.start, read.end
        reading = _in_range(reading, start, end)
        if read.history:
            if reading.ok and reading.samples and reading.samples[-1][0] < end - self.staleness:
                # A restart must not act on history that stopped long ago.
                reading = Reading(error="stale", detail=(
                    f"newest sample is {end - reading.samples[-1][0]:.0f}s old at warm start"))
            if reading.ok and target.scaler.forecaster is not None and not target.forecast_warm:
                self._warm_forecaster(target, start - 1, deadline)
        if reading.ok:
            target.scaler.observe(reading.samples, reading.unknown)
            # Not a hold, so not in scaler_metric_errors_total (its alert says "holds
            # replicas"): logged when it starts, and each tick's line counts the seconds.
            if reading.left_out is not None and target.left_out != reading.left_out:
                self.log.warning("metric points left out as unknown", policy=p.name,
                                 reason=reading.left_out, detail=reading.detail)
            target.left_out = reading.left_out
            if reading.samples:
                target.last_value = reading.samples[-1][1]
            target.recorded_until = end
            self.queried_ok = True
            if target.no_data is not None:
                self.log.info("metric recovered", policy=p.name, after=target.no_data)
            target.no_data = None
        else:
            self.metrics.metric_errors.labels(p.name, reading.error).inc()
            if target.no_data != reading.error:
                self.log.warning("metric has no data; holding replicas", policy=p.name,
                                 reason=reading.error, detail=reading.detail)
            target.no_data = reading.error
        return reading

    def _warm_forecaster(self, target: Target, end: int, deadline: float) -> None:
        """Feed the forecaster the past before the windows' (at its 1-minute grid): as
        much as lets its model act at once (``PredictionPolicy.warm_history``).

        Done once, after the windows are warm and with the time left in the tick: a
        failure only means the forecast warms up live; the reactive decisions never wait
        for it."""
        target.forecast_warm = True
        span = target.policy.prediction.warm_history
        if deadline - self.clock.monotonic() < 0.05:
            self.log.warning("no time left to read forecast history; prediction warms up live",
                             policy=target.name)
            return
        source, query = self._metric_of(target.policy)
        select = target.policy.metric.select
        if select and hasattr(source, "answer_history"):
            reading = source.answer_history(query, end - span, end, 60.0,
                                            deadline=deadline).reading(select)
        else:
            reading = source.history(query, end - span, end, step=60.0, deadline=deadline)
        if reading.ok:
            for ts, value in reading.samples:
                target.scaler.forecaster.observe(ts, value)
        else:
            self.log.warning("forecast history unavailable; prediction warms up live",
                             policy=target.name, reason=reading.error, detail=reading.detail)

    def _act(self, target: Target, t: float, status: ScaleStatus, result: TickResult,
             act_by: float) -> str:
        p = target.policy
        self.metrics.paused.labels(p.name).set(1 if status.paused else 0)
        if not result.decision.valid:
            return "hold"
        if result.replicas == status.replicas:
            return "none"
        if status.paused:
            return "paused"
        if not self._may_write(p):
            return "standby"
        if target.write_faults.waiting(self.clock.monotonic()) > 0:
            self.metrics.patch_errors.labels(p.name, target.write_faults.error).inc()
            return "backoff"
        for attempt in (1, 2):
            try:
                written = self._write(
                    p,
                    p.scale_target_ref, result.replicas,
                    resource_version=status.resource_version,
                    reason=_event_reason(status.replicas, result.replicas),
                    message=explain(p, result), deadline=act_by,
                )
            except Conflict:
                self.metrics.conflicts.labels(p.name).inc()
                storm = target.write_faults.conflict()
                if attempt == 2:
                    if storm:
                        self._conflict_storm(target, status, act_by)
                    return "conflict"
                # Someone else changed the target: decide again from what it is now.
                try:
                    status = self.actuator.read(p.scale_target_ref, deadline=act_by)
                except ActuatorError as exc:
                    self.metrics.patch_errors.labels(p.name, exc.reason).inc()
                    return "error"
                if storm:
                    self._conflict_storm(target, status, act_by)
                result = target.scaler.tick(t, status.ready_replicas, status.replicas,
                                            hold=not result.decision.valid)
                if result.replicas == status.replicas:
                    return "none"
                if status.paused:
                    return "paused"
                if self.stop.is_set() or not self._may_write(p):
                    return "standby"
                continue
            except _NotMine:
                return "standby"
            except ActuatorError as exc:
                self._failed(target, target.write_faults, exc, "scale failed", "FailedRescale",
                             act_by, replicas=result.replicas)
                return "error"
            self._recovered(target, target.write_faults, "target writable again")
            target.write_faults.wrote()
            if not written:
                return "would_scale"   # a dry run: reported, not written
            direction = "up" if result.replicas > status.replicas else "down"
            self.metrics.scale_actions.labels(p.name, direction).inc()
            return "scaled"
        return "conflict"

    def _may_write(self, policy: Policy) -> bool:
        if self.is_leader is not None and not self.is_leader():
            return False
        return self.shards is None or self.shards.may_write(policy)

    def _write(self, policy: Policy, *args: Any, **kwargs: Any) -> bool:
        """The actuator's scale(), under the shard's claim when sharded: the bucket cannot
        be handed over while the write is in flight (a refusal is "standby")."""
        if self.shards is None:
            return self.actuator.scale(*args, **kwargs)
        with self.shards.writing(policy) as allowed:
            if not allowed:
                raise _NotMine()
            return self.actuator.scale(*args, **kwargs)

    # ------------------------------------------------------------------ failing targets

    def _failed(self, target: Target, faults: TargetFaults, exc: ActuatorError, what: str,
                event_reason: str, act_by: float, **context: object) -> None:
        """Count every failure; say each one once; warn the target's owners (a Warning
        Event) once when it will not fix itself, and back off from the target."""
        p = target.policy
        self.metrics.patch_errors.labels(p.name, exc.reason).inc()
        if exc.reason == "shutdown" or self.stop.is_set():
            return
        failure = faults.failed(exc.reason, self.clock.monotonic(), p.tick_interval)
        if failure.first:
            backoff = ({"retry_in": failure.retry_in, "backoff_max": MAX_BACKOFF}
                       if failure.permanent else {})
            self.log.error(what, policy=p.name, target=str(p.scale_target_ref),
                           reason=exc.reason, detail=exc.detail, **context, **backoff)
        if failure.warn:
            self.actuator.warn(p.scale_target_ref, event_reason, (
                f"{exc.reason}: {exc.detail}; scaler will try again with backoff (up to "
                f"every {MAX_BACKOFF:g}s) and holds the replica count meanwhile"),
                deadline=act_by)

    def _recovered(self, target: Target, faults: TargetFaults, what: str) -> None:
        was = faults.succeeded()
        if was is not None:
            self.log.info(what, policy=target.name, after=was)

    def _conflict_storm(self, target: Target, status: ScaleStatus, act_by: float) -> None:
        p = target.policy
        other = status.replicas_owner
        who = (f"{other} keeps setting spec.replicas (managedFields)" if other else
               "managedFields do not say who")
        message = (f"{target.write_faults.conflicts} scale writes in a row were refused "
                   f"because the target changed meanwhile (409); {who}. Two autoscalers "
                   "on one target fight: remove one (e.g. an HPA) or pause scaler with "
                   "the annotation scaler/paused: \"true\"")
        self.log.warning("scale writes keep conflicting", policy=p.name,
                         target=str(p.scale_target_ref), conflicts=target.write_faults.conflicts,
                         other_writer=other or None, detail=message)
        self.actuator.warn(p.scale_target_ref, "ScaleConflict", message, deadline=act_by)

    def _observe(self, target: Target, status: ScaleStatus, result: TickResult,
                 reading: Reading, action: str) -> None:
        p = target.policy
        m = self.metrics
        m.current.labels(p.name).set(status.replicas)
        m.ready.labels(p.name).set(status.ready_replicas)
        m.panic_mode.labels(p.name).set(1 if result.in_panic else 0)
        if result.decision.valid:
            m.desired.labels(p.name).set(result.replicas)
            m.stable.labels(p.name).set(result.stable)
            if result.panic is not None:   # None: the panic window alone had no data
                m.panic.labels(p.name).set(result.panic)
        advice = result.advice
        forecast = {}
        if advice is not None:
            m.forecast_active.labels(p.name).set(1 if advice.active else 0)
            if advice.upper is not None:
                m.forecast.labels(p.name).set(advice.upper)
            forecast = dict(forecast=advice.upper, forecast_point=advice.point,
                            forecast_state=advice.reason, floor=result.floor)
        if self.tick_log == "changes" and action == "none" and reading.ok:
            return
        tv = p.target_value
        self.log.info(
            "tick", policy=p.name, t=result.now, value=target.last_value,
            stable=result.stable, panic=result.panic, panic_mode=result.in_panic,
            raw_stable=_raw_count(result.stable, tv), raw_panic=_raw_count(result.panic, tv),
            decider=result.decision.desired_pods if result.decision.valid else None,
            replicas=result.replicas, current=status.replicas, ready=status.ready_replicas,
            min=p.min_replicas, max=p.max_replicas, grace_remaining=result.grace_remaining,
            no_data=reading.error, unknown=len(reading.unknown), action=action, **forecast,
            **({"schedule": result.schedule, "schedule_floor": result.schedule_floor}
               if result.schedule else {}),
        )


class _NotMine(Exception):
    """The bucket of a target was given up between the decision and the write."""


def _shown(names: Iterable[str]) -> list[str] | int:
    """Policy names for a log line: all of them when few, else how many."""
    names = sorted(names)
    return names if len(names) <= 20 else len(names)


def _in_range(reading: Reading, start: int, end: int) -> Reading:
    """The reading, or a ``bad_response`` if a point lies outside the seconds asked for
    (``start - 1 < t <= end``) or is not a load: an answer that wrong is not recorded at
    all (a single point stamped an hour ahead would otherwise hold the windows hostage)."""
    if not reading.ok:
        return reading
    for t, value in reading.samples:
        if not start - 1 < t <= end:
            return Reading(error="bad_response", detail=(
                f"the answer holds a point at {t:.3f}, outside the seconds asked for "
                f"({start}..{end}); nothing of it was recorded"))
        if bad_value(value) is not None:
            return Reading(error="bad_response", detail=(
                f"the answer holds {value!r} at {t:.3f}, which is not a load"))
    if any(not start <= s <= end for s in reading.unknown):
        return Reading(error="bad_response", detail=(
            f"the answer marks seconds outside {start}..{end} unknown"))
    return reading


def _raw_count(average: float | None, target_value: float) -> int | float | None:
    """The decider's raw count for the log: ceil(average / target value), a whole number
    (+Inf stays +Inf, as in the decider)."""
    if average is None:
        return None
    count = go_ceil(average / target_value)
    return int(count) if math.isfinite(count) else count


def _event_reason(current: int, replicas: int) -> str:
    if replicas == 0:
        return "ScaledToZero"
    return "ScaledUp" if replicas > current else "ScaledDown"


def explain(policy: Policy, result: TickResult) -> str:
    """The message of the Kubernetes Event for a scale: what the decision was made of."""
    mode = "panic" if result.in_panic else "stable"
    parts = [f"{result.current} -> {result.replicas} replicas ({mode} mode)",
             f"stable {result.stable:g}, panic "
             f"{'unknown' if result.panic is None else format(result.panic, 'g')} against "
             f"{policy.target_value:g} per replica",
             f"decider wanted {result.decision.desired_pods}"]
    bounds = []
    if policy.min_replicas:
        bounds.append(f"min {policy.min_replicas}")
    if policy.max_replicas:
        bounds.append(f"max {policy.max_replicas}")
    if bounds:
        parts.append("clamped to " + ", ".join(bounds))
    if result.replicas == 0:
        parts.append(f"no demand for the {policy.scale_to_zero_grace_period:g}s grace period")
    return "; ".join(parts)
