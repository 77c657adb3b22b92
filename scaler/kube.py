"""The Kubernetes API client shared by the actuator and the lease: plain JSON over the
kubernetes package's REST layer.

Weight: the typed kubernetes client builds pydantic models and costs ~0.8 s and ~46 MiB
once AppsV1Api exists (reference/infra-notes.md §2). This module uses only the package's
``Configuration`` and ``ApiClient`` (auth, TLS, kubeconfig and in-cluster loading, the
urllib3 pool), exchanges plain JSON, and imports the package only when a client is built.

Retries are not done here: urllib3's own are switched off, and callers retry with
tenacity (the actuator) or on their own rhythm (the lease). What went wrong is named
precisely for them: a refused connection is ``unreachable`` (urllib3 files it under
timeouts), a 429/503's Retry-After travels with the :class:`Response`.

Enters: a method, a path, a JSON body. Leaves: a :class:`Response`, or a
:class:`TransportError` when no HTTP answer came. May import: the kubernetes package,
urllib3, the standard library and ``scaler.kubeconfig`` (where credentials come from).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from kubernetes.client import Configuration

    from scaler.kubeconfig import Credentials


class TransportError(Exception):
    """A request that got no HTTP answer (e.g. a TLS failure, which retrying won't fix)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(TransportError):
    """A failure worth retrying (429, 5xx, timeout, connection error). ``retry_after`` is
    the pause the server asked for (seconds), when it asked."""

    def __init__(self, reason: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(reason, detail)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Response:
    status: int
    body: Any          # parsed JSON, or the raw text when the body is not JSON
    headers: Mapping[str, str]

    @property
    def retry_after(self) -> float | None:
        """Seconds from a ``Retry-After: N`` header (the API server sends seconds)."""
        value = str(self.headers.get("Retry-After", "")).strip()
        return float(value) if value.isdigit() else None


def without_userinfo(url: str) -> str:
    """``https://user:pass@host:6443`` → ``https://host:6443``: an address safe to log."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def configuration(creds: Credentials) -> Configuration:
    """The kubernetes package's Configuration for these credentials; the Authorization header
    is asked of them before every request (a rotated token or an expired exec token)."""
    from kubernetes.client import Configuration

    config = Configuration()
    config.host = creds.server
    config.verify_ssl = not creds.insecure
    config.ssl_ca_cert = creds.ca_file
    config.cert_file = creds.cert_file
    config.key_file = creds.key_file
    config.tls_server_name = creds.tls_server_name
    if creds.authorization() is not None:
        config.api_key["authorization"] = creds.authorization()
        config.refresh_api_key_hook = (
            lambda c: c.api_key.__setitem__("authorization", creds.authorization()))
    return config


class KubeClient:
    """Plain JSON over the kubernetes package's REST layer (no typed models).

    ``request`` returns any HTTP response; only transport failures raise (TransportError).
    """

    def __init__(self, configuration: Configuration, *, user_agent: str = "scaler") -> None:
        import urllib3
        from kubernetes.client import ApiClient
        from kubernetes.client.exceptions import ApiException

        self._refused = urllib3.exceptions.NewConnectionError
        self._timeout_error = urllib3.exceptions.TimeoutError
        self._http_error = urllib3.exceptions.HTTPError
        self._api_exception = ApiException
        # tenacity owns retries: no urllib3 retries, no client-go style read retries.
        configuration.retries = False
        configuration.client_go_retries = False
        self._api = ApiClient(configuration)
        # The API server names a writer in managedFields after its User-Agent up to the
        # first "/": "scaler", whatever follows.
        self._api.user_agent = user_agent

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, *, context: str | None = None,
                    user_agent: str = "scaler") -> KubeClient:
        """Find credentials as kubectl does: ``kubeconfig`` if given, else $KUBECONFIG, else
        ~/.kube/config, else the in-cluster service account (read by
        :mod:`scaler.kubeconfig`, which the activator shares); ``context`` if given."""
        from scaler import kubeconfig as kubeconfigs

        return cls(configuration(kubeconfigs.load(kubeconfig, context=context)),
                   user_agent=user_agent)

    @property
    def host(self) -> str:
        """The API server's address, without credentials: safe to log."""
        return without_userinfo(str(self._api.configuration.host))

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
        except self._refused as exc:
            # Before the timeout clause: urllib3 makes a refused connection (and a name
            # that does not resolve) a subclass of its connect timeout.
            raise TransientError("unreachable", f"{method} {path}: cannot connect to "
                                                f"{self.host}: {_cause(exc)}") from None
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

    def stream(self, method: str, path: str, *, idle_timeout: float) -> Any:
        """A streamed answer (a WATCH), one parsed JSON line at a time, until the server
        ends it. Raises TransportError when no answer came or the stream broke, and a
        TransportError naming the status when the answer is not a 200."""
        headers = {"Accept": "application/json"}
        method, url, headers, _body, _ = self._api.param_serialize(
            method=method, resource_path=path, header_params=headers,
            auth_settings=["BearerToken"])
        try:
            resp = self._api.call_api(method, url, header_params=headers,
                                      _request_timeout=(10.0, idle_timeout))
        except self._refused as exc:
            raise TransientError("unreachable", f"{method} {path}: cannot connect to "
                                                f"{self.host}: {_cause(exc)}") from None
        except self._http_error as exc:
            raise TransientError("unavailable", f"{method} {path}: {exc}") from None
        except self._api_exception as exc:
            raise TransportError("transport", f"{method} {path}: {exc.reason}") from None
        raw = resp.response
        try:
            if resp.status != 200:
                body = raw.read()
                raise TransientError(f"http_{resp.status}", f"{method} {path}: HTTP "
                                     f"{resp.status} {body[:200]!r}")
            pending = b""
            for chunk in raw.stream(65536, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, _, pending = pending.partition(b"\n")
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except ValueError:
                            raise TransientError("bad_response", f"{method} {path}: an "
                                                 "event that is not JSON") from None
        except self._http_error as exc:     # read timeout, reset, protocol errors
            raise TransientError("unavailable", f"{method} {path}: {exc}") from None
        finally:
            raw.release_conn()

    def close(self) -> None:
        self._api.close()


def _cause(exc: BaseException) -> str:
    """The operating system's words for a failed connect ("Connection refused")."""
    inner = exc.__cause__ or exc.__context__
    strerror = getattr(inner, "strerror", None)
    if isinstance(strerror, str):
        return strerror
    return str(exc).rpartition(": ")[2] or str(exc)


# ---------------------------------------------------------------------------------------
# The watch cache: LIST + WATCH of one kind in one namespace (or all), as client-go's
# reflector does it, so that thousands of targets cost no read per tick.


class Informer:
    """A kind's objects in a namespace (``namespace`` None: every namespace), kept
    current by LIST then WATCH from the list's resourceVersion.

    * Bookmarks move the resourceVersion on without objects, so a reconnect resumes
      close to now; a watch that ends cleanly resumes from the last one seen.
    * A 410 (the resourceVersion was compacted), any ERROR event, an answer that is not
      a watch, or a failed request means a fresh LIST (after a short backoff on failure);
      every ``resync`` seconds the list is taken again anyway.
    * ``transform`` keeps only what the caller needs of each object (the objects
      themselves, managedFields and all, are never kept).

    :meth:`fresh` says whether the contents can be trusted now: listed, and connected
    (or disconnected for less than ``stale_after`` seconds). Callers read the API
    directly otherwise. Time comes from the injected clock; one thread per informer.
    """

    def __init__(self, client: KubeClient, collection: str, namespace: str | None,
                 transform: Any, *, clock: Any, stop: Any, resync: float = 300.0,
                 watch_timeout: int = 240, stale_after: float = 10.0,
                 page: int = 500, log: Any = None) -> None:
        self._client = client
        self.collection = collection      # e.g. /apis/apps/v1/namespaces/shop/deployments
        self.namespace = namespace
        self._transform = transform
        self._clock = clock
        self._stop = stop
        self._resync = resync
        self._watch_timeout = watch_timeout
        self._stale_after = stale_after
        self._page = page
        self._log = log
        self._items: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._listed_at: float | None = None      # monotonic
        self._lost_at: float | None = None        # monotonic, while disconnected
        self.resource_version = ""
        self.lists = 0                            # LISTs made (for tests and metrics)
        # Set once the first LIST has been answered, whatever the answer: readers may wait
        # for it at start-up, never longer (a Role without list must not slow them).
        self.listed = threading.Event()
        self.relists_after_error = 0
        self._thread: Any = None

    # ---- what callers ask

    def get(self, namespace: str, name: str) -> Any:
        with self._lock:
            return self._items.get((namespace, name))

    def put(self, namespace: str, name: str, value: Any) -> None:
        """Write through: the caller's own successful write, ahead of its watch event."""
        with self._lock:
            if (namespace, name) in self._items:
                self._items[(namespace, name)] = value

    def fresh(self) -> bool:
        with self._lock:
            listed, lost = self._listed_at, self._lost_at
        if listed is None:
            return False
        return lost is None or self._clock.monotonic() - lost < self._stale_after

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    # ---- the reflector

    def start(self) -> Any:
        self._thread = threading.Thread(target=self.run, daemon=True,
                                        name=f"watch {self.collection}")
        self._thread.start()
        return self._thread

    def run(self) -> None:
        backoff = 0.5
        must_list = True
        while not self._stop.is_set():
            try:
                if must_list or (self._listed_at is not None and self._clock.monotonic()
                                 - self._listed_at >= self._resync):
                    self._list()
                    must_list = False
                    self.listed.set()
                must_list = not self._watch()
                backoff = 0.5
            except (TransportError, _WatchFailed) as exc:
                self.listed.set()
                self._disconnected()
                if self._log is not None:
                    self._log.warning("watch_failed", collection=self.collection,
                                      error=str(exc), retry_in=backoff)
                must_list = True
                self.relists_after_error += 1
                self._clock.sleep(backoff, self._stop)
                backoff = min(backoff * 2, 10.0)

    def _disconnected(self) -> None:
        with self._lock:
            if self._lost_at is None:
                self._lost_at = self._clock.monotonic()

    def _list(self) -> None:
        items: dict[tuple[str, str], Any] = {}
        token = ""
        rv = ""
        while True:
            query = f"?limit={self._page}" + (f"&continue={token}" if token else "")
            resp = self._client.request("GET", self.collection + query, timeout=30.0)
            if resp.status == 410 and token:
                raise _WatchFailed("the list's continue token expired (410)")
            if resp.status != 200 or not isinstance(resp.body, dict):
                raise _WatchFailed(f"LIST {self.collection}: HTTP {resp.status}")
            for obj in resp.body.get("items") or []:
                meta = obj.get("metadata") or {}
                items[(meta.get("namespace", ""), meta.get("name", ""))] = self._transform(obj)
            meta = resp.body.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion", ""))
            token = meta.get("continue") or ""
            if not token:
                break
        with self._lock:
            self._items = items
            self.resource_version = rv
            self._listed_at = self._clock.monotonic()
            self._lost_at = None
            self.lists += 1

    def _watch(self) -> bool:
        """One watch stream, until it ends. True: resume from the last resourceVersion;
        False: list again (410 or an ERROR event)."""
        query = (f"?watch=1&allowWatchBookmarks=true&resourceVersion={self.resource_version}"
                 f"&timeoutSeconds={self._watch_timeout}")
        for event in self._client.stream("GET", self.collection + query,
                                         idle_timeout=self._watch_timeout + 30.0):
            if self._stop.is_set():
                return True
            kind = event.get("type")
            obj = event.get("object") or {}
            meta = obj.get("metadata") or {}
            if kind == "ERROR":
                code = obj.get("code")
                if self._log is not None:
                    self._log.info("watch_expired" if code == 410 else "watch_error",
                                   collection=self.collection, code=code,
                                   message=obj.get("message"))
                self.relists_after_error += 1
                return False
            rv = str(meta.get("resourceVersion", ""))
            key = (meta.get("namespace", ""), meta.get("name", ""))
            with self._lock:
                self._lost_at = None
                if kind in ("ADDED", "MODIFIED"):
                    self._items[key] = self._transform(obj)
                elif kind == "DELETED":
                    self._items.pop(key, None)
                if rv:
                    self.resource_version = rv
        return True


class _WatchFailed(Exception):
    pass
