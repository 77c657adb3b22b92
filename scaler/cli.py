"""The ``scaler`` command: parse the arguments, call ``scaler.app``, print, exit.

Exit codes: 0 done, 2 bad input (one line per problem on stderr, never a traceback),
130 interrupted. Importing this module loads no heavy library; ``scaler.app`` imports
what a command needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from scaler import __version__, app
from scaler.app import UsageError
from scaler.policy import PolicyError, format_duration

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141      # 128 + SIGPIPE, as a shell reports a reader that left early


# Options whose value may start with "-" (a time relative to now, "-6h"): argparse would
# take "--start -6h" for two options, so the pair is joined into "--start=-6h" first.
_NEGATIVE_VALUES = ("--start", "--end")


def _join_negative_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _NEGATIVE_VALUES and i + 1 < len(argv) and argv[i + 1][:1] == "-" \
                and argv[i + 1][1:2].isdigit():
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`scaler replay | head -1`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
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

    v = sub.add_parser("validate", help="check policy files (and ScalingPolicy manifests); "
                                        "print one line per policy")
    v.add_argument("path", help="a policy file or a directory of *.yaml files (scaler/v1, "
                                "or scaler.dev/v1alpha1 ScalingPolicy objects)")
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
    r.add_argument("--resolution", metavar="DURATION",
                   help="how long each row of the recording holds, e.g. 15s (default: the "
                        "most common interval between rows); longer gaps are unknown")
    r.add_argument("--no-chart", action="store_true", help="skip chart.png")
    r.add_argument("--compare", action="store_true",
                   help="also replay the policy with prediction and the histogram keep-alive "
                        "off, and show both side by side (compare.png)")
    r.set_defaults(func=cmd_replay)

    t = sub.add_parser(
        "tune", help="replay every combination of a few policy knobs and pick the best",
        description="Replay a recording with every combination of the --vary values (on all "
                    "cores), print the Pareto front of pod-seconds, unserved demand and cold "
                    "starts, draw tune.png and write the picked variant as policy.yaml.")
    t.add_argument("recording", help="CSV (timestamp,value) or a Prometheus query_range JSON")
    t.add_argument("--policy", help="the policy to start from: a file or directory (default: "
                                    "policies/default.yaml)")
    t.add_argument("--name", help="which policy, when --policy holds several")
    t.add_argument("--column", help="the value column, when the CSV has several")
    t.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a spec key and its values, or a range A..B/STEP (repeatable), e.g. "
                        "stableWindow=30s..120s/15s or prediction.horizon=30s,60s")
    t.add_argument("--startup-delay", type=float, default=0.0, metavar="SECONDS",
                   help="seconds from adding a replica to it being ready (default: 0)")
    t.add_argument("--pick", metavar="OBJECTIVE",
                   help="least-METRIC[:METRIC<=VALUE,...], METRIC pod-seconds, unserved or "
                        "cold-starts; VALUE a number, N%% of the demand (unserved) or Nx the "
                        "current policy (default: least-pod-seconds:unserved<=1x,"
                        "cold-starts<=1x)")
    t.add_argument("--out", default="tune-out", help="output directory (default: tune-out)")
    t.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="processes (default: one per core)")
    t.set_defaults(func=cmd_tune)

    d = sub.add_parser(
        "run", help="run the autoscaler daemon",
        description="Poll Prometheus, decide with Knative's KPA, and patch each policy's "
                    "target through its scale subresource.")
    d.add_argument("--policy", help="a policy file or a directory of them (scaler/v1)")
    d.add_argument("--policy-source", action="append", choices=["files", "kubernetes"],
                   default=[], help="kubernetes: also run the ScalingPolicy objects "
                   "(scaler.dev/v1alpha1) of --policy-namespace and write their status; "
                   "files: the --policy files (implied by --policy)")
    d.add_argument("--policy-namespace", default=None,
                   help="namespace of the ScalingPolicy objects (default: env POD_NAMESPACE, "
                        "else the kubeconfig context's namespace, else default)")
    _prometheus_flags(d)
    d.add_argument("--kubeconfig", default=None,
                   help="kubeconfig file; as kubectl: default $KUBECONFIG (a path list), "
                        "else ~/.kube/config, else the in-cluster service account")
    d.add_argument("--context", default=None,
                   help="the kubeconfig context to use (default: its current-context)")
    d.add_argument("--dry-run", action="store_true",
                   help="do everything but write: log what would have been scaled")
    # Not 9090 (Prometheus' own port, which a local run port-forwards) nor 8080 (most
    # workloads'): 9464 is the port registered for OpenTelemetry's Prometheus exporter,
    # 8081 the health-probe port of controller-runtime operators.
    d.add_argument("--metrics-port", type=int, default=9464,
                   help="/metrics port (default 9464)")
    d.add_argument("--health-port", type=int, default=8081,
                   help="/healthz and /readyz port (default 8081)")
    d.add_argument("--bind-address", default="0.0.0.0",
                   help="address the HTTP endpoints listen on (default 0.0.0.0, what a pod "
                        "needs; 127.0.0.1 on a laptop)")
    d.add_argument("--leader-elect", action="store_true",
                   help="take a Lease before writing, so two replicas can run for HA")
    d.add_argument("--lease-name", default="scaler", help="Lease name (default scaler)")
    d.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE"),
                   help="Lease namespace (env POD_NAMESPACE)")
    d.add_argument("--shard", action="store_true",
                   help="share the policies among the Deployment's replicas: --buckets "
                        "bucket Leases, each replica holding at most ceil(buckets / live "
                        "replicas) (instead of --leader-elect)")
    d.add_argument("--buckets", type=int, default=10, metavar="B",
                   help="with --shard: how many buckets (Leases) the policies hash into "
                        "(default 10)")
    d.add_argument("--namespace", action="append", default=[], metavar="NS",
                   help="a namespace whose targets this daemon scales (repeatable), or "
                        "'all'; default: the namespaces the policies name")
    d.add_argument("--tick-log", choices=["all", "changes"], default="all",
                   help="all: one log line per policy per tick (default); changes: only "
                        "ticks that scale, hold for want of data or fail")
    d.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                   help="json when stdout is not a terminal (default auto)")
    d.add_argument("--activator-url", action="append", default=[], metavar="URL",
                   help="an activator's admin base URL, read every second for "
                        "metric.source activator and the serve/proxy switch (repeatable)")
    d.add_argument("--activator-service", metavar="NAME[:PORT]",
                   help="read every activator behind this Service (its EndpointSlices in "
                        "the pod's namespace; PORT: name or number, default admin)")
    d.set_defaults(func=cmd_run)

    a = sub.add_parser(
        "activator", help="run the activator: hold requests at zero, forward when warm",
        description="An HTTP proxy in front of the workloads whose policies have an "
                    "activator block: it holds their requests while they have no ready "
                    "endpoint, pokes the daemons, forwards to the ready endpoints with the "
                    "fewest requests in flight, and counts requests in flight exactly.")
    from scaler.activator.cli import add_arguments as activator_arguments

    activator_arguments(a)
    a.set_defaults(func=cmd_activator)

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
    rec.add_argument("--step", default="1s",
                     help="resolution (default 1s); replay holds each row for one step")
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


def _connection(args: argparse.Namespace):
    return app.prometheus_connection(
        args.prometheus_url, bearer_token_file=args.prometheus_bearer_token_file,
        basic_auth=args.prometheus_basic_auth, ca_file=args.prometheus_ca_file,
        insecure_skip_verify=args.prometheus_insecure_skip_verify,
        headers=args.prometheus_header)


# -------------------------------------------------------------------------------- commands

def cmd_validate(args: argparse.Namespace) -> int:
    for policy in app.load_policies(args.path, objects=True):
        print(policy.describe())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from scaler.replay.report.progress import Progress

    run = app.run_replay(args.recording, policy_path=args.policy, name=args.name,
                         column=args.column, out=args.out, startup_delay=args.startup_delay,
                         chart=not args.no_chart, compare=args.compare,
                         resolution=args.resolution, progress=Progress(sys.stderr))
    from scaler.replay.report.summary import format_compare, format_table

    print(format_table(run.summary, run.title))
    if run.baseline is not None:
        name = run.baseline[0]
        print()
        print(format_compare(name, run.summary["compare"][name], run.policy.name, run.summary,
                             f"compared with the reactive policy "
                             f"(startup delay {args.startup_delay:g}s)"))
        note = app.forecast_note(run)
        if note:
            print(f"\n{note}")
    print(f"\nwrote {', '.join(str(p) for p in run.written)} "
          f"({run.samples:,} samples in {run.seconds:.2f}s)")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from scaler.replay.report.progress import Progress

    run = app.run_tune(args.recording, vary=args.vary, policy_path=args.policy,
                       name=args.name, column=args.column, out=args.out,
                       startup_delay=args.startup_delay, pick=args.pick, jobs=args.jobs,
                       progress=Progress(sys.stderr))
    o = run.outcome
    title = (f"scaler tune: {run.recording.name} with policy {run.policy.name}, "
             f"{len(o.variants)} variants, startup delay {args.startup_delay:g}s")
    print(title)
    print("-" * len(title))
    print(f"{len(run.front)} on the Pareto front of pod-seconds, unserved demand and cold "
          "starts (changes against the current policy):\n")
    print(run.table)
    print(f"\nwrote {', '.join(str(p) for p in run.written)} ({o.seconds:.1f}s, "
          f"{o.processes} process{'es' if o.processes != 1 else ''}; windows computed "
          f"{o.shared_windows}×, forecasts {o.shared_forecasts}×)")
    return 0 if run.picked is not None else 1


def cmd_run(args: argparse.Namespace) -> int:
    objects = "kubernetes" in args.policy_source
    if "files" in args.policy_source and not args.policy:
        raise UsageError("--policy-source files needs --policy PATH")
    if not args.policy and not objects:
        raise UsageError("give --policy PATH (policy files), --policy-source kubernetes "
                         "(ScalingPolicy objects), or both")
    app.configure_logging(args.log_format)
    policies = app.load_policies(args.policy) if args.policy else []
    connection = (_connection(args) if args.prometheus_url or app.needs_prometheus(policies)
                  else None)
    namespace = None
    if objects:
        namespace = (args.policy_namespace or os.environ.get("POD_NAMESPACE")
                     or app.context_namespace(args.kubeconfig, args.context) or "default")
    parts = app.build_daemon(
        policies, args.policy, connection, kubeconfig=args.kubeconfig, context=args.context,
        policy_namespace=namespace,
        dry_run=args.dry_run, leader_elect=args.leader_elect, lease_name=args.lease_name,
        lease_namespace=args.lease_namespace, activator_urls=args.activator_url,
        activator_service=args.activator_service, shard=args.shard, buckets=args.buckets,
        namespaces=args.namespace, tick_log=args.tick_log)
    return app.serve(parts, metrics_port=args.metrics_port, health_port=args.health_port,
                     bind_address=args.bind_address, dry_run=args.dry_run)


def cmd_activator(args: argparse.Namespace) -> int:
    return app.run_activator(args)


def cmd_record(args: argparse.Namespace) -> int:
    from scaler.replay.report.progress import Progress

    span = app.record_range(args.start, args.end, args.step)
    done = app.record(_connection(args), args.query, args.out, span,
                      progress=Progress(sys.stderr))
    print(f"wrote {done.path}: {done.points:,} points from {done.first:.0f} to "
          f"{done.last:.0f} ({format_duration(round(done.last - done.first))})")
    if done.left_out:
        print(f"left out: {done.left_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
