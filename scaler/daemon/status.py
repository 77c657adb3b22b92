"""The status of each ScalingPolicy object: what the daemon does with it, for ``kubectl get``.

Written through the status subresource (``update`` on ``scalingpolicies/status``, all the
Role grants), only when it changed and at most every ``min_interval`` seconds per object,
only by the leader, never under ``--dry-run``:

* ``observedGeneration``: the generation the daemon last read (valid or not);
* ``desiredReplicas``, ``currentReplicas``, ``readyReplicas``, ``inPanic``: the last tick;
* ``currentMetricValue``: the stable window's average, the load the decider reads;
* ``lastScaleTime``: when the daemon last changed the target's replicas;
* ``activeSchedule``: the schedule whose floor applies, when one does;
* conditions (``type``, ``status``, ``reason``, ``message``, ``lastTransitionTime``, which
  moves only when the status does):

  - ``Ready``: True (``Running``) when this generation runs; False with ``InvalidSpec``
    (the message names the key, and the generation that keeps running, if any) or
    ``Conflict`` (another policy drives the target);
  - ``Active``: True (``Scaling``) when the last tick read the target; False with
    ``ScaledToZero``, ``Paused`` or the target's error (``FailedGetScale``,
    ``FailedRescale``); Unknown (``NoTick``) before the first tick;
  - ``MetricAvailable``: True (``MetricRead``), or False with the log's no-data reason
    (``empty``, ``stale``, ``unreachable``... the ``reason`` of "metric has no data");
  - ``ScalingLimited``: True with ``TooFewReplicas``/``TooManyReplicas`` (as the HPA says
    it) when minReplicas/maxReplicas, or ``ScheduleFloor`` when a schedule, overrode the
    decider; False (``DesiredWithinRange``) otherwise.
"""

from __future__ import annotations

import threading
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from scaler.daemon.loop import TickReport
from scaler.daemon.policy_objects import ObjectState, PolicyObjects

MIN_INTERVAL = 5.0      # seconds between two status writes of one object
REQUEST_TIMEOUT = 5.0


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(type_: str, status: bool | None, reason: str, message: str = "") -> dict:
    return {"type": type_, "status": {True: "True", False: "False", None: "Unknown"}[status],
            "reason": reason, "message": message}


def build_status(state: ObjectState, report: TickReport | None,
                 last_scale: float | None) -> dict:
    """The status an object should have now (conditions without lastTransitionTime)."""
    status: dict[str, Any] = {"observedGeneration": state.generation}
    if state.problem is None:
        ready = _condition("Ready", True, "Running",
                           f"generation {state.generation} runs as policy {state.policy_name}")
    else:
        reason, message = state.problem
        if state.running is not None:
            message += f"; generation {state.running_generation} keeps running"
        ready = _condition("Ready", False, reason, message)
    conditions = [ready]
    result = report.result if report is not None else None
    if report is None:
        conditions.append(_condition("Active", None, "NoTick", "no tick yet"))
    elif result is None:     # the target could not be read (or is backed off from)
        conditions.append(_condition("Active", False, "FailedGetScale",
                                     f"cannot read the target: {report.error}"))
    else:
        status.update(desiredReplicas=result.replicas, currentReplicas=report.current,
                      readyReplicas=report.ready, inPanic=bool(result.in_panic))
        if result.stable is not None:
            status["currentMetricValue"] = f"{result.stable:.6g}"
        if report.action == "paused":
            conditions.append(_condition("Active", False, "Paused",
                                         "the target has the annotation scaler/paused"))
        elif report.action == "error":
            conditions.append(_condition("Active", False, "FailedRescale",
                                         f"cannot scale the target: {report.error}"))
        elif result.replicas == 0 and (report.current or 0) == 0:
            conditions.append(_condition("Active", False, "ScaledToZero",
                                         "no demand: the target is at zero replicas"))
        else:
            conditions.append(_condition("Active", True, "Scaling",
                                         f"{report.current} -> {result.replicas} replicas"))
    if report is not None:
        if report.no_data is None:
            conditions.append(_condition("MetricAvailable", True, "MetricRead"))
        else:
            conditions.append(_condition("MetricAvailable", False, report.no_data,
                                         "the metric has no data; holding replicas"))
    if result is not None and result.decision.valid and state.running is not None:
        conditions.append(_limited(state, result))
        schedule = getattr(result, "schedule", None)
        if schedule:
            status["activeSchedule"] = schedule
    if last_scale is not None:
        status["lastScaleTime"] = rfc3339(last_scale)
    status["conditions"] = conditions
    return status


def _limited(state: ObjectState, result: Any) -> dict:
    p = state.running
    wanted = result.decision.desired_pods
    floor = getattr(result, "schedule_floor", 0) or 0
    if p.max_replicas and wanted > p.max_replicas:
        return _condition("ScalingLimited", True, "TooManyReplicas",
                          f"the decider wanted {wanted}, maxReplicas is {p.max_replicas}")
    if floor > max(wanted, p.min_replicas) and result.replicas >= floor:
        return _condition("ScalingLimited", True, "ScheduleFloor",
                          f"the decider wanted {wanted}, schedule "
                          f"{getattr(result, 'schedule', '')} sets {floor}")
    if wanted < p.min_replicas:
        return _condition("ScalingLimited", True, "TooFewReplicas",
                          f"the decider wanted {wanted}, minReplicas is {p.min_replicas}")
    return _condition("ScalingLimited", False, "DesiredWithinRange",
                      f"the decider wanted {wanted}")


