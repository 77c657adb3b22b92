"""The activator's view of the cluster: a Service's EndpointSlices, listed then watched.

:class:`ServiceSlices` keeps one Service's slices current: a LIST, then a WATCH from its
resourceVersion (with bookmarks, so a quiet watch can resume where it was), a new WATCH
when the server ends one, and a new LIST after ``410 Gone``. It yields the full set of
slices after every change. When the API server cannot be reached it retries with backoff
and yields nothing meanwhile: whoever consumes it keeps the last set it had.

:class:`EndpointSliceSource` is the :class:`~scaler.activator.endpoints.EndpointSource`
over it: a route's ready endpoints on its port. :class:`DaemonDiscovery` gives the poker
the daemons behind their Service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from scaler.activator.endpoints import Endpoint
from scaler.activator.kubeapi import Gone, KubeAPI, KubeAPIError
from scaler.endpointslices import collection_path, ready_endpoints, selector, url_host

WATCH_SECONDS = 300          # the server ends a watch after this; the next one resumes
RETRY_FIRST = 0.5
RETRY_MAX = 30.0


class _Quiet:
    def info(self, *args: object, **kwargs: object) -> None:
        pass

    warning = error = info


class ServiceSlices:
    def __init__(self, api: KubeAPI, namespace: str, service: str, *, log=None,
                 watch_seconds: int = WATCH_SECONDS, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX) -> None:
        self.api = api
        self.namespace = namespace
        self.service = service
        self.log = log or _Quiet()
        self.watch_seconds = watch_seconds
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.lists = 0           # LISTs made: the first, and one after each 410 or failure
        self.watches = 0

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service}"

    async def __aiter__(self) -> AsyncIterator[dict[str, dict]]:
        path = collection_path(self.namespace)
        query = selector(self.service)
        retry = self.retry_first
        failing: str | None = None
        while True:
            try:
                self.lists += 1
                doc = await self.api.get(f"{path}?{query}")
                slices = {_name(s): s for s in doc.get("items") or [] if isinstance(s, dict)}
                version = (doc.get("metadata") or {}).get("resourceVersion", "")
                if failing is not None:
                    self.log.info("endpoint watch recovered", service=str(self))
                    failing = None
                retry = self.retry_first
                yield dict(slices)
                while True:
                    self.watches += 1
                    began, seen = asyncio.get_running_loop().time(), 0
                    events = self.api.watch(
                        f"{path}?{query}&watch=1&allowWatchBookmarks=true"
                        f"&resourceVersion={version}&timeoutSeconds={self.watch_seconds}",
                        idle_timeout=self.watch_seconds + 60)
                    async with aclosing(events):
                        async for event in events:
                            seen += 1
                            kind = event.get("type")
                            obj = event.get("object") or {}
                            if kind == "ERROR":
                                if obj.get("code") == 410:
                                    raise Gone(410, obj.get("message") or "expired")
                                raise KubeAPIError(int(obj.get("code") or 0),
                                                   obj.get("message") or "watch error")
                            version = (obj.get("metadata") or {}).get("resourceVersion", version)
                            if kind == "BOOKMARK":
                                continue
                            if kind == "DELETED":
                                slices.pop(_name(obj), None)
                            elif kind in ("ADDED", "MODIFIED"):
                                slices[_name(obj)] = obj
                            else:
                                continue
                            yield dict(slices)
                    if not seen and asyncio.get_running_loop().time() - began < 1.0:
                        # Ended at once without an event: not a timeout, a refusal.
                        raise KubeAPIError(0, "the watch ended at once")
            except Gone:
                # Too old to resume: list again at once (what an informer does).
                self.log.info("endpoint watch expired; listing again", service=str(self))
                continue
            except (KubeAPIError, OSError, ValueError) as exc:
                reason = str(exc)
                if failing is None:
                    self.log.warning("endpoint watch failing; keeping the last endpoints",
                                     service=str(self), reason=reason,
                                     retry_in=round(retry, 3))
                failing = reason
                await asyncio.sleep(retry)
                retry = min(self.retry_max, retry * 2)


def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


class EndpointSliceSource:
    """A route's ready endpoints from its Service's EndpointSlices (in its namespace)."""

    def __init__(self, api: KubeAPI, *, log=None, **options) -> None:
        self.api = api
        self.log = log
        self.options = options
        self.watchers: dict[str, ServiceSlices] = {}

    async def watch(self, route) -> AsyncIterator[frozenset[Endpoint]]:
        slices = ServiceSlices(self.api, route.namespace, route.service, log=self.log,
                               **self.options)
        self.watchers[route.policy] = slices
        last: frozenset[Endpoint] | None = None
        async for current in slices:
            ready = frozenset(Endpoint(e.address, e.port)
                              for e in ready_endpoints(current.values(), route.port))
            if ready != last:
                last = ready
                yield ready


class DaemonDiscovery:
    """The daemons' poke URLs from their Service's EndpointSlices, handed to ``update``.

    Every listed endpoint that is not terminating is poked, ready or not: a standby daemon
    that is not ready yet still keeps its windows current for a leader change.
    """

    def __init__(self, api: KubeAPI, namespace: str, service: str, port: int | str,
                 update: Callable[[list[str]], None], *, log=None, **options) -> None:
        self.slices = ServiceSlices(api, namespace, service, log=log, **options)
        self.port = port
        self.update = update

    async def run(self) -> None:
        async for current in self.slices:
            urls = sorted({f"http://{url_host(e.address)}:{e.port}"
                           for e in _serving(current.values(), self.port)})
            self.update(urls)


def _serving(slices, port):
    """Endpoints that are not terminating, ready or not (pokes go to standbys too)."""
    relaxed = []
    for s in slices:
        copy = dict(s)
        copy["endpoints"] = [
            dict(e, conditions={"ready": not (e.get("conditions") or {}).get("terminating")})
            for e in s.get("endpoints") or [] if isinstance(e, dict)]
        relaxed.append(copy)
    return ready_endpoints(relaxed, port)
