"""Shards on Kubernetes Leases: policies hashed into B buckets, each bucket a Lease, each
replica holding at most ceil(B / live replicas) of them (Knative's bucketed leader
election, with the cap it leaves to the StatefulSet ordinal done here by membership).

* A policy's bucket is a stable hash (CRC-32) of ``namespace/name`` (:func:`bucket_of`):
  the same in every replica and every release.
* Bucket k is the Lease ``<prefix>-bucket-<k>``. Every replica also renews its own
  membership Lease ``<prefix>-member-<id>``; the live replicas are the membership Leases
  seen renewed within a lease duration, so the cap ceil(B / live) needs no other
  coordination. All of them carry the label ``scaler.io/shard-group: <prefix>`` and one
  LIST per round reads them all.
* A round (every retry period): read the leases, renew the membership and the buckets
  held, give up those beyond the cap (a replica joined), take free or expired ones up to
  the cap, preferring the buckets a replica-specific rotation puts first so that
  candidates rarely race for the same one.

Exactly one writer per target, as for the single Lease (``lease.py``):

* a bucket is taken over only after its record was seen unchanged for a whole lease
  duration (client-go's observed time: no synchronized clocks needed), or once its
  holder cleared it;
* the holder's claim is anchored before its last successful renewal request and ends
  after the renew deadline, shorter than the lease duration; :meth:`Shards.may_write`
  answers from the injected clock, so it turns false in time even while a request hangs;
* a write happens inside :meth:`Shards.writing`, which counts it in flight; a bucket is
  handed over (a replica joined, or shutdown) only after its writes in flight ended, and
  no new write starts once the hand-over began.

Targets in buckets this replica does not hold are not queried and not decided; taking a
bucket over starts its targets afresh (windows from Prometheus history).
"""

from __future__ import annotations

import math
import random
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from scaler.clock import Clock, SystemClock
from scaler.kube import KubeClient, TransportError
from scaler.policy import Policy

log = structlog.get_logger(__name__)

GROUP_LABEL = "scaler.io/shard-group"
DEFAULT_BUCKETS = 10
MAX_BUCKETS = 1000


def shard_key(policy: Policy) -> str:
    """What a policy is hashed on: its target's namespace and its own name."""
    return f"{policy.scale_target_ref.namespace}/{policy.name}"


def bucket_of(key: str, buckets: int) -> int:
    """The bucket of ``key`` among ``buckets``: CRC-32, stable across processes."""
    return zlib.crc32(key.encode("utf-8")) % buckets


def _micro_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Seen:
    """A lease as last read, and since when (monotonic) its record has not changed."""

    spec: dict[str, Any]
    since: float
    version: str


