"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

With two replicas of the daemon, only the leader writes. The daemon asks :meth:`is_leader`
before every write; it answers from the clock, so it turns false at once when the lease is
lost (another holder, a 409 on renewal) or when no renewal succeeded within the renew
deadline, even while a request is still hanging.

Why that is safe: a candidate takes over an unreleased lease only after it has seen the same
record for a whole lease duration (client-go's "observed time", which needs no synchronized
clocks). The leader's claim is anchored before its last successful renewal request and ends
after the renew deadline, which is shorter than the lease duration; the difference covers
writes still in flight. On shutdown the leader releases the lease (holderIdentity cleared,
client-go's ReleaseOnCancel) so the other replica takes over at its next retry. The release
has its own deadline and does not wait for the election thread: with a slow API server a
renewal may still be in flight, so a release answered 409 reads the lease again and
retries, and once the stop event is set no round writes the lease any more (a round that
read it just after the release would otherwise take it back).

A failed round is not retried on its own: the next round comes one retry period later, which
is the election's own rhythm rather than a retry layer.
"""

from __future__ import annotations

import math
import random
import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog

from scaler.kube import KubeClient, TransportError
from scaler.clock import Clock, SystemClock

log = structlog.get_logger(__name__)

JITTER_FACTOR = 1.2   # client-go's: candidates wait retry_period × [1, 1 + 1.2)


def default_identity() -> str:
    """client-go's convention: the pod's hostname plus a unique suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time(unix: float) -> str:
    """metav1.MicroTime, as Lease spec times are written."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str | None = None,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        request_timeout: float | None = None,
        release_on_cancel: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        # client-go's own validation: without these margins two leaders could overlap.
        if lease_duration <= renew_deadline:
            raise ValueError(f"lease_duration ({lease_duration}s) must be greater than "
                             f"renew_deadline ({renew_deadline}s)")
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise ValueError(f"renew_deadline ({renew_deadline}s) must be greater than "
                             f"{JITTER_FACTOR} × retry_period ({retry_period}s)")
        if retry_period <= 0:
            raise ValueError(f"retry_period ({retry_period}s) must be positive")
        self.identity = identity or default_identity()
        self._client = client
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._namespace, self._name = namespace, name
        self._lease_duration = lease_duration
        # The Lease holds whole seconds; rounding up never lets a candidate in early.
        self._lease_seconds = max(1, math.ceil(lease_duration))
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._clock = clock or SystemClock()
        self._stop = stop or threading.Event()
        self._timeout = request_timeout or retry_period
        self._release_on_cancel = release_on_cancel
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._renewed_at: float | None = None     # monotonic, taken before the last renewal
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0                   # monotonic, when _observed last changed
        self._observed_rv = ""
        self._release_claimed = False             # release() runs once, whoever calls it
        self._released = threading.Event()        # ...and a second caller waits for it
        self._release_result = False

    # ---- the daemon's question

    def is_leader(self) -> bool:
        with self._lock:
            renewed_at = self._renewed_at
        return (renewed_at is not None and not self._stop.is_set()
                and self._clock.monotonic() - renewed_at < self._renew_deadline)

    # ---- one round

    def try_acquire_or_renew(self) -> bool:
        """GET the lease, then create it, renew it or take it over if it expired."""
        started = self._clock.monotonic()
        try:
            resp = self._client.request("GET", f"{self._path}/{self._name}",
                                        timeout=self._timeout)
            if resp.status == 404:
                return self._create(started)
            if resp.status != 200:
                return self._failed(f"GET lease: HTTP {resp.status}")
            lease = resp.body
            spec = lease.get("spec") or {}
            if spec != self._observed:
                self._observed, self._observed_at = spec, started
            self._observed_rv = lease["metadata"]["resourceVersion"]
            holder = spec.get("holderIdentity") or ""
            duration = spec.get("leaseDurationSeconds") or self._lease_duration
            if holder and holder != self.identity and started < self._observed_at + duration:
                return self._lost(f"held by {holder}")
            return self._update(lease, started)
        except TransportError as exc:
            return self._failed(str(exc))

    def _create(self, started: float) -> bool:
        now = _micro_time(self._clock.now())
        spec = {"holderIdentity": self.identity,
                "leaseDurationSeconds": self._lease_seconds,
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace}, "spec": spec}
        return self._write("POST", self._path, body, 201, started,
                           lost="another replica created the lease first")

    def _update(self, lease: dict[str, Any], started: float) -> bool:
        old = lease.get("spec") or {}
        now = _micro_time(self._clock.now())
        ours = old.get("holderIdentity") == self.identity
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._lease_seconds,
            "acquireTime": old.get("acquireTime", now) if ours else now,
            "renewTime": now,
            "leaseTransitions": (old.get("leaseTransitions") or 0) + (0 if ours else 1),
        }
        body = {**lease, "spec": spec}   # carries metadata.resourceVersion: 409 if stale
        return self._write("PUT", f"{self._path}/{self._name}", body, 200, started,
                           lost="the lease changed under us (409)")

    def _write(self, method: str, path: str, body: dict[str, Any], ok: int, started: float,
               *, lost: str) -> bool:
        """Create or update the lease: ``ok`` wins it, a 409 (someone else wrote first)
        loses it, anything else leaves this round undecided."""
        if self._stop.is_set():
            # Shutting down: the lease may already be released; never take it back. (Not
            # _lost(): release() still needs to know that this replica held it.)
            return False
        resp = self._client.request(method, path, body=body, timeout=self._timeout)
        if resp.status == 409:
            return self._lost(lost)
        if resp.status != ok:
            what = "create" if method == "POST" else "update"
            return self._failed(f"{what} lease: HTTP {resp.status}")
        return self._won(resp.body, started)

    def _won(self, lease: dict[str, Any], started: float) -> bool:
        with self._lock:
            was = self._renewed_at is not None
            self._renewed_at = started
            self._observed, self._observed_at = lease.get("spec") or {}, started
            self._observed_rv = lease["metadata"]["resourceVersion"]
        if not was:
            log.info("leader_elected", lease=self._name, identity=self.identity)
        return True

    def _lost(self, why: str) -> bool:
        with self._lock:
            was = self._renewed_at is not None
            self._renewed_at = None
        if was:
            log.warning("leadership_lost", lease=self._name, identity=self.identity, why=why)
        return False

    def _failed(self, why: str) -> bool:
        """A round that could not decide: leadership lasts until the renew deadline."""
        log.warning("lease_round_failed", lease=self._name, identity=self.identity, error=why)
        return False

    # ---- shutdown

    def release(self, deadline: float | None = None) -> bool:
        """Give the lease up (holderIdentity cleared) so another replica can take it now.

        Runs once, whoever calls it, and ends by ``deadline``, a ``clock.monotonic()``
        value (default: one request timeout from now). A caller that comes second waits
        for the first one's outcome until its own deadline, and returns False."""
        until = self._clock.monotonic() + self._timeout if deadline is None else deadline
        with self._lock:
            was = self._renewed_at is not None
            self._renewed_at = None      # stop writing before the lease is gone
            second = self._release_claimed
            self._release_claimed = True
            observed, rv = self._observed or {}, self._observed_rv
        if second:
            # E.g. the election thread on its way out: the process must not exit before
            # that release is answered.
            self._released.wait(max(0.0, until - self._clock.monotonic()))
            return False
        try:
            self._release_result = (was and observed.get("holderIdentity") == self.identity
                                    and self._put_released(observed, rv, until))
        finally:
            self._released.set()
        return self._release_result

    def _put_released(self, observed: dict[str, Any], rv: str, until: float) -> bool:
        """Clear holderIdentity; after a 409 (a renewal landed meanwhile) read again."""
        path = f"{self._path}/{self._name}"
        error = "no time left"
        for _ in range(3):   # a 409 means a renewal landed meanwhile: read and try again
            left = until - self._clock.monotonic()
            if left <= 0.05:
                break
            now = _micro_time(self._clock.now())
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self._name, "namespace": self._namespace,
                                 "resourceVersion": rv},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 1,
                             "acquireTime": now, "renewTime": now,
                             "leaseTransitions": observed.get("leaseTransitions") or 0}}
            try:
                resp = self._client.request("PUT", path, body=body,
                                            timeout=min(self._timeout, left))
                if resp.status == 200:
                    log.info("lease_released", lease=self._name, identity=self.identity)
                    return True
                error = f"HTTP {resp.status}"
                if resp.status != 409:
                    break
                left = until - self._clock.monotonic()
                if left <= 0.05:
                    break
                resp = self._client.request("GET", path, timeout=min(self._timeout, left))
                if resp.status != 200:
                    error = f"GET lease: HTTP {resp.status}"
                    break
                observed = resp.body.get("spec") or {}
                rv = resp.body["metadata"]["resourceVersion"]
                if observed.get("holderIdentity") != self.identity:
                    return False    # no longer ours: nothing to release
            except TransportError as exc:
                error = str(exc)
                break
        log.warning("lease_release_failed", lease=self._name, error=error)
        return False

    # ---- the loop

    def run(self) -> None:
        """Campaign and renew until the stop event is set; then release (if configured)."""
        try:
            while not self._stop.is_set():
                try:
                    leading = self.try_acquire_or_renew()
                except Exception:
                    # An answer of an unexpected shape must not end the election thread:
                    # that replica would never lead again while looking healthy.
                    # Leadership then lasts only until the renew deadline, as for any
                    # round that could not decide.
                    log.exception("lease_round_failed", lease=self._name)
                    leading = False
                # The leader renews every retry period; candidates add client-go's jitter.
                wait = self._retry_period * (1.0 if leading else
                                             1.0 + self._rng.random() * JITTER_FACTOR)
                self._clock.sleep(wait, self._stop)
        finally:
            if self._release_on_cancel:
                self.release()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"lease-{self._name}", daemon=True)
        thread.start()
        return thread