@dataclass
class StatusWriter:
    """Keeps each object's latest tick and writes changed statuses (call :meth:`flush`)."""

    client: Any
    objects: PolicyObjects
    is_leader: Callable[[], bool] | None = None
    write: bool = True                       # False under --dry-run: needs no write access
    min_interval: float = MIN_INTERVAL
    now: Callable[[], float] = _time.time
    log: Any = None
    _reports: dict[str, TickReport] = field(default_factory=dict)
    _last_scale: dict[str, float] = field(default_factory=dict)
    _written: dict[str, tuple[str, dict, float]] = field(default_factory=dict)   # uid, status, when
    _lock: threading.Lock = field(default_factory=threading.Lock)
    writes: int = 0

    def on_tick(self, report: TickReport) -> None:
        """The loop's tick listener: remember, return at once."""
        with self._lock:
            self._reports[report.policy] = report
            if report.action == "scaled":
                self._last_scale[report.policy] = report.t

    def flush(self) -> int:
        """Write every status that changed (and whose last write is old enough); the
        number written."""
        if not self.write or (self.is_leader is not None and not self.is_leader()):
            return 0
        with self.objects.lock:
            states = list(self.objects.states.values())
        written = 0
        now = self.now()
        for state in states:
            with self._lock:
                report = self._reports.get(state.policy_name)
                last_scale = self._last_scale.get(state.policy_name)
            wanted = build_status(state, report, last_scale)
            before = self._written.get(state.policy_name)
            current = (state.obj.get("status") or {}) if before is None else before[1]
            if before is not None and before[0] != state.uid:
                current = state.obj.get("status") or {}
            if _same(current, wanted):
                continue
            if before is not None and before[0] == state.uid and now - before[2] < self.min_interval:
                continue
            status = _with_transition_times(current, wanted, now)
            if self._put(state, status):
                self._written[state.policy_name] = (state.uid, status, now)
                written += 1
        self.writes += written
        return written

    def _put(self, state: ObjectState, status: dict) -> bool:
        from scaler.kube import TransportError
        from scaler.daemon.policy_objects import collection_path

        path = f"{collection_path(state.namespace)}/{state.name}/status"
        body = dict(state.obj, status=status)
        for attempt in (1, 2):
            try:
                resp = self.client.request("PUT", path, body=body, timeout=REQUEST_TIMEOUT)
            except TransportError as exc:
                self._say("cannot write ScalingPolicy status", state, f"{exc.reason}: {exc.detail}")
                return False
            if resp.status == 200:
                state.obj = resp.body if isinstance(resp.body, dict) else state.obj
                return True
            if resp.status == 409 and attempt == 1:
                # Changed since it was listed: take the newest resourceVersion and retry.
                try:
                    fresh = self.client.request("GET", path[: -len("/status")],
                                                timeout=REQUEST_TIMEOUT)
                except TransportError:
                    return False
                if fresh.status != 200 or not isinstance(fresh.body, dict):
                    return False
                state.obj = fresh.body
                body = dict(fresh.body, status=status)
                continue
            message = resp.body.get("message") if isinstance(resp.body, dict) else resp.body
            self._say("cannot write ScalingPolicy status", state, f"HTTP {resp.status}: {message}")
            return False
        return False

    def _say(self, what: str, state: ObjectState, detail: str) -> None:
        if self.log:
            self.log.warning(what, policy=state.policy_name, detail=detail)


def _strip_times(status: dict) -> dict:
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                         for c in status.get("conditions") or []]
    return out


def _same(current: dict, wanted: dict) -> bool:
    return _strip_times(current) == _strip_times(wanted)


def _with_transition_times(current: dict, wanted: dict, now: float) -> dict:
    """Each condition keeps its lastTransitionTime while its status stays."""
    before = {c.get("type"): c for c in current.get("conditions") or []}
    conditions = []
    for c in wanted["conditions"]:
        old = before.get(c["type"])
        since = (old.get("lastTransitionTime") if old and old.get("status") == c["status"]
                 and old.get("lastTransitionTime") else rfc3339(now))
        conditions.append({**c, "lastTransitionTime": since})
    return {**wanted, "conditions": conditions}


@dataclass
class ObjectsRunner:
    """The thread that lists the objects (every ``list_interval``), hands the loop the
    policies that run (``set_policies``), and flushes the statuses every second."""

    objects: PolicyObjects
    writer: StatusWriter
    set_policies: Callable[[list], None]
    stop: threading.Event
    list_interval: float = 5.0
    monotonic: Callable[[], float] = _time.monotonic   # the daemon's Clock.monotonic
    thread: threading.Thread | None = None
    _handed: list | None = None

    def poll_once(self) -> None:
        policies = self.objects.poll()
        if policies is not None and policies != self._handed:   # only a change reloads
            self._handed = policies
            self.set_policies(policies)

    def start(self) -> threading.Thread:
        self.thread = threading.Thread(target=self._run, name="scalingpolicies", daemon=True)
        self.thread.start()
        return self.thread

    def _run(self) -> None:
        next_list = 0.0
        while not self.stop.is_set():
            try:
                if self.monotonic() >= next_list:
                    next_list = self.monotonic() + self.list_interval
                    self.poll_once()
                self.writer.flush()
            except Exception:   # never let the thread die: the loop keeps what runs
                if self.objects.log:
                    self.objects.log.exception("scalingpolicies pass failed")
            self.stop.wait(1.0)

