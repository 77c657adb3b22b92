"""Kubernetes Events about the targets, recorded as client-go's EventRecorder does.

A new event is a POST named ``<object>.<unix nanos in hex>``; the same event again (same
object, type, reason and message) is a PATCH of the first one's ``count`` and
``lastTimestamp`` — what the Role's ``patch`` on events is for — so a failure repeated
every tick is one event counted up, not thousands. Unlike client-go, the key includes the
object's resourceVersion: two scales are two events even when their messages match, while
a failure on an object that does not change is one. A PATCH answered 404 (the event
expired, after an hour by default) records it afresh.

Events are a courtesy: one attempt each, within the caller's deadline, and a failure is
logged, never raised.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from scaler.clock import Clock
from scaler.kube import KubeClient, TransportError
from scaler.policy import ScaleTargetRef

log = structlog.get_logger(__name__)

COMPONENT = "scaler"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# client-go keeps this many events for aggregation (maxLruCacheEntries).
CACHE_ENTRIES = 4096


@dataclass
class _Recorded:
    name: str
    count: int


class EventRecorder:
    """Records core/v1 Events about scale targets through ``client``."""

    def __init__(self, client: KubeClient, clock: Clock, *, host: str,
                 field_manager: str = COMPONENT) -> None:
        self._client = client
        self._clock = clock
        self._host = host
        self._params = f"?fieldManager={field_manager}"
        self._lock = threading.Lock()
        self._last_ns = 0
        self._recent: OrderedDict[tuple, _Recorded] = OrderedDict()

    def record(self, target: ScaleTargetRef, type_: str, reason: str, message: str, *,
               involved: dict[str, Any] | None = None, timeout: float) -> bool:
        """Record (or count up) an event; True when the API server took it."""
        obj: dict[str, Any] = {"apiVersion": target.api_version, "kind": target.kind,
                               "name": target.name, "namespace": target.namespace,
                               **(involved or {})}
        key = (tuple(sorted(obj.items())), type_, reason, message)
        with self._lock:
            # client-go names events "<object>.<unix nanos in hex>"; a clock that stands
            # still (a manual one) must still give each event its own name.
            self._last_ns = max(int(self._clock.now() * 1e9), self._last_ns + 1)
            event_ns = self._last_ns
            seen = self._recent.get(key)
            if seen is not None:
                self._recent.move_to_end(key)
        stamp = datetime.fromtimestamp(event_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        base = f"/api/v1/namespaces/{target.namespace}/events"
        try:
            if seen is not None:
                resp = self._client.request(
                    "PATCH", f"{base}/{seen.name}{self._params}",
                    body={"count": seen.count + 1, "lastTimestamp": stamp},
                    content_type=STRATEGIC_MERGE_PATCH, timeout=timeout)
                if resp.status == 200:
                    with self._lock:
                        seen.count += 1
                    return True
                if resp.status != 404:      # 404: expired; record it afresh below
                    return self._failed(target, reason, f"PATCH event: HTTP {resp.status}")
            name = f"{target.name}.{event_ns:x}"
            event = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": target.namespace},
                "involvedObject": obj, "reason": reason, "message": message, "type": type_,
                "source": {"component": COMPONENT, "host": self._host},
                "reportingComponent": COMPONENT, "reportingInstance": self._host,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            }
            resp = self._client.request("POST", base + self._params, body=event,
                                        timeout=timeout)
            if not 200 <= resp.status < 300:
                return self._failed(target, reason, f"POST event: HTTP {resp.status}")
        except TransportError as exc:
            return self._failed(target, reason, str(exc))
        with self._lock:
            self._recent[key] = _Recorded(name, 1)
            self._recent.move_to_end(key)
            while len(self._recent) > CACHE_ENTRIES:
                self._recent.popitem(last=False)
        return True

    @staticmethod
    def _failed(target: ScaleTargetRef, reason: str, error: str) -> bool:
        log.warning("event_failed", target=str(target), reason=reason, error=error)
        return False
