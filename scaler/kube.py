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

    def close(self) -> None:
        self._api.close()


def _cause(exc: BaseException) -> str:
    """The operating system's words for a failed connect ("Connection refused")."""
    inner = exc.__cause__ or exc.__context__
    strerror = getattr(inner, "strerror", None)
    if isinstance(strerror, str):
        return strerror
    return str(exc).rpartition(": ")[2] or str(exc)
