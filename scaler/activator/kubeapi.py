"""A lean asyncio client for the two calls the activator makes to the Kubernetes API: LIST
and WATCH, JSON over HTTP/1.1, with the credentials ``scaler.kubeconfig`` loads.

Why not the kubernetes package: importing its client costs about 36 MiB (measured), more
than half of the activator's budget, and it is synchronous. This is one connection per
call, parsed with httptools like the rest of the activator; a WATCH yields one event (a
dict with ``type`` and ``object``) per line of the streamed body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from httptools import HttpParserError, HttpResponseParser

from scaler.kubeconfig import Credentials

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0


class KubeAPIError(Exception):
    """An answer other than 200, or no answer; ``status`` is 0 when none came."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Gone(KubeAPIError):
    """410: the resourceVersion is too old; list again."""


class _Response:
    """httptools callbacks for one response; the body arrives through ``sink``."""

    def __init__(self, sink) -> None:
        self.status = 0
        self.head_done = False
        self.complete = False
        self.sink = sink

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, data: bytes) -> None:
        self.sink(data)

    def on_message_complete(self) -> None:
        self.complete = True


def _status_message(status: int, body: bytes) -> str:
    try:
        doc = json.loads(body)
        message = doc.get("message") or doc.get("reason") or ""
    except (ValueError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    return f"HTTP {status}: {message}".rstrip(": ")


class KubeAPI:
    def __init__(self, creds: Credentials, *, user_agent: str = "scaler-activator") -> None:
        parts = urlsplit(creds.server)
        self.creds = creds
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.netloc = parts.netloc
        self.user_agent = user_agent
        self._ssl = creds.ssl_context()

    @property
    def server(self) -> str:
        return self.creds.server

    async def _send(self, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        # A token file read, or an exec plugin run, may block: off the event loop.
        auth = await loop.run_in_executor(None, self.creds.authorization)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                self.host, self.port, ssl=self._ssl,
                server_hostname=(self.creds.tls_server_name or self.host) if self._ssl
                else None, limit=1 << 20), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            raise KubeAPIError(0, f"cannot connect to {self.server}: "
                                  f"{exc or type(exc).__name__}") from None
        lines = [f"GET {self.base}{path} HTTP/1.1", f"Host: {self.netloc}",
                 "Accept: application/json", f"User-Agent: {self.user_agent}",
                 "Connection: close"]
        if auth:
            lines.append(f"Authorization: {auth}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return reader, writer

    async def get(self, path: str) -> dict:
        """GET ``path`` (with its query): the JSON object of a 200 answer."""
        body = bytearray()
        response = _Response(body.extend)
        reader, writer = await self._send(path)
        try:
            parser = HttpResponseParser(response)
            while not response.complete:
                data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
                if not data:
                    break
                parser.feed_data(data)
            status = parser.get_status_code()
        except (HttpParserError, OSError, asyncio.TimeoutError) as exc:
            raise KubeAPIError(0, f"GET {path}: {exc or type(exc).__name__}") from None
        finally:
            writer.close()
        if status != 200:
            error = Gone if status == 410 else KubeAPIError
            raise error(status, f"GET {path}: {_status_message(status, bytes(body))}")
        try:
            return json.loads(body)
        except ValueError:
            raise KubeAPIError(status, f"GET {path}: the answer is not JSON") from None

    async def watch(self, path: str, *, idle_timeout: float) -> AsyncIterator[dict]:
        """WATCH ``path`` (its query must hold ``watch=1``): each event as it arrives, until
        the server ends the watch. No byte for ``idle_timeout`` seconds ends it too."""
        pending = bytearray()
        response = _Response(pending.extend)
        parser = HttpResponseParser(response)
        reader, writer = await self._send(path)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), idle_timeout)
                    if data:
                        parser.feed_data(data)
                except (HttpParserError, OSError, asyncio.TimeoutError) as exc:
                    raise KubeAPIError(0, f"watch {path}: "
                                          f"{exc or type(exc).__name__}") from None
                if response.head_done and parser.get_status_code() != 200:
                    while data and not response.complete:
                        data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
                        parser.feed_data(data)
                    status = parser.get_status_code()
                    error = Gone if status == 410 else KubeAPIError
                    raise error(status, f"watch {path}: "
                                        f"{_status_message(status, bytes(pending))}")
                while b"\n" in pending:
                    line, _, rest = bytes(pending).partition(b"\n")
                    pending[:] = rest
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except ValueError:
                            raise KubeAPIError(200, f"watch {path}: an event that is not "
                                                    "JSON") from None
                if response.complete or not data:
                    return
        finally:
            writer.close()
