"""``scaler activator``: argument parsing and the process's life (signals, reload, drain).

    scaler activator --policy PATH [--kubeconfig F] [--listen 0.0.0.0:8080]
        [--admin-listen 0.0.0.0:9090] [--daemon-url http://scaler:8080 ...]
        [--daemon-service scaler-api[:PORT]] [--namespace NS]
    python -m scaler.activator --routes routes.yaml ...      # static endpoints, no cluster

With ``--policy`` the activator routes every policy that has an ``activator`` block and
watches its Service's EndpointSlices (credentials as the daemon's: ``--kubeconfig``,
``$KUBECONFIG`` or the service account); a changed policy file, or SIGHUP, is validated
and applied. With ``--routes`` (local runs, tests) endpoints are static and SIGHUP re-reads
them. The daemons to poke are ``--daemon-url`` and, in a cluster, the endpoints of
``--daemon-service``. SIGTERM or SIGINT drains (stop accepting, finish what is in flight)
and exits 0. Bad input: one line per problem on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
POLICY_CHECK_INTERVAL = 5.0      # seconds between looks at the policy files' mtimes


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


def service_port(text: str) -> tuple[str, int | str]:
    """``NAME`` or ``NAME:PORT`` (a port name or number; default the port named "api")."""
    name, _, port = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not SERVICE[:PORT]")
    return name, (int(port) if port.isdigit() else port or "api")


def add_arguments(p: argparse.ArgumentParser) -> None:
    config = p.add_mutually_exclusive_group(required=True)
    config.add_argument("--policy", type=Path, metavar="PATH",
                        help="policy file or directory: every policy with an activator block "
                             "is routed, its endpoints watched in the cluster")
    config.add_argument("--routes", type=Path, metavar="FILE",
                        help="routes file (YAML) with static endpoints, for local runs")
    p.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig (env KUBECONFIG; in-cluster config when neither)")
    p.add_argument("--listen", type=address, default=("0.0.0.0", 8080), metavar="HOST:PORT",
                   help="where workload traffic arrives (default 0.0.0.0:8080)")
    p.add_argument("--admin-listen", type=address, default=("0.0.0.0", 9090),
                   metavar="HOST:PORT",
                   help="/v1/stats, /metrics, /healthz, /readyz (default 0.0.0.0:9090)")
    p.add_argument("--daemon-url", action="append", default=[], metavar="URL",
                   help="a daemon to poke when a request arrives at zero (repeatable)")
    p.add_argument("--daemon-service", type=service_port, default=None,
                   metavar="NAME[:PORT]",
                   help="poke every daemon behind this Service (its EndpointSlices, in "
                        "--namespace; PORT: the port's name or number, default api)")
    p.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE") or "default",
                   help="namespace of --daemon-service (env POD_NAMESPACE, else default)")
    p.add_argument("--connect-timeout", type=positive, default=5.0, metavar="SECONDS",
                   help="connecting to an endpoint (default 5)")
    p.add_argument("--drain-timeout", type=positive, default=30.0, metavar="SECONDS",
                   help="on SIGTERM, how long requests in flight may finish (default 30)")
    p.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                   help="auto: JSON unless stdout is a terminal")


def build_parser(prog: str = "scaler activator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Hold requests for workloads at zero replicas, poke the "
                               "daemon, and forward to ready endpoints.")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return run_args(build_parser().parse_args(argv))


class Setup:
    """What the arguments resolve to, checked before anything listens."""

    def __init__(self, args: argparse.Namespace) -> None:
        from scaler.activator.config import load_routes
        from scaler.activator.poke import DaemonURL

        self.args = args
        self.creds = None
        for url in args.daemon_url:
            try:
                DaemonURL(url)
            except ValueError as exc:
                raise UsageError(f"--daemon-url: {exc}") from None
        if args.policy is not None:
            from scaler.activator import policies

            self.routes = policies.load(args.policy)
            self.endpoints: dict = {}
        else:
            self.routes, self.endpoints = load_routes(args.routes)
        if args.policy is not None or args.daemon_service is not None:
            from scaler.kubeconfig import KubeconfigError, load

            try:
                self.creds = load(args.kubeconfig)
            except KubeconfigError as exc:
                raise UsageError(f"cannot load Kubernetes configuration: {exc}") from None


def run_args(args: argparse.Namespace) -> int:
    from scaler.activator.config import ConfigError

    try:
        setup = Setup(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return run(setup)
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


def run(setup: Setup) -> int:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(serve(setup))


async def serve(setup: Setup) -> int:
    import structlog

    from scaler.activator.observability import configure_logging
    from scaler.activator.server import Activator

    args = setup.args
    configure_logging(json=None if args.log_format == "auto" else args.log_format == "json")
    log = structlog.get_logger("activator")
    api = None
    if setup.creds is not None:
        from scaler.activator.kubeapi import KubeAPI

        api = KubeAPI(setup.creds)
    if args.policy is not None:
        from scaler.activator.endpointslices import EndpointSliceSource

        source = EndpointSliceSource(api, log=log)
    else:
        from scaler.activator.endpoints import StaticEndpoints

        source = StaticEndpoints(setup.endpoints)
    activator = Activator(setup.routes, source, daemon_urls=args.daemon_url, log=log,
                          connect_timeout=args.connect_timeout)
    await activator.start(args.listen, args.admin_listen)
    if args.daemon_service is not None:
        from scaler.activator.endpointslices import DaemonDiscovery

        name, port = args.daemon_service
        static = list(args.daemon_url)
        discovery = DaemonDiscovery(api, args.namespace, name, port, log=log,
                                    update=lambda urls: activator.poker.set_daemons(
                                        static + [u for u in urls if u not in static]))
        activator.spawn(discovery.run())
    # Everything allocated so far lives as long as the process: out of the collector's
    # sight, each young-generation collection on the request path stays short.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload = _policy_reload(activator, args.policy, log) if args.policy is not None \
        else _routes_reload(activator, source, args.routes, setup.routes, log)
    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if args.policy is not None:
        activator.spawn(_watch_policy_files(args.policy, reload))
    log.info("activator started", listen=f"{args.listen[0]}:{activator.port}",
             admin=f"{args.admin_listen[0]}:{activator.admin_port}",
             policies=[r.policy for r in setup.routes], daemons=args.daemon_url,
             daemon_service=args.daemon_service and ":".join(map(str, args.daemon_service)),
             kubernetes=api.server if api else None,
             loop=type(loop).__module__.split(".")[0], id=activator.id)
    await stop.wait()
    log.info("draining", in_flight=activator.in_flight(), timeout=args.drain_timeout)
    left = await activator.drain(args.drain_timeout)
    await activator.stop()
    log.info("activator stopped", cut_short=left)
    return 0


def _policy_reload(activator, path: Path, log):
    """Validate the policy files in full, then apply their routes; a bad edit keeps the
    routes that run (the daemon does the same with its policies)."""
    from scaler.activator import policies
    from scaler.activator.config import ConfigError

    def reload() -> None:
        try:
            routes = policies.load(path)
        except ConfigError as exc:
            log.error("policies not reloaded; keeping the routes that run", errors=exc.errors)
            return
        changes = activator.set_routes(routes)
        log.info("policies reloaded", **{k: v for k, v in changes.items() if v},
                 policies=[r.policy for r in routes])
    return reload


def _routes_reload(activator, source, path: Path, routes, log):
    """SIGHUP with a routes file: re-read its static endpoints."""
    from scaler.activator.config import ConfigError, load_routes

    def reload() -> None:
        try:
            new_routes, new_endpoints = load_routes(path)
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
    return reload


async def _watch_policy_files(path: Path, reload) -> None:
    """A mounted ConfigMap changes under the process: notice it as the daemon does."""
    from scaler.activator import policies

    seen = policies.fingerprint(path)
    while True:
        await asyncio.sleep(POLICY_CHECK_INTERVAL)
        now = policies.fingerprint(path)
        if now != seen:
            seen = now
            reload()
