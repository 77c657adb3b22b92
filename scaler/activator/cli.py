"""``scaler activator``: argument parsing and the process's life (signals, drain, exit codes).

    python -m scaler.activator --routes routes.yaml [--listen 0.0.0.0:8080]
        [--admin-listen 0.0.0.0:9090] [--daemon-url http://scaler:8080 ...]

SIGHUP re-reads the routes file's static endpoints; SIGTERM or SIGINT drains (stop
accepting, finish what is in flight) and exits 0. Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    pass


def address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (port 0-65535)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be seconds above 0, at most 3600")
    return value


def build_parser(prog: str = "scaler activator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Hold requests for workloads at zero replicas, poke the "
                               "daemon, and forward to ready endpoints.")
    p.add_argument("--routes", required=True, type=Path, metavar="FILE",
                   help="routes file (YAML): policies, hosts, limits, static endpoints")
    p.add_argument("--listen", type=address, default=("0.0.0.0", 8080), metavar="HOST:PORT",
                   help="where workload traffic arrives (default 0.0.0.0:8080)")
    p.add_argument("--admin-listen", type=address, default=("0.0.0.0", 9090),
                   metavar="HOST:PORT",
                   help="/v1/stats, /metrics, /healthz, /readyz (default 0.0.0.0:9090)")
    p.add_argument("--daemon-url", action="append", default=[], metavar="URL",
                   help="a daemon to poke when a request arrives at zero (repeatable)")
    p.add_argument("--connect-timeout", type=positive, default=5.0, metavar="SECONDS",
                   help="connecting to an endpoint (default 5)")
    p.add_argument("--drain-timeout", type=positive, default=30.0, metavar="SECONDS",
                   help="on SIGTERM, how long requests in flight may finish (default 30)")
    p.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                   help="auto: JSON unless stdout is a terminal")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scaler.activator.config import ConfigError, load_routes
    from scaler.activator.poke import DaemonURL

    try:
        routes, endpoints = load_routes(args.routes)
        for url in args.daemon_url:
            try:
                DaemonURL(url)
            except ValueError as exc:
                raise UsageError(f"--daemon-url: {exc}") from None
    except ConfigError as exc:
        for line in exc.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return run(args, routes, endpoints)
    except OSError as exc:
        print(f"error: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (about twice the requests per core), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(args, routes, endpoints) -> int:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(serve(args, routes, endpoints))


async def serve(args, routes, endpoints) -> int:
    import structlog

    from scaler.activator.config import ConfigError, load_routes
    from scaler.activator.endpoints import StaticEndpoints
    from scaler.activator.observability import configure_logging
    from scaler.activator.server import Activator

    configure_logging(json=None if args.log_format == "auto" else args.log_format == "json")
    log = structlog.get_logger("activator")
    source = StaticEndpoints(endpoints)
    activator = Activator(routes, source, daemon_urls=args.daemon_url, log=log,
                          connect_timeout=args.connect_timeout)
    await activator.start(args.listen, args.admin_listen)
    # Everything allocated so far lives as long as the process: out of the collector's
    # sight, each young-generation collection on the request path stays short.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload() -> None:
        try:
            new_routes, new_endpoints = load_routes(args.routes)
        except ConfigError as exc:
            log.error("routes file not reloaded; keeping the last endpoints",
                      errors=exc.errors)
            return
        if new_routes != routes:
            log.warning("route definitions changed on disk: only endpoints are reloaded, "
                        "restart to apply the rest")
        for policy, eps in new_endpoints.items():
            if policy in activator.states:
                source.set(policy, eps)

    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    log.info("activator started", listen=f"{args.listen[0]}:{activator.port}",
             admin=f"{args.admin_listen[0]}:{activator.admin_port}",
             policies=[r.policy for r in routes], daemons=args.daemon_url,
             loop=type(loop).__module__.split(".")[0], id=activator.id)
    await stop.wait()
    log.info("draining", in_flight=activator.in_flight(), timeout=args.drain_timeout)
    left = await activator.drain(args.drain_timeout)
    await activator.stop()
    log.info("activator stopped", cut_short=left)
    return 0
