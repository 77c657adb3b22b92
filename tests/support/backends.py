"""Real HTTP backends on 127.0.0.1 for the activator's tests and benchmarks.

:class:`Backend` is an aiohttp server (an HTTP implementation independent of the
activator's) running on its own event loop in a thread. It answers:

- ``/echo``: the request as JSON (method, path, query, headers, body length and SHA-256);
- ``/upload``: reads the body as it streams, noting when the first bytes arrived;
- ``/chunked?n=&delay=``: n chunks, one every ``delay`` seconds (no Content-Length);
- ``/bytes?n=``: n bytes with a Content-Length;
- ``/status?code=``: an empty answer with that status (204, 304, ...);
- ``/gate``: waits until the test opens the gate; counts concurrency and cancellations;
- ``/id``: this backend's name, after its ``delay`` (balancing), ``/ws``: a WebSocket echo;
- ``/order?i=``: records the arrival order of ``i``.

:func:`fast_backend_process` starts a minimal keep-alive responder (asyncio Protocol on
uvloop) as its own process: for load and latency measurements, where the backend must cost
as little as possible.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiohttp import WSMsgType, web


class Backend:
    def __init__(self, name: str = "backend", port: int = 0, delay: float = 0.0) -> None:
        self.name = name
        self.port = port
        self.delay = delay                   # added to every /id answer
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.requests: list[dict] = []       # what /echo and /upload saw
        self.order: list[str] = []
        self.first_body_at: float | None = None
        self.upload_chunks = 0
        self.gate_in_flight = 0
        self.gate_max = 0
        self.gate_seen = 0
        self.gate_cancelled = 0
        self.gate_finished = 0
        self._gate: asyncio.Event | None = None
        self.hits = 0

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Backend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Backend:
        self._thread = threading.Thread(target=self._run, name=f"backend-{self.name}",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("backend did not start")
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._serve())
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    async def _serve(self) -> None:
        self._gate = asyncio.Event()
        app = web.Application(client_max_size=1 << 34)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_route("*", "/echo/{tail:.*}", self._echo)
        app.router.add_post("/upload", self._upload)
        app.router.add_get("/chunked", self._chunked)
        app.router.add_get("/bytes", self._bytes)
        app.router.add_route("*", "/status", self._status)
        app.router.add_get("/gate", self._gated)
        app.router.add_get("/id", self._id)
        app.router.add_get("/order", self._order)
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=2048)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def open_gate(self) -> None:
        self.loop.call_soon_threadsafe(self._gate.set)

    def close_gate(self) -> None:
        self.loop.call_soon_threadsafe(self._gate.clear)

    # -- handlers ---------------------------------------------------------------------------
    async def _echo(self, request: web.Request) -> web.Response:
        self.hits += 1
        digest = hashlib.sha256()
        size = 0
        async for data in request.content.iter_any():
            digest.update(data)
            size += len(data)
        seen = {"method": request.method, "path": request.path, "target": request.raw_path,
                "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                            for k, v in request.raw_headers],
                "version": f"{request.version.major}.{request.version.minor}",
                "body_bytes": size, "body_sha256": digest.hexdigest(), "backend": self.name}
        self.requests.append(seen)
        return web.json_response(seen, headers={"X-Backend": self.name,
                                                "Keep-Alive": "timeout=5",
                                                "X-Custom-Answer": "yes"})

    async def _upload(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for data in request.content.iter_any():
            if self.first_body_at is None:
                self.first_body_at = time.monotonic()
            self.upload_chunks += 1
            digest.update(data)
            size += len(data)
        return web.json_response({"bytes": size, "sha256": digest.hexdigest()})

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "5"))
        delay = float(request.query.get("delay", "0"))
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(n):
            await response.write(f"chunk {i}\n".encode())
            if delay:
                await asyncio.sleep(delay)
        await response.write_eof()
        return response

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "0"))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = n
        await response.prepare(request)
        block = b"x" * 65536
        left = n
        while left > 0:
            await response.write(block[:min(left, len(block))])
            left -= min(left, len(block))
        await response.write_eof()
        return response

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.query.get("code", "204"))
        return web.Response(status=code, headers={"X-Status": str(code)})

    async def _gated(self, request: web.Request) -> web.Response:
        self.gate_seen += 1
        self.gate_in_flight += 1
        self.gate_max = max(self.gate_max, self.gate_in_flight)
        try:
            await self._gate.wait()
        except asyncio.CancelledError:
            self.gate_cancelled += 1
            raise
        finally:
            self.gate_in_flight -= 1
        self.gate_finished += 1
        return web.Response(text=self.name)

    async def _id(self, request: web.Request) -> web.Response:
        self.hits += 1
        delay = float(request.query.get("delay", "0")) + self.delay
        if delay:
            await asyncio.sleep(delay)
        return web.Response(text=self.name)

    async def _order(self, request: web.Request) -> web.Response:
        self.order.append(request.query.get("i", ""))
        return web.Response(text=request.query.get("i", ""))

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str("echo: " + message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws


# A keep-alive responder that costs next to nothing per request, for load tests: answers
# every request head with the same small 200 (requests with bodies are not supported).
FAST_BACKEND = r'''
import asyncio, sys
try:
    import uvloop
    new_loop = uvloop.new_event_loop
except ImportError:
    new_loop = asyncio.new_event_loop
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nhello\n"
class Responder(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        answers = self.buffer.count(b"\r\n\r\n")
        if answers:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(ANSWER * answers)
async def main(port):
    server = await asyncio.get_running_loop().create_server(
        Responder, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
with asyncio.Runner(loop_factory=new_loop) as runner:
    runner.run(main(int(sys.argv[1])))
'''


def fast_backend_process(port: int = 0, cpu: int | None = None) -> tuple[subprocess.Popen, int]:
    """Start the minimal responder as a process (pinned to ``cpu`` if given); returns the
    process and its port. Stop it with ``process.terminate()``."""
    cmd = [sys.executable, "-c", FAST_BACKEND, str(port)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise RuntimeError("the fast backend did not start")
    return process, int(line)


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


class RawBackend:
    """A backend that speaks bytes: records what arrives on each connection and answers
    with a scripted reply, for framing cases no well-behaved server produces on demand.

    ``reply(request_bytes) -> (answer_bytes, close)`` is called once the request head (and
    ``read_body`` bytes of body) have arrived.
    """

    def __init__(self, reply, *, read_body: int = 0) -> None:
        import socket

        self.reply = reply
        self.read_body = read_body
        self.received: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> RawBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.server.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    part = conn.recv(65536)
                    if not part:
                        return
                    data += part
                head_end = data.index(b"\r\n\r\n") + 4
                while len(data) < head_end + self.read_body:
                    part = conn.recv(65536)
                    if not part:
                        break
                    data += part
                self.received.append(data)
                answer, close = self.reply(data)
                conn.sendall(answer)
                if close:
                    return
                data = b""
