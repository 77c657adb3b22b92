"""The live actuator: reads and writes a workload's scale subresource on Kubernetes.

Works for Deployments, StatefulSets, ReplicaSets and any custom resource that has a scale
subresource (found through API discovery). Writes are optimistic: each carries the
resourceVersion the decision was made on, so a concurrent change is a :class:`Conflict`,
never a blind overwrite. After a successful write it records a core/v1 Event on the target
(``events.py``: a repeat is counted up by PATCH). Requests go through
:class:`scaler.kube.KubeClient` (plain JSON, no typed models); writes name their field
manager, ``scaler``, so managedFields tell who else sets a target's replicas.

Retries: tenacity is the only retry layer (urllib3's own retries are switched off). 429, 5xx,
timeouts and connection errors are retried with jittered exponential backoff until the
call's deadline, and stop at once when the shutdown event is set. A Retry-After on a 429 or
503 is honoured across calls: until it has passed no request goes out (an error
``throttled``, or a short wait when it ends within the call's deadline). Deadlines, backoff
sleeps and event times all come from the injected clock.

A write whose answer is lost (a timeout) may still have been applied: it is remembered, and
the next read that shows it applied records its Event, late but not lost.

Reads come from a watch cache (:class:`TargetCache`: LIST + WATCH per kind and namespace,
through :class:`scaler.kube.Informer`) for the apps/v1 kinds, whose scale is their own
``spec.replicas`` and ``resourceVersion``: no request per target per tick. A write still
carries the resourceVersion its decision was made on, so a cache behind the cluster costs
at most a 409, after which the target is read from the API directly once. Other kinds (a
custom resource's scale paths are its CRD's to say) are read per tick, as are targets
whose cache is not listed yet or has lost its watch for more than a few seconds.
"""

from __future__ import annotations

import math
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_random_exponential,
)

from scaler.actuators import ActuatorError, Conflict, ScaleStatus
from scaler.actuators.events import EventRecorder
from scaler.clock import Clock, SystemClock
from scaler.kube import KubeClient, Response, TransientError, TransportError
from scaler.policy import ScaleTargetRef

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

PAUSED_ANNOTATION = "scaler/paused"
EVENT_COMPONENT = "scaler"
FIELD_MANAGER = "scaler"
MERGE_PATCH = "application/merge-patch+json"
# A server's Retry-After is honoured up to this many seconds: a wrong header must not
# silence every target for hours.
MAX_RETRY_AFTER = 120.0

# How long a read waits for a new watch cache's first LIST before asking the API itself.
FIRST_LIST_WAIT = 0.5

# Kinds whose plural is known without asking the API server.
_BUILT_IN = {
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("apps/v1", "ReplicaSet"): "replicasets",
}


def _status_message(body: Any) -> str:
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("message") or body.get("reason") or "")
    return str(body or "")[:200]


def _api_prefix(api_version: str) -> str:
    """Core kinds ("v1") live under /api, every group under /apis."""
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def _resource_of(path: str) -> str:
    """The resource (plural) a request path addresses, for messages."""
    match = re.search(r"/namespaces/[^/]+/([^/]+)", path)
    return match.group(1) if match else path


def _http_error(target: ScaleTargetRef, method: str, path: str, resp: Response) -> Exception:
    """Map a non-2xx answer to what the caller should do with it."""
    message = _status_message(resp.body) or f"HTTP {resp.status}"
    if resp.status == 409:
        return Conflict(target, message)
    if resp.status == 429 or resp.status >= 500:
        reason = "throttled" if resp.status == 429 else f"http_{resp.status}"
        after = resp.retry_after
        asked = f" (Retry-After {after:g} s)" if after is not None else ""
        return TransientError(reason, f"{method} {path}: {message}{asked}", after)
    if resp.status == 403:
        return ActuatorError(target, "forbidden", f"{message} (the scaler's service account "
                                                  f"needs get/patch on {_resource_of(path)} "
                                                  "and its scale subresource, create on events)")
    if resp.status == 404:
        return ActuatorError(target, "not_found", f"{message} ({method} {path})")
    if resp.status == 401:
        return ActuatorError(target, "unauthorized", f"{message}: check the kubeconfig or the "
                                                     "service account token")
    return ActuatorError(target, f"http_{resp.status}", f"{method} {path}: {message}")