class Shards:
    """Bucket leases for one replica; ``run()`` on its own thread, the loop asks
    :meth:`serves`, :meth:`may_write` and writes inside :meth:`writing`."""

    def __init__(self, client: KubeClient, namespace: str, prefix: str, identity: str, *,
                 buckets: int = DEFAULT_BUCKETS, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Clock | None = None, stop: threading.Event | None = None,
                 request_timeout: float | None = None, drain_timeout: float = 3.0,
                 rng: random.Random | None = None) -> None:
        if not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets ({buckets}) must be within 1..{MAX_BUCKETS}")
        if lease_duration <= renew_deadline:
            raise ValueError(f"lease_duration ({lease_duration}s) must be greater than "
                             f"renew_deadline ({renew_deadline}s)")
        if renew_deadline <= retry_period:
            raise ValueError(f"renew_deadline ({renew_deadline}s) must be greater than "
                             f"retry_period ({retry_period}s)")
        self.buckets = buckets
        self.identity = identity
        self.prefix = prefix
        self._client = client
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._namespace = namespace
        self._duration = lease_duration
        self._lease_seconds = max(1, math.ceil(lease_duration))
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._clock = clock or SystemClock()
        self._stop = stop or threading.Event()
        self._timeout = request_timeout or retry_period
        self._drain_timeout = drain_timeout
        self._rng = rng or random.Random()
        self.member = f"{prefix}-member-{zlib.crc32(identity.encode()):08x}"
        # A replica-specific order of preference: candidates start at different buckets.
        start = zlib.crc32(identity.encode()) % buckets
        self._preference = [(start + k) % buckets for k in range(buckets)]
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._renewed: dict[int, float] = {}      # bucket -> monotonic, before its renewal
        self._handing_over: set[int] = set()      # no new write: being released
        self._in_flight: dict[int, int] = {}
        self._seen: dict[str, _Seen] = {}         # lease name -> last record seen
        self.live = 1
        self._next_expiry: float | None = None    # monotonic: another's bucket frees up
        # Told whenever this replica gains a bucket (the loop wakes to serve it at once).
        self.on_gain: Any = None

    # ---- the loop's questions

    def bucket(self, policy: Policy) -> int:
        return bucket_of(shard_key(policy), self.buckets)

    def _holds(self, bucket: int) -> bool:
        renewed = self._renewed.get(bucket)
        return (renewed is not None and not self._stop.is_set()
                and self._clock.monotonic() - renewed < self._renew_deadline)

    def held(self) -> list[int]:
        with self._lock:
            return sorted(b for b in self._renewed if self._holds(b))

    def serves(self, policy: Policy) -> bool:
        """Whether this replica works on the policy: its bucket is held."""
        with self._lock:
            return self._holds(self.bucket(policy))

    def may_write(self, policy: Policy) -> bool:
        bucket = self.bucket(policy)
        with self._lock:
            return self._holds(bucket) and bucket not in self._handing_over

    @contextmanager
    def writing(self, policy: Policy) -> Iterator[bool]:
        """Around a write: yields whether it may go out; while it is out, its bucket is
        not handed over (shutdown or rebalancing wait for it)."""
        bucket = self.bucket(policy)
        with self._lock:
            allowed = self._holds(bucket) and bucket not in self._handing_over
            if allowed:
                self._in_flight[bucket] = self._in_flight.get(bucket, 0) + 1
        try:
            yield allowed
        finally:
            if allowed:
                with self._lock:
                    self._in_flight[bucket] -= 1
                    self._drained.notify_all()

    # ---- one round

    def _name(self, bucket: int) -> str:
        return f"{self.prefix}-bucket-{bucket}"

    def round(self) -> list[int]:
        """Read, renew, give up, take; returns the buckets held afterwards."""
        started = self._clock.monotonic()
        try:
            resp = self._client.request(
                "GET", f"{self._path}?labelSelector={GROUP_LABEL}%3D{self.prefix}",
                timeout=self._timeout)
        except TransportError as exc:
            log.warning("shard_round_failed", error=str(exc))
            return self.held()
        if resp.status != 200 or not isinstance(resp.body, dict):
            log.warning("shard_round_failed", error=f"LIST leases: HTTP {resp.status}")
            return self.held()
        leases = {}
        for lease in resp.body.get("items") or []:
            name = (lease.get("metadata") or {}).get("name", "")
            leases[name] = lease
            spec = lease.get("spec") or {}
            seen = self._seen.get(name)
            version = lease["metadata"].get("resourceVersion", "")
            if seen is None or seen.spec != spec:
                self._seen[name] = _Seen(spec, started, version)
            else:
                seen.version = version
        self._renew_member(leases.get(self.member), started)
        members = {self._seen[name].spec.get("holderIdentity") for name in leases
                   if name.startswith(f"{self.prefix}-member-") and name != self.member
                   and self._alive(name, started)}
        self.live = len(members) + 1
        cap = math.ceil(self.buckets / self.live)
        fair = self.buckets // self.live
        held = [b for b in self._preference if self._holds_now(b)]
        free, starving = self._balance(leases, members, fair, started)
        keep = cap
        if len(held) > fair and starving and not free:
            # Another replica holds fewer than its fair share and nothing is free: give
            # one bucket above the fair share up, so shares end within one of each other.
            keep = min(cap, len(held) - 1)
        # Beyond the cap (a replica joined) or the fair share: hand the least preferred over.
        for bucket in held[keep:]:
            self._hand_over(bucket, leases.get(self._name(bucket)))
        for bucket in held[:cap]:
            self._renew(bucket, leases.get(self._name(bucket)), started)
        # A replica at its fair share leaves free buckets to one below it.
        room = (min(keep, fair) if starving else keep) - len(self.held())
        self._next_expiry = None
        gained = False
        for bucket in self._preference:
            if room <= 0 or self._stop.is_set():
                break
            if self._holds_now(bucket):
                continue
            if self._take(bucket, leases.get(self._name(bucket)), started):
                room -= 1
                gained = True
        if gained and self.on_gain is not None:
            self.on_gain()
        return self.held()

    def _balance(self, leases: dict[str, Any], members: set[str], fair: int,
                 started: float) -> tuple[int, bool]:
        """(buckets free now, whether another live replica holds fewer than ``fair``)."""
        holding: dict[str, int] = {m: 0 for m in members}
        free = 0
        for k in range(self.buckets):
            lease = leases.get(self._name(k))
            spec = (lease or {}).get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            seen = self._seen.get(self._name(k))
            duration = spec.get("leaseDurationSeconds") or self._duration
            if lease is None or not holder or seen is None or started >= seen.since + duration:
                if not self._holds_now(k):
                    free += 1
                continue
            if holder in holding:
                holding[holder] += 1
        return free, any(n < fair for n in holding.values())

    def _holds_now(self, bucket: int) -> bool:
        with self._lock:
            return self._holds(bucket)

    def _alive(self, name: str, started: float) -> bool:
        seen = self._seen.get(name)
        if seen is None or not seen.spec.get("holderIdentity"):
            return False
        duration = seen.spec.get("leaseDurationSeconds") or self._duration
        return started < seen.since + duration

    def _body(self, name: str, lease: dict[str, Any] | None, holder: str,
              transitions: int) -> dict[str, Any]:
        now = _micro_time(self._clock.now())
        old = (lease or {}).get("spec") or {}
        ours = old.get("holderIdentity") == holder and holder
        meta: dict[str, Any] = {"name": name, "namespace": self._namespace,
                                "labels": {GROUP_LABEL: self.prefix}}
        if lease is not None:
            meta["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": holder,
                         "leaseDurationSeconds": self._lease_seconds if holder else 1,
                         "acquireTime": old.get("acquireTime", now) if ours else now,
                         "renewTime": now, "leaseTransitions": transitions}}

    def _put(self, name: str, lease: dict[str, Any] | None, holder: str,
             transitions: int) -> int:
        """Create or update a lease; the status (0: no answer)."""
        body = self._body(name, lease, holder, transitions)
        try:
            if lease is None:
                resp = self._client.request("POST", self._path, body=body,
                                            timeout=self._timeout)
            else:
                resp = self._client.request("PUT", f"{self._path}/{name}", body=body,
                                            timeout=self._timeout)
        except TransportError as exc:
            log.warning("shard_lease_write_failed", lease=name, error=str(exc))
            return 0
        if resp.status in (200, 201):
            self._seen[name] = _Seen(resp.body.get("spec") or {}, self._clock.monotonic(),
                                     resp.body["metadata"]["resourceVersion"])
        return resp.status

    def _renew_member(self, lease: dict[str, Any] | None, started: float) -> None:
        if self._stop.is_set():
            return
        self._put(self.member, lease, self.identity, 0)

    def _renew(self, bucket: int, lease: dict[str, Any] | None, started: float) -> None:
        if self._stop.is_set():
            return
        spec = (lease or {}).get("spec") or {}
        if lease is None or spec.get("holderIdentity") != self.identity:
            self._lose(bucket, "the lease no longer names this replica")
            return
        status = self._put(self._name(bucket), lease, self.identity,
                           spec.get("leaseTransitions") or 0)
        if status == 200:
            with self._lock:
                self._renewed[bucket] = started
        elif status == 409:
            self._lose(bucket, "the lease changed under us (409)")
        # Anything else: undecided; the claim lasts until the renew deadline.

    def _take(self, bucket: int, lease: dict[str, Any] | None, started: float) -> bool:
        name = self._name(bucket)
        if lease is not None:
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            seen = self._seen.get(name)
            duration = spec.get("leaseDurationSeconds") or self._duration
            if holder and holder != self.identity and (
                    seen is None or started < seen.since + duration):
                if seen is not None:    # the next round comes when it would be free
                    free_at = seen.since + duration
                    if self._next_expiry is None or free_at < self._next_expiry:
                        self._next_expiry = free_at
                return False     # held, and not seen unchanged for a lease duration
        transitions = ((lease or {}).get("spec") or {}).get("leaseTransitions") or 0
        status = self._put(name, lease, self.identity, transitions + (1 if lease else 0))
        if status in (200, 201):
            with self._lock:
                self._renewed[bucket] = started
                self._handing_over.discard(bucket)
            log.info("bucket_acquired", bucket=bucket, identity=self.identity,
                     live_replicas=self.live)
            return True
        return False

    def _lose(self, bucket: int, why: str) -> None:
        with self._lock:
            was = self._renewed.pop(bucket, None) is not None
        if was:
            log.warning("bucket_lost", bucket=bucket, identity=self.identity, why=why)

    def _hand_over(self, bucket: int, lease: dict[str, Any] | None,
                   deadline: float | None = None) -> bool:
        """Stop new writes, wait for those in flight, then clear the holder so another
        replica may take the bucket at once."""
        until = deadline if deadline is not None else (
            self._clock.monotonic() + self._drain_timeout)
        with self._lock:
            self._handing_over.add(bucket)
            while self._in_flight.get(bucket, 0) > 0:
                left = until - self._clock.monotonic()
                if left <= 0:
                    break
                self._drained.wait(min(left, 0.05))
            drained = self._in_flight.get(bucket, 0) == 0
        if not drained:
            # A write is still out: keep the bucket (no new writes) and try next round.
            return False
        with self._lock:
            self._renewed.pop(bucket, None)
        spec = (lease or {}).get("spec") or {}
        released = False
        if lease is not None and spec.get("holderIdentity") == self.identity:
            status = self._put(self._name(bucket), lease, "",
                               spec.get("leaseTransitions") or 0)
            released = status == 200
        with self._lock:
            self._handing_over.discard(bucket)
        log.info("bucket_released", bucket=bucket, identity=self.identity,
                 live_replicas=self.live, cleared=released)
        return released

    # ---- the thread, and shutdown

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except Exception:
                log.exception("shard_round_failed")
            wait = self._retry_period * (1.0 + 0.1 * self._rng.random())
            expiry = self._next_expiry
            if expiry is not None:
                # A bucket frees up sooner than the next round: be there when it does.
                wait = min(wait, max(0.05, expiry - self._clock.monotonic() + 0.01))
            self._clock.sleep(wait, self._stop)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="shards", daemon=True)
        thread.start()
        return thread

    def release(self, deadline: float | None = None) -> int:
        """Shutdown: hand every held bucket over and clear the membership, by
        ``deadline`` (a monotonic time). Returns how many buckets were cleared."""
        until = deadline if deadline is not None else self._clock.monotonic() + 2 * self._timeout
        with self._lock:
            held = list(self._renewed)
            self._handing_over.update(held)
        try:
            resp = self._client.request(
                "GET", f"{self._path}?labelSelector={GROUP_LABEL}%3D{self.prefix}",
                timeout=max(0.05, min(self._timeout, until - self._clock.monotonic())))
            leases = {(i.get("metadata") or {}).get("name"): i
                      for i in (resp.body.get("items") or [])} if resp.status == 200 else {}
        except TransportError:
            leases = {}
        cleared = 0
        for bucket in held:
            if self._clock.monotonic() >= until:
                break
            cleared += self._hand_over(bucket, leases.get(self._name(bucket)), until)
        member = leases.get(self.member)
        if member is not None and self._clock.monotonic() < until:
            self._put(self.member, member, "", 0)
        return cleared
