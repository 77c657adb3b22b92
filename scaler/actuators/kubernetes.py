"""The live actuator: reads and writes a workload's scale subresource on Kubernetes.

Works for Deployments, StatefulSets, ReplicaSets and any custom resource that has a scale
subresource (found through API discovery). Writes are optimistic: each carries the
resourceVersion the decision was made on, so a concurrent change is a :class:`Conflict`,
never a blind overwrite. After a successful write it records a core/v1 Event on the target.

Weight: the typed kubernetes client builds pydantic models and costs ~0.8 s and ~46 MiB once
AppsV1Api exists (reference/infra-notes.md §2). This module uses only the package's
``Configuration`` and ``ApiClient`` (auth, TLS, kubeconfig and in-cluster loading, the
urllib3 pool) and exchanges plain JSON, and imports the package only when a client is built.

Retries: tenacity is the only retry layer (urllib3's own retries are switched off). 429, 5xx,
timeouts and connection errors are retried with jittered exponential backoff until the
call's deadline, and stop at once when the shutdown event is set.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    stop_when_event_set,
    wait_random_exponential,
)

from scaler.actuators import ActuatorError, Conflict, ScaleStatus
from scaler.policy import ScaleTargetRef

if TYPE_CHECKING:
    from kubernetes.client import Configuration

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

PAUSED_ANNOTATION = "scaler/paused"
EVENT_COMPONENT = "scaler"
MERGE_PATCH = "application/merge-patch+json"

# Kinds whose plural is known without asking the API server.
_BUILT_IN = {
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("apps/v1", "ReplicaSet"): "replicasets",
}


class TransportError(Exception):
    """A request that got no HTTP answer (e.g. a TLS failure, which retrying won't fix)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(TransportError):
    """A failure worth retrying (429, 5xx, timeout, connection error)."""


class _Stopped(Exception):
    """Shutdown was requested; no further request is made."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any          # parsed JSON, or the raw text when the body is not JSON
    headers: Mapping[str, str]


class KubeClient:
    """Plain JSON over the kubernetes package's REST layer (no typed models).

    ``request`` returns any HTTP response; only transport failures raise (TransportError).
    """

    def __init__(self, configuration: Configuration) -> None:
        import urllib3
        from kubernetes.client import ApiClient
        from kubernetes.client.exceptions import ApiException

        self._timeout_error = urllib3.exceptions.TimeoutError
        self._http_error = urllib3.exceptions.HTTPError
        self._api_exception = ApiException
        # tenacity owns retries: no urllib3 retries, no client-go style read retries.
        configuration.retries = False
        configuration.client_go_retries = False
        self._api = ApiClient(configuration)
        self._api.user_agent = "scaler"

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> KubeClient:
        """Use ``kubeconfig`` if given, else $KUBECONFIG, else the in-cluster service account."""
        from kubernetes.client import Configuration
        from kubernetes.config import load_incluster_config, load_kube_config

        configuration = Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path:
            # persist_config=False: a mounted kubeconfig is read-only; never write it back.
            load_kube_config(config_file=path, client_configuration=configuration,
                             persist_config=False)
        else:
            load_incluster_config(client_configuration=configuration)
        return cls(configuration)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def request(self, method: str, path: str, *, timeout: float, body: Any = None,
                content_type: str = "application/json") -> Response:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        # param_serialize adds the host, the default headers and the (refreshed) bearer token.
        method, url, headers, body, _ = self._api.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body,
            auth_settings=["BearerToken"])
        try:
            resp = self._api.call_api(method, url, header_params=headers, body=body,
                                      _request_timeout=timeout)
            raw = resp.read()
        except self._timeout_error as exc:
            raise TransientError("timeout", f"{method} {path}: no answer within {timeout:.2f}s "
                                            f"({exc})") from None
        except self._http_error as exc:    # refused, reset, protocol errors
            raise TransientError("unavailable", f"{method} {path}: {exc}") from None
        except self._api_exception as exc:   # the REST layer wraps TLS failures in these
            raise TransportError("transport", f"{method} {path}: {exc.reason}") from None
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return Response(resp.status, parsed, resp.headers)

    def close(self) -> None:
        self._api.close()


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
        return TransientError(reason, f"{method} {path}: {message}")
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


class KubernetesActuator:
    """The :class:`~scaler.actuators.Actuator` for a live cluster.

    ``budget`` bounds each read() or scale() call, retries included; a ``deadline``
    (time.monotonic() value) passed to a call tightens it further, so a tick never overruns.
    """

    def __init__(self, client: KubeClient, *, stop: threading.Event | None = None,
                 budget: float = 1.5, request_timeout: float = 1.0,
                 backoff_initial: float = 0.05, backoff_max: float = 0.5) -> None:
        self._client = client
        self._stop = stop or threading.Event()
        self._budget = budget
        self._request_timeout = request_timeout
        self._wait = wait_random_exponential(multiplier=backoff_initial, max=backoff_max)
        self._plurals: dict[tuple[str, str], str] = dict(_BUILT_IN)
        self._seen: dict[ScaleTargetRef, _Seen] = {}
        self._lock = threading.Lock()
        self._host = socket.gethostname()

    # ---- the Actuator protocol

    def read(self, target: ScaleTargetRef, *, deadline: float | None = None) -> ScaleStatus:
        until = self._deadline(deadline)
        base = self._object_path(target, until)
        scale = self._call(target, "GET", f"{base}/scale", until)
        obj = self._call(target, "GET", base, until)
        meta = scale.get("metadata") or {}
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        status = ScaleStatus(
            # A Scale's spec.replicas is omitempty and so is readyReplicas: absent means 0.
            replicas=int((scale.get("spec") or {}).get("replicas", 0)),
            ready_replicas=int((obj.get("status") or {}).get("readyReplicas", 0)),
            resource_version=str(meta.get("resourceVersion", "")),
            paused=annotations.get(PAUSED_ANNOTATION) == "true",
        )
        with self._lock:
            self._seen[target] = _Seen(status.resource_version, status.replicas,
                                       str(meta.get("uid", "")))
        return status

    def scale(self, target: ScaleTargetRef, replicas: int, *, resource_version: str,
              reason: str, message: str, deadline: float | None = None) -> None:
        if not resource_version:
            raise ValueError(f"{target}: a scale write needs the resourceVersion it was "
                             "decided on (no blind overwrites)")
        with self._lock:
            seen = self._seen.get(target)
        if seen and seen.resource_version == resource_version and seen.replicas == replicas:
            log.debug("scale_skipped_noop", target=str(target), replicas=replicas)
            return
        until = self._deadline(deadline)
        base = self._object_path(target, until)
        # A merge patch that carries metadata.resourceVersion is a precondition: 409 if stale.
        patch = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
        try:
            scale = self._call(target, "PATCH", f"{base}/scale", until, body=patch,
                               content_type=MERGE_PATCH)
        except Conflict:
            with self._lock:
                self._seen.pop(target, None)
            raise
        meta = scale.get("metadata") or {}
        with self._lock:
            self._seen[target] = _Seen(str(meta.get("resourceVersion", "")), replicas,
                                       str(meta.get("uid", "")))
        log.info("scaled", target=str(target), replicas=replicas, reason=reason)
        self._record_event(target, reason, message, until)

    # ---- events

    def _record_event(self, target: ScaleTargetRef, reason: str, message: str,
                      until: float) -> None:
        """Best effort: one attempt, within what is left of the deadline; never raises."""
        with self._lock:
            seen = self._seen.get(target)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved: Obj = {"apiVersion": target.api_version, "kind": target.kind,
                         "name": target.name, "namespace": target.namespace}
        if seen and seen.uid:
            involved["uid"] = seen.uid
            involved["resourceVersion"] = seen.resource_version
        event = {
            "apiVersion": "v1", "kind": "Event",
            # client-go's recorder names events "<object>.<unix nanos in hex>".
            "metadata": {"name": f"{target.name}.{time.time_ns():x}",
                         "namespace": target.namespace},
            "involvedObject": involved, "reason": reason, "message": message, "type": "Normal",
            "source": {"component": EVENT_COMPONENT, "host": self._host},
            "reportingComponent": EVENT_COMPONENT, "reportingInstance": self._host,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        path = f"/api/v1/namespaces/{target.namespace}/events"
        remaining = until - time.monotonic()
        try:
            if remaining <= 0:
                raise TransientError("timeout", "no time left before the deadline")
            resp = self._client.request("POST", path, body=event,
                                        timeout=min(self._request_timeout, remaining))
            if not 200 <= resp.status < 300:
                raise _http_error(target, "POST", path, resp)
        except (ActuatorError, TransportError) as exc:  # a courtesy; the scale happened
            log.warning("event_failed", target=str(target), reason=reason, error=str(exc))

    # ---- plumbing

    def _deadline(self, deadline: float | None) -> float:
        own = time.monotonic() + self._budget
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
              body: Any = None, content_type: str = "application/json") -> Obj:
        """One API call, retried on transient failures until ``until`` or shutdown."""

        failures: list[TransientError] = []   # what went wrong so far, newest last

        def attempt() -> Obj:
            if self._stop.is_set():
                raise _Stopped()
            timeout = min(self._request_timeout, until - time.monotonic())
            try:
                if timeout <= 0:
                    raise TransientError("timeout", f"{method} {path}: no time left before "
                                                    "the deadline")
                resp = self._client.request(method, path, body=body, content_type=content_type,
                                            timeout=timeout)
                if 200 <= resp.status < 300:
                    return resp.body if isinstance(resp.body, dict) else {}
                raise _http_error(target, method, path, resp)
            except TransientError as exc:
                # A timeout that only the deadline cut short says less than the failure
                # before it: report that one (e.g. the 503 that caused the retries).
                if exc.reason == "timeout" and timeout < self._request_timeout and failures:
                    raise failures[-1] from None
                failures.append(exc)
                raise

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            # stop_before_delay: never start a backoff sleep that would end past the deadline.
            stop=(stop_before_delay(max(0.0, until - time.monotonic()))
                  | stop_when_event_set(self._stop)),
            wait=self._wait,
            sleep=self._stop.wait,   # a shutdown ends the backoff sleep at once
            before_sleep=_log_retry(target),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Stopped:
            raise ActuatorError(target, "shutdown",
                                f"{method} {path} not sent: shutting down") from None
        except TransientError as exc:
            if self._stop.is_set():
                raise ActuatorError(target, "shutdown", exc.detail) from None
            attempts = retrying.statistics.get("attempt_number", 1)
            raise ActuatorError(target, exc.reason, f"{exc.detail} (gave up after {attempts} "
                                                    "attempts at the deadline)") from None
        except TransportError as exc:
            raise ActuatorError(target, exc.reason, exc.detail) from None

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