@dataclass(frozen=True)
class _Seen:
    """What the last read saw, to skip writes that would change nothing."""

    resource_version: str
    replicas: int
    uid: str


@dataclass(frozen=True)
class _Unanswered:
    """A scale write that went out but whose answer never came: it may have landed."""

    replicas: int
    resource_version: str     # the version it was decided on
    reason: str
    message: str


class _Stopped(Exception):
    """Shutdown was requested; no further request is made."""


class _Throttled(Exception):
    """The API server asked for a pause that has not passed; no request is made."""


def replicas_owner(obj: Obj) -> tuple[str, str]:
    """(field manager, time) of whoever last set spec.replicas, from managedFields."""
    owners = [(entry.get("time") or "", entry.get("manager") or "")
              for entry in (obj.get("metadata") or {}).get("managedFields") or []
              if isinstance(entry, dict)
              and "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})]
    if not owners:
        return "", ""
    when, manager = max(owners)
    return manager, when


@dataclass(frozen=True)
class _Cached:
    """What the watch cache keeps of a target: what a read would have returned."""

    replicas: int
    ready: int
    resource_version: str
    paused: bool
    owner: str
    uid: str


def _cached(obj: Obj) -> _Cached:
    meta = obj.get("metadata") or {}
    owner, _ = replicas_owner(obj)
    return _Cached(int((obj.get("spec") or {}).get("replicas", 0) or 0),
                   int((obj.get("status") or {}).get("readyReplicas", 0) or 0),
                   str(meta.get("resourceVersion", "")),
                   (meta.get("annotations") or {}).get(PAUSED_ANNOTATION) == "true",
                   "" if owner == FIELD_MANAGER else owner, str(meta.get("uid", "")))


class TargetCache:
    """Informers for the targets' kinds: one per (kind, namespace), or one per kind
    across the cluster with ``all_namespaces``; each started when a target first needs
    it. ``namespaces`` (when given) are the only ones watched; others are read directly."""

    def __init__(self, client: KubeClient, *, clock: Clock, stop: threading.Event,
                 all_namespaces: bool = False, namespaces: tuple[str, ...] | None = None,
                 **informer_options: Any) -> None:
        self._client = client
        self._clock = clock
        self._stop = stop
        self._all = all_namespaces
        self._namespaces = None if namespaces is None else frozenset(namespaces)
        self._options = informer_options
        self._informers: dict[tuple[str, str, str | None], Any] = {}
        self._lock = threading.Lock()

    def informer(self, target: ScaleTargetRef) -> Any:
        """The target's informer (started now if new), or None for a kind or namespace
        the cache does not cover."""
        from scaler.kube import Informer

        plural = _BUILT_IN.get((target.api_version, target.kind))
        if plural is None:
            return None
        if self._namespaces is not None and target.namespace not in self._namespaces:
            return None
        namespace = None if self._all else target.namespace
        key = (target.api_version, plural, namespace)
        with self._lock:
            found = self._informers.get(key)
            if found is None:
                where = "" if namespace is None else f"/namespaces/{namespace}"
                found = Informer(self._client, f"{_api_prefix(target.api_version)}{where}/"
                                 f"{plural}", namespace, _cached, clock=self._clock,
                                 stop=self._stop, log=log, **self._options)
                self._informers[key] = found
                found.start()
        return found

    def lookup(self, target: ScaleTargetRef, wait: float = 0.0) -> _Cached | None:
        """The target as the cache has it, or None: read it from the API instead (not
        covered, not listed yet, watch lost for too long, or no such object here).
        ``wait``: seconds to wait for the first LIST of a new informer (one LIST serves
        every target of a start-up, where reading each would be two requests apiece)."""
        informer = self.informer(target)
        if informer is None:
            return None
        if wait > 0 and not informer.listed.is_set():
            informer.listed.wait(wait)
        if not informer.fresh():
            return None
        return informer.get(target.namespace, target.name)

    def wrote(self, target: ScaleTargetRef, replicas: int, resource_version: str) -> None:
        informer = self.informer(target)
        entry = informer.get(target.namespace, target.name) if informer else None
        if entry is not None:
            informer.put(target.namespace, target.name,
                         replace(entry, replicas=replicas, resource_version=resource_version,
                                 owner=""))

    @property
    def informers(self) -> list[Any]:
        with self._lock:
            return list(self._informers.values())


class KubernetesActuator:
    """The :class:`~scaler.actuators.Actuator` for a live cluster.

    ``budget`` bounds each read() or scale() call, retries included; a ``deadline``
    (a ``clock.monotonic()`` value) passed to a call tightens it further, so a tick never
    overruns.
    """

    def __init__(self, client: KubeClient, *, clock: Clock | None = None,
                 stop: threading.Event | None = None, budget: float = 1.5,
                 request_timeout: float = 1.0, backoff_initial: float = 0.05,
                 backoff_max: float = 0.5, cache: TargetCache | None = None) -> None:
        self._client = client
        self._cache = cache
        self._direct: set[ScaleTargetRef] = set()   # read from the API once (after a 409)
        self._clock = clock or SystemClock()
        self._stop = stop or threading.Event()
        self._budget = budget
        self._request_timeout = request_timeout
        self._wait = wait_random_exponential(multiplier=backoff_initial, max=backoff_max)
        self._plurals: dict[tuple[str, str], str] = dict(_BUILT_IN)
        self._seen: dict[ScaleTargetRef, _Seen] = {}
        self._unanswered: dict[ScaleTargetRef, _Unanswered] = {}
        self._lock = threading.Lock()
        self._events = EventRecorder(client, self._clock, host=socket.gethostname(),
                                     field_manager=FIELD_MANAGER)
        # Monotonic time before which the API server asked for no requests (Retry-After).
        self._not_before = -math.inf

    # ---- the Actuator protocol

    def read(self, target: ScaleTargetRef, *, deadline: float | None = None) -> ScaleStatus:
        until = self._deadline(deadline)
        with self._lock:
            direct = target in self._direct
            self._direct.discard(target)
        hit = None if self._cache is None or direct else self._cache.lookup(
            target, wait=max(0.0, min(FIRST_LIST_WAIT, until - self._clock.monotonic())))
        if hit is not None:
            status = ScaleStatus(hit.replicas, hit.ready, hit.resource_version, hit.paused,
                                 hit.owner)
            with self._lock:
                self._seen[target] = _Seen(hit.resource_version, hit.replicas, hit.uid)
                unanswered = self._unanswered.pop(target, None)
            if unanswered is not None:
                self._settle(target, unanswered, status, until)
            return status
        base = self._object_path(target, until)
        scale = self._call(target, "GET", f"{base}/scale", until)
        obj = self._call(target, "GET", base, until)
        meta = scale.get("metadata") or {}
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        owner, _ = replicas_owner(obj)
        status = ScaleStatus(
            # A Scale's spec.replicas is omitempty and so is readyReplicas: absent means 0.
            replicas=int((scale.get("spec") or {}).get("replicas", 0)),
            ready_replicas=int((obj.get("status") or {}).get("readyReplicas", 0)),
            resource_version=str(meta.get("resourceVersion", "")),
            paused=annotations.get(PAUSED_ANNOTATION) == "true",
            replicas_owner="" if owner == FIELD_MANAGER else owner,
        )
        with self._lock:
            self._seen[target] = _Seen(status.resource_version, status.replicas,
                                       str(meta.get("uid", "")))
            unanswered = self._unanswered.pop(target, None)
        if unanswered is not None:
            self._settle(target, unanswered, status, until)
        return status

    def _settle(self, target: ScaleTargetRef, write: _Unanswered, status: ScaleStatus,
                until: float) -> None:
        """A write whose answer was lost: did it land? If so its Event is due now."""
        landed = (status.replicas == write.replicas
                  and status.resource_version != write.resource_version
                  and status.replicas_owner == "")
        if not landed:
            log.warning("scale_not_applied", target=str(target), replicas=write.replicas,
                        now=status.replicas)
            return
        log.info("scale_confirmed", target=str(target), replicas=write.replicas,
                 reason=write.reason, detail="the write's answer was lost, but it was applied")
        self._record_event(target, write.reason, write.message, until)

    def scale(self, target: ScaleTargetRef, replicas: int, *, resource_version: str,
              reason: str, message: str, deadline: float | None = None) -> bool:
        if not resource_version:
            raise ValueError(f"{target}: a scale write needs the resourceVersion it was "
                             "decided on (no blind overwrites)")
        with self._lock:
            seen = self._seen.get(target)
        if seen and seen.resource_version == resource_version and seen.replicas == replicas:
            log.debug("scale_skipped_noop", target=str(target), replicas=replicas)
            return True
        until = self._deadline(deadline)
        base = self._object_path(target, until)
        # A merge patch that carries metadata.resourceVersion is a precondition: 409 if stale.
        patch = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
        sent = _Unanswered(replicas, resource_version, reason, message)
        lost: list[bool] = []
        try:
            scale = self._call(target, "PATCH", f"{base}/scale?fieldManager={FIELD_MANAGER}",
                               until, body=patch, content_type=MERGE_PATCH,
                               lost_answers=lost)
        except ActuatorError as exc:
            with self._lock:
                self._seen.pop(target, None)
                if isinstance(exc, Conflict) or lost:
                    self._direct.add(target)     # the cache is behind: ask the API
                if lost:
                    # A timed-out attempt may have landed (and made a retry a 409): the
                    # next read tells, and records the Event if it did.
                    self._unanswered[target] = sent
            raise
        meta = scale.get("metadata") or {}
        with self._lock:
            self._seen[target] = _Seen(str(meta.get("resourceVersion", "")), replicas,
                                       str(meta.get("uid", "")))
        if self._cache is not None:
            self._cache.wrote(target, replicas, str(meta.get("resourceVersion", "")))
        log.info("scaled", target=str(target), replicas=replicas, reason=reason)
        self._record_event(target, reason, message, until)
        return True

    def warn(self, target: ScaleTargetRef, reason: str, message: str, *,
             deadline: float | None = None) -> bool:
        """A Warning Event on the target (e.g. FailedGetScale): best effort, one attempt."""
        return self._record_event(target, reason, message, self._deadline(deadline),
                                  type_="Warning")

    # ---- events

    def _record_event(self, target: ScaleTargetRef, reason: str, message: str,
                      until: float, *, type_: str = "Normal") -> bool:
        """Best effort: one attempt, within what is left of the deadline; never raises."""
        with self._lock:
            seen = self._seen.get(target)
        involved: Obj = {}
        if seen and seen.uid:
            involved = {"uid": seen.uid, "resourceVersion": seen.resource_version}
        remaining = until - self._clock.monotonic()
        if remaining <= 0 or self._clock.monotonic() < self._not_before:
            log.warning("event_failed", target=str(target), reason=reason,
                        error="no time left before the deadline" if remaining <= 0
                        else "the API server asked for a pause (Retry-After)")
            return False
        return self._events.record(target, type_, reason, message, involved=involved,
                                   timeout=min(self._request_timeout, remaining))

    # ---- plumbing

    def _deadline(self, deadline: float | None) -> float:
        own = self._clock.monotonic() + self._budget
        return own if deadline is None else min(own, deadline)

    def _object_path(self, target: ScaleTargetRef, until: float) -> str:
        plural = self._plural(target, until)
        return (f"{_api_prefix(target.api_version)}/namespaces/{target.namespace}/"
                f"{plural}/{target.name}")

    def _plural(self, target: ScaleTargetRef, until: float) -> str:
        """The resource name for a kind, from discovery (cached), as kubectl's RESTMapper does."""
        key = (target.api_version, target.kind)
        with self._lock:
            if key in self._plurals:
                return self._plurals[key]
        try:
            doc = self._call(target, "GET", _api_prefix(target.api_version), until)
        except ActuatorError as exc:
            if exc.reason == "not_found":
                raise ActuatorError(target, "unknown_kind", f"the API server does not serve "
                                                            f"{target.api_version}") from None
            raise
        names = {r.get("name") for r in doc.get("resources") or []}
        for resource in doc.get("resources") or []:
            name = resource.get("name", "")
            if resource.get("kind") == target.kind and "/" not in name:
                if f"{name}/scale" not in names:
                    raise ActuatorError(target, "no_scale_subresource",
                                        f"{name}.{target.api_version} has no scale subresource")
                with self._lock:
                    self._plurals[key] = name
                return name
        raise ActuatorError(target, "unknown_kind",
                            f"{target.api_version} serves no kind {target.kind}")

    def _call(self, target: ScaleTargetRef, method: str, path: str, until: float, *,
              body: Any = None, content_type: str = "application/json",
              lost_answers: list[bool] | None = None) -> Obj:
        """One API call, retried on transient failures until ``until`` or shutdown.
        ``lost_answers`` gets an entry for each request that went out and timed out."""

        failures: list[TransientError] = []   # what went wrong so far, newest last

        def attempt() -> Obj:
            if self._stop.is_set():
                raise _Stopped()
            self._wait_out_retry_after(until)
            timeout = min(self._request_timeout, until - self._clock.monotonic())
            try:
                if timeout <= 0:
                    raise TransientError("timeout", f"{method} {path}: no time left before "
                                                    "the deadline")
                try:
                    resp = self._client.request(method, path, body=body,
                                                content_type=content_type, timeout=timeout)
                except TransientError as exc:
                    if exc.reason == "timeout" and lost_answers is not None:
                        lost_answers.append(True)
                    raise
                if 200 <= resp.status < 300:
                    return resp.body if isinstance(resp.body, dict) else {}
                raise _http_error(target, method, path, resp)
            except TransientError as exc:
                if exc.retry_after is not None:
                    pause = min(exc.retry_after, MAX_RETRY_AFTER)
                    with self._lock:
                        self._not_before = max(self._not_before,
                                               self._clock.monotonic() + pause)
                # A timeout that only the deadline cut short says less than the failure
                # before it: report that one (e.g. the 503 that caused the retries).
                if exc.reason == "timeout" and timeout < self._request_timeout and failures:
                    raise failures[-1] from None
                failures.append(exc)
                raise

        def wait(state: RetryCallState) -> float:
            backoff = self._wait(state)
            failure = state.outcome.exception() if state.outcome else None
            after = getattr(failure, "retry_after", None)
            # The server's pause, when it asked for a longer one; past_deadline then
            # gives up rather than shorten it.
            return max(backoff, min(after, MAX_RETRY_AFTER)) if after else backoff

        def past_deadline(state: RetryCallState) -> bool:
            # Never start a backoff sleep that would end past the deadline.
            return self._clock.monotonic() + (state.upcoming_sleep or 0.0) >= until

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_when_event_set(self._stop) | past_deadline,
            wait=wait,
            # A shutdown ends the backoff sleep at once.
            sleep=lambda seconds: self._clock.sleep(seconds, self._stop),
            before_sleep=_log_retry(target),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Stopped:
            raise ActuatorError(target, "shutdown",
                                f"{method} {path} not sent: shutting down") from None
        except _Throttled as exc:
            last = f"{failures[-1].detail}; " if failures else ""
            raise ActuatorError(target, "throttled", f"{last}{exc}") from None
        except TransientError as exc:
            if self._stop.is_set():
                raise ActuatorError(target, "shutdown", exc.detail) from None
            attempts = retrying.statistics.get("attempt_number", 1)
            raise ActuatorError(target, exc.reason, f"{exc.detail} (gave up after {attempts} "
                                                    "attempts at the deadline)") from None
        except TransportError as exc:
            raise ActuatorError(target, exc.reason, exc.detail) from None

    def _wait_out_retry_after(self, until: float) -> None:
        """Before a request: if the server's pause ends within the deadline, wait for it;
        otherwise send nothing (_Throttled)."""
        with self._lock:
            left = self._not_before - self._clock.monotonic()
        if left <= 0:
            return
        if self._clock.monotonic() + left >= until:
            raise _Throttled(f"the API server asked for a pause (Retry-After): {left:.1f} s "
                             "left, no request sent")
        if self._clock.sleep(left, self._stop):
            raise _Stopped()

    def close(self) -> None:
        self._client.close()


def _log_retry(target: ScaleTargetRef) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("kube_request_retry", target=str(target), attempt=state.attempt_number,
                    sleep=round(state.upcoming_sleep, 3), error=str(exc))
    return before_sleep


def from_config(kubeconfig: str | None = None, *, stop: threading.Event | None = None,
                **options: Any) -> KubernetesActuator:
    """An actuator for the cluster named by ``kubeconfig``, else $KUBECONFIG, else the
    in-cluster service account. ``options`` go to :class:`KubernetesActuator`."""
    return KubernetesActuator(KubeClient.from_config(kubeconfig), stop=stop, **options)
