"""The ``scaler`` command: wires objects together, nothing else.

Heavy libraries are imported inside the subcommand that uses them, so ``scaler validate``
and the daemon never pay for numpy, Pillow or scipy they don't need.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from scaler import __version__
from scaler.policy import Policy, PolicyError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY = PACKAGE_DIR / "policies" / "default.yaml"
DEFAULT_RECORDING = PACKAGE_DIR / "recordings" / "default.csv"

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input from the user: printed as one clear message, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except PolicyError as exc:
        for line in exc.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scaler",
        description="Knative-quality request-driven autoscaling for Kubernetes workloads.",
    )
    p.add_argument("--version", action="version", version=f"scaler {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="check policy files; print one line per policy")
    v.add_argument("path", help="a policy file or a directory of *.yaml files")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser(
        "replay",
        help="replay a recording through the decider and report what the policy would do",
        description="Replay recorded metrics through the same decision code the daemon runs "
                    "and report replicas over time, cost, shortfall and cold starts.",
    )
    r.add_argument("recording", nargs="?",
                   help="CSV (timestamp,value) or a Prometheus query_range JSON response; "
                        "default: the bundled example")
    r.add_argument("--policy", help="policy file or directory (default: policies/default.yaml)")
    r.add_argument("--name", help="which policy, when --policy holds several")
    r.add_argument("--column", help="the value column, when the CSV has several")
    r.add_argument("--out", default="replay-out", help="output directory (default: replay-out)")
    r.add_argument("--startup-delay", type=float, default=0.0, metavar="SECONDS",
                   help="seconds from adding a replica to it being ready (default: 0)")
    r.add_argument("--no-chart", action="store_true", help="skip chart.png")
    r.add_argument("--compare", action="store_true",
                   help="also replay the policy with prediction and the histogram keep-alive "
                        "off, and show both side by side (compare.png)")
    r.set_defaults(func=cmd_replay)

    d = sub.add_parser(
        "run", help="run the autoscaler daemon",
        description="Poll Prometheus, decide with Knative's KPA, and patch each policy's "
                    "target through its scale subresource.")
    d.add_argument("--policy", required=True, help="a policy file or a directory of them")
    _prometheus_flags(d)
    d.add_argument("--kubeconfig", default=None,
                   help="kubeconfig file (env KUBECONFIG; in-cluster config when neither)")
    d.add_argument("--dry-run", action="store_true",
                   help="do everything but write: log what would have been scaled")
    d.add_argument("--metrics-port", type=int, default=9090, help="/metrics port (default 9090)")
    d.add_argument("--health-port", type=int, default=8080,
                   help="/healthz and /readyz port (default 8080)")
    d.add_argument("--bind-address", default="0.0.0.0",
                   help="address the HTTP endpoints listen on (default 0.0.0.0)")
    d.add_argument("--leader-elect", action="store_true",
                   help="take a Lease before writing, so two replicas can run for HA")
    d.add_argument("--lease-name", default="scaler", help="Lease name (default scaler)")
    d.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE"),
                   help="Lease namespace (env POD_NAMESPACE)")
    d.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                   help="json when stdout is not a terminal (default auto)")
    d.set_defaults(func=cmd_run)

    rec = sub.add_parser(
        "record", help="save a query's history from Prometheus as a recording for replay",
        description="Evaluate QUERY every STEP over [START, END] and write a recording: "
                    "CSV (timestamp,value) or, for a .json name, a query_range response.")
    rec.add_argument("out", metavar="OUT", help="output file, *.csv or *.json")
    _prometheus_flags(rec)
    rec.add_argument("--query", required=True, help="PromQL giving the workload's total load")
    rec.add_argument("--start", required=True,
                     help="unix seconds, RFC 3339 (2026-03-02T00:00:00Z), or relative to now "
                          "(now-6h, -6h)")
    rec.add_argument("--end", default="now", help="as --start (default: now)")
    rec.add_argument("--step", default="1s", help="resolution (default 1s, what replay wants)")
    rec.set_defaults(func=cmd_record)
    return p


def _prometheus_flags(p: argparse.ArgumentParser) -> None:
    """How to reach Prometheus; shared by `run` and `record`."""
    p.add_argument("--prometheus-url", default=os.environ.get("PROMETHEUS_URL"),
                   help="Prometheus base URL (env PROMETHEUS_URL)")
    p.add_argument("--prometheus-bearer-token-file", metavar="PATH",
                   help="send this file's token as a bearer token (re-read when it changes)")
    p.add_argument("--prometheus-basic-auth", metavar="USER:PASSWORD_FILE",
                   help="basic auth: a user name and a file holding the password")
    p.add_argument("--prometheus-ca-file", metavar="PATH", help="CA bundle for Prometheus' TLS")
    p.add_argument("--prometheus-insecure-skip-verify", action="store_true",
                   help="do not verify Prometheus' TLS certificate")
    p.add_argument("--prometheus-header", action="append", default=[], metavar="NAME:VALUE",
                   help="extra header on every query (repeatable), e.g. X-Scope-OrgID:team")


# ------------------------------------------------------------------------------ validate

def cmd_validate(args: argparse.Namespace) -> int:
    from scaler import policy_files

    path = Path(args.path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    policies = policy_files.load(path)
    for p in policies:
        print(p.describe())
    return 0


# -------------------------------------------------------------------------------- replay

def select_policy(path: str | None, name: str | None) -> Policy:
    from scaler import policy_files

    source = Path(path) if path else DEFAULT_POLICY
    if not source.exists():
        raise UsageError(f"{source}: no such policy file or directory")
    policies = policy_files.load(source)
    if name is not None:
        chosen = [p for p in policies if p.name == name]
        if not chosen:
            raise UsageError(f"{source}: no policy named {name!r} (found: "
                             f"{', '.join(p.name for p in policies)})")
        return chosen[0]
    if len(policies) > 1:
        raise UsageError(f"{source}: holds {len(policies)} policies "
                         f"({', '.join(p.name for p in policies)}); pick one with --name")
    return policies[0]


def cmd_replay(args: argparse.Namespace) -> int:
    _keep_freed_memory()
    started = time.perf_counter()
    from scaler.report import outputs, summary as summary_mod
    from scaler.report.progress import Progress
    from scaler.replay import replay
    from scaler.sources import recorded

    if not (math.isfinite(args.startup_delay) and args.startup_delay >= 0):
        raise UsageError(f"--startup-delay: {args.startup_delay:g} is not allowed "
                         "(a number of seconds >= 0)")
    policy = select_policy(args.policy, args.name)
    if args.compare and not (policy.prediction.enabled or policy.keep_alive == "histogram"):
        raise UsageError(f"--compare: policy {policy.name} has neither spec.prediction "
                         "enabled nor spec.scaleToZero.keepAlive: histogram; there is "
                         "nothing to compare it with")
    recording_path = Path(args.recording) if args.recording else DEFAULT_RECORDING
    progress = Progress(sys.stderr)
    progress.phase("reading recording", 0.0)
    try:
        rec = recorded.load(recording_path, args.column)
    except recorded.RecordingError as exc:
        raise UsageError(str(exc)) from None
    progress.phase("replaying", 0.15)
    ticks = (rec.times[-1] - rec.times[0]) / policy.tick_interval
    if ticks > MAX_TICKS:
        raise UsageError(f"{rec.source}: spans {ticks:,.0f} ticks of {policy.tick_interval:g}s; "
                         f"replay handles up to {MAX_TICKS:,} (about a year at 1 s)")
    from scaler.actuators.simulated import TooManyReplicas

    try:
        result = replay(policy, rec.times, rec.values, args.startup_delay,
                        progress=lambda f: progress.update(0.15 + 0.6 * f))
        baseline = None
        if args.compare:
            baseline = ("reactive", _reactive_replay(policy, rec, args.startup_delay))
    except TooManyReplicas as exc:
        raise UsageError(f"{rec.source}: {exc}") from None
    if not len(result.ticks):
        raise UsageError(f"{rec.source}: the recording spans less than one tick "
                         f"({policy.tick_interval:g}s); nothing to replay")
    progress.phase("writing outputs", 0.8)
    summary = summary_mod.summarize(result)
    summary["recording"]["path"] = str(recording_path)
    if baseline is not None:
        summary["compare"] = {baseline[0]: summary_mod.summarize(baseline[1])}
    title = f"scaler replay: {recording_path.name} with policy {policy.name}"
    subtitle = (f"target {policy.target_value:g} per replica, stable {policy.stable_window:g}s, "
                f"panic {policy.panic_window:g}s at {policy.panic_threshold_percentage:g}%, "
                f"startup delay {args.startup_delay:g}s")
    quality = summary.get("forecast")
    if quality and quality["mae"] is not None:
        # Forecast quality goes on the chart too, next to the dashed forecast line.
        subtitle += (f"; forecast ({quality['model']}, {quality['mode']}) MAE "
                     f"{quality['mae']:.1f}, MAPE {_pct(quality['mape'])}, coverage "
                     f"{_pct(quality['coverage'])}")
    try:
        written = outputs.write_all(result, summary, Path(args.out), title=title,
                                    subtitle=subtitle, chart=not args.no_chart,
                                    baseline=baseline)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write there: "
                         f"{exc.strerror or exc}") from None
    progress.done()
    elapsed = time.perf_counter() - started
    print(summary_mod.format_table(summary, title))
    if baseline is not None:
        print()
        print(summary_mod.format_compare(baseline[0], summary["compare"][baseline[0]],
                                         policy.name, summary,
                                         f"compared with the reactive policy "
                                         f"(startup delay {args.startup_delay:g}s)"))
    print(f"\nwrote {', '.join(str(p) for p in written)} "
          f"({len(rec):,} samples in {elapsed:.2f}s)")
    return 0


# ---------------------------------------------------------------------------------- run

def _connection(args: argparse.Namespace):
    from scaler.sources.prometheus import Connection

    if not args.prometheus_url:
        raise UsageError("--prometheus-url (or PROMETHEUS_URL) is required")
    basic = None
    if args.prometheus_basic_auth:
        user, sep, password_file = args.prometheus_basic_auth.partition(":")
        if not sep or not user:
            raise UsageError("--prometheus-basic-auth: expected USER:PASSWORD_FILE")
        try:
            basic = (user, Path(password_file).read_text().strip())
        except OSError as exc:
            raise UsageError(f"--prometheus-basic-auth: {password_file}: {exc.strerror}") from None
    headers = {}
    for item in args.prometheus_header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--prometheus-header {item!r}: expected NAME:VALUE")
        headers[name.strip()] = value.strip()
    try:
        return Connection(args.prometheus_url, bearer_token_file=args.prometheus_bearer_token_file,
                          basic_auth=basic, ca_bundle=args.prometheus_ca_file,
                          insecure_skip_verify=args.prometheus_insecure_skip_verify,
                          headers=headers)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    import signal
    import threading

    import structlog
    from prometheus_client import CollectorRegistry

    from scaler import observability, policy_files
    from scaler.actuators.kubernetes import KubeClient, KubernetesActuator
    from scaler.clock import SystemClock
    from scaler.loop import Daemon
    from scaler.sources.prometheus import PrometheusSource

    fmt = {"auto": None, "json": True, "console": False}[args.log_format]
    observability.configure_logging(json=fmt)
    log = structlog.get_logger("scaler")
    policy_path = Path(args.policy)
    if not policy_path.exists():
        raise UsageError(f"{policy_path}: no such policy file or directory")
    policies = policy_files.load(policy_path)
    connection = _connection(args)
    if args.leader_elect and not args.lease_namespace:
        raise UsageError("--leader-elect needs --lease-namespace (or POD_NAMESPACE)")

    stop = threading.Event()
    clock = SystemClock()
    try:
        client = KubeClient.from_config(args.kubeconfig)
    except Exception as exc:   # kubeconfig missing, malformed, or not in a cluster
        raise UsageError(f"cannot load Kubernetes configuration: {exc}") from None
    # Requests are short (a tick's worth of seconds) and capped at 3 s, so an answer still
    # in flight at SIGTERM cannot hold shutdown past its 5 s budget.
    source = PrometheusSource(connection, clock=clock, shutdown=stop, request_timeout=3.0)
    actuator = KubernetesActuator(client, stop=stop)
    registry = CollectorRegistry()
    metrics = observability.Metrics(registry)
    elector = None
    if args.leader_elect:
        from scaler.lease import LeaderElector

        elector = LeaderElector(client, args.lease_namespace, args.lease_name,
                                identity=os.environ.get("POD_NAME") or None, clock=clock,
                                stop=stop)
    daemon = Daemon(policies, source=source, actuator=actuator, clock=clock, metrics=metrics,
                    policy_path=policy_path, dry_run=args.dry_run,
                    is_leader=elector.is_leader if elector else None, stop=stop)

    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
    try:
        metrics_server = observability.serve_metrics(registry, args.metrics_port,
                                                     args.bind_address)
        health = observability.HealthServer(args.health_port, healthy=daemon.healthy,
                                            ready=daemon.ready,
                                            host=args.bind_address).start()
    except OSError as exc:
        raise UsageError(f"cannot listen: {exc.strerror or exc}") from None
    lease_thread = elector.start() if elector else None
    log.info("serving", metrics_port=args.metrics_port, health_port=args.health_port,
             prometheus=connection.url, kubernetes=client.host,
             leader_election=bool(elector))
    try:
        daemon.run()
    finally:
        stop.set()
        if lease_thread is not None:
            lease_thread.join(timeout=2)   # releases the lease for a fast takeover
        health.stop()
        metrics_server.shutdown()
        source.close()
        actuator.close()
    return 0


# ------------------------------------------------------------------------------- record

def parse_time(text: str, now: float) -> float:
    """Unix seconds, an RFC 3339 time with a zone, "now", or now minus a duration."""
    from scaler.policy import parse_duration
    from scaler.times import parse_timestamp

    value = text.strip()
    if value == "now":
        return now
    try:
        for prefix in ("now-", "-"):
            if value.startswith(prefix):
                return now - parse_duration(value[len(prefix):])
        return parse_timestamp(value)
    except ValueError as exc:
        raise UsageError(f"{exc} (times are unix seconds, RFC 3339, now, or now-6h)") from None


def cmd_record(args: argparse.Namespace) -> int:
    from scaler.policy import parse_duration
    from scaler.record import RecordError, record
    from scaler.sources.prometheus import PrometheusSource

    now = time.time()
    start = parse_time(args.start, now)
    end = parse_time(args.end, now)
    try:
        step = parse_duration(args.step)
    except ValueError as exc:
        raise UsageError(f"--step: {exc}") from None
    if step <= 0:
        raise UsageError("--step must be positive")
    if end < start:
        raise UsageError(f"--end ({args.end}) is before --start ({args.start})")
    # A week at 1 s is ~55 range queries; give them time (the daemon's budget is a tick).
    with PrometheusSource(_connection(args), history_timeout=600.0) as source:
        try:
            done = record(source, args.query, start, end, step, args.out)
        except (RecordError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    print(f"wrote {done.path}: {done.points:,} points from {done.first:.0f} to "
          f"{done.last:.0f} ({format_span(done.last - done.first)})")
    return 0


def format_span(seconds: float) -> str:
    from scaler.policy import format_duration

    return format_duration(round(seconds))


MAX_TICKS = 32_000_000


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def _reactive_replay(policy: Policy, rec, startup_delay: float):
    """The policy without prediction and with the fixed grace period: --compare's twin."""
    from dataclasses import replace

    from scaler.policy import PredictionPolicy
    from scaler.replay import replay

    reactive = replace(policy, prediction=PredictionPolicy(), keep_alive="fixed")
    return replay(reactive, rec.times, rec.values, startup_delay)


def _keep_freed_memory() -> None:
    """Replay allocates and frees many array temporaries of a few MB. By default glibc
    returns each to the kernel and faults it back in on the next allocation (about 15 ms
    per 10 MB here); keeping freed memory in the heap makes large replays ~15 % faster."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)    # M_MMAP_THRESHOLD: its maximum, 32 MiB
        libc.mallopt(-1, 1 << 30)     # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
