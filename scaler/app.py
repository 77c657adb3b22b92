"""Wiring: which source, which actuator, which clock — the objects each command runs.

``scaler.cli`` parses the command line and calls one function here per command; bad
input is a :class:`UsageError` (or a :class:`~scaler.policy.PolicyError`) that the CLI
prints as one line. The choices that make a mode are made here and nowhere else:

* the daemon (``serve``): the Prometheus source, the Kubernetes actuator — wrapped in
  the dry-run actuator for ``--dry-run`` — the system clock and, with leader election,
  a Lease; :func:`build_daemon` builds them, :func:`serve` runs them;
* a replay (:func:`run_replay`): a recording and the simulated workload, through the
  fast engine, then the report; ``--compare`` adds the policy's reactive twin
  (:func:`reactive_twin`);
* ``scaler record`` (:func:`record`): the Prometheus source and a recording file.

Heavy libraries are imported inside the function that needs them, so ``scaler
validate`` and the daemon never pay for numpy, Pillow or scipy they don't use.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaler.clock import Clock, SystemClock
from scaler.policy import Policy, PredictionPolicy, files

if TYPE_CHECKING:
    from scaler.daemon.lease import LeaderElector
    from scaler.daemon.loop import Daemon
    from scaler.replay.engine import ReplayResult
    from scaler.replay.report.progress import Progress
    from scaler.sources.prometheus import Connection
    from scaler.sources.recording.write import Recorded

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_RECORDING = PACKAGE_DIR / "recordings" / "default.csv"

# SIGTERM to exit: the promise is 5 s. The lease is released by this many seconds after the
# signal, whatever the loop was doing, leaving the rest for closing the servers.
SHUTDOWN_RELEASE_BY = 4.0

# About a year of 1 s ticks: beyond this a replay would not fit in memory.
MAX_TICKS = 32_000_000


class UsageError(Exception):
    """Bad input from the user: printed as one clear message, exit code 2."""


def load_policies(path: str | Path, *, objects: bool = False) -> list[Policy]:
    """Every policy under ``path`` (a file or a directory), validated; with ``objects``
    (``scaler validate``) ScalingPolicy object manifests too."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    return files.load(path, objects=objects)


def select_policy(path: str | Path | None, name: str | None) -> Policy:
    """The one policy a replay runs: the only one under ``path``, or the one ``name``d
    (default: the packaged default policy)."""
    source = Path(path) if path else files.DEFAULT
    policies = load_policies(source)
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


# ---------------------------------------------------------------------------------- replay

@dataclass(frozen=True)
class ReplayRun:
    """What ``scaler replay`` did: the result, its summary and the files written."""

    policy: Policy
    recording: Path
    samples: int
    result: ReplayResult
    baseline: tuple[str, ReplayResult] | None   # --compare's twin, by name
    summary: dict
    title: str
    written: list[Path]
    seconds: float                               # wall time, reading to writing


def reactive_twin(policy: Policy) -> Policy:
    """The policy without prediction and with the fixed grace period: what ``--compare``
    replays beside it."""
    return replace(policy, prediction=PredictionPolicy(), keep_alive="fixed")


def run_replay(recording: str | Path | None, *, policy_path: str | Path | None = None,
               name: str | None = None, column: str | None = None,
               out: str | Path = "replay-out", startup_delay: float = 0.0,
               chart: bool = True, compare: bool = False, resolution: str | None = None,
               progress: Progress | None = None, clock: Clock | None = None) -> ReplayRun:
    """Replay a recording (default: the bundled one) with a policy against the simulated
    workload, and write decisions.csv, summary.json and the charts into ``out``.
    ``resolution`` (a duration such as ``15s``) is how long each row holds; by default
    the most common interval between rows."""
    _keep_freed_memory()
    clock = clock or SystemClock()
    started = clock.monotonic()
    from scaler.actuators.simulated import TooManyReplicas
    from scaler.replay.engine import replay
    from scaler.replay.report import outputs
    from scaler.replay.report import summary as summaries
    from scaler.sources import recording as recordings

    if not (math.isfinite(startup_delay) and startup_delay >= 0):
        raise UsageError(f"--startup-delay: {startup_delay:g} is not allowed "
                         "(a number of seconds >= 0)")
    held = None if resolution is None else replay_resolution(resolution)
    policy = select_policy(policy_path, name)
    if compare and not (policy.prediction.enabled or policy.keep_alive == "histogram"):
        raise UsageError(f"--compare: policy {policy.name} has neither spec.prediction "
                         "enabled nor spec.scaleToZero.keepAlive: histogram; there is "
                         "nothing to compare it with")
    path = Path(recording) if recording else DEFAULT_RECORDING
    _phase(progress, "reading recording", 0.0)
    try:
        rec = recordings.load(path, column)
    except recordings.RecordingError as exc:
        raise UsageError(str(exc)) from None
    _phase(progress, "replaying", 0.15)
    ticks = (rec.times[-1] - rec.times[0]) / policy.tick_interval
    if ticks > MAX_TICKS:
        raise UsageError(f"{rec.source}: spans {ticks:,.0f} ticks of {policy.tick_interval:g}s; "
                         f"replay handles up to {MAX_TICKS:,} (about a year at 1 s)")
    try:
        result = replay(policy, rec.times, rec.values, startup_delay,
                        progress=progress and (lambda f: progress.update(0.15 + 0.6 * f)),
                        resolution=held)
        baseline = None
        if compare:
            baseline = ("reactive", replay(reactive_twin(policy), rec.times, rec.values,
                                           startup_delay, resolution=held))
    except TooManyReplicas as exc:
        raise UsageError(f"{rec.source}: {exc}") from None
    if not len(result.ticks):
        raise UsageError(f"{rec.source}: the recording spans less than one tick "
                         f"({policy.tick_interval:g}s); nothing to replay")
    _phase(progress, "writing outputs", 0.8)
    summary = summaries.summarize(result)
    summary["recording"]["path"] = str(path)
    if baseline is not None:
        summary["compare"] = {baseline[0]: summaries.summarize(baseline[1])}
    title = f"scaler replay: {path.name} with policy {policy.name}"
    try:
        written = outputs.write_all(result, summary, Path(out), title=title,
                                    subtitle=_subtitle(policy, startup_delay, summary),
                                    chart=chart, baseline=baseline)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
    if progress:
        progress.done()
    return ReplayRun(policy, path, len(rec), result, baseline, summary, title, written,
                     clock.monotonic() - started)


def forecast_note(run: ReplayRun) -> str | None:
    """With ``--compare`` and prediction on: why the forecast never changed a decision,
    when it did not (None when it did, or there is nothing to say)."""
    import numpy as np

    from scaler.policy import format_duration

    p = run.policy.prediction
    result = run.result
    if not p.enabled or run.baseline is None or result.forecast is None:
        return None
    span = format_duration(round(float(result.ticks[-1] - result.ticks[0])))
    season = max(p.seasonality) if p.seasonality else None
    short = (f"; its {format_duration(season, days=True)} season shapes the forecast only "
             f"after a full season of history, and this recording spans {span}"
             if season and result.ticks[-1] - result.ticks[0] < season else "")
    if p.mode == "observe":
        return ("the forecast never acted: prediction.mode is observe (it is computed, "
                "charted and scored, never used)")
    if not np.isfinite(result.forecast).any():
        return (f"the forecast never acted: not enough history — no forecast formed in "
                f"{span} ({p.model} needs its warm-up, and {p.min_errors} forecast errors at "
                f"the {format_duration(p.horizon)} horizon, before it acts){short}")
    floor = result.floor if result.floor is not None else np.zeros(len(result.ticks))
    if not np.count_nonzero(floor):
        return ("the forecast never acted: it formed but was never trusted (still counting "
                f"its first {p.min_errors} forecast errors, or falling back on a large "
                f"recent error){short}")
    reactive = run.baseline[1].desired
    if not np.count_nonzero(floor > reactive):
        return ("the forecast never acted: its replica floor never rose above what the "
                f"reactive decision asked for{short}")
    return None


# How long a row of a recording may hold: from a millisecond (Prometheus's resolution)
# to a day.
RESOLUTION_RANGE = (0.001, 86_400.0)


def replay_resolution(text: str) -> float:
    """``--resolution``: a duration from 1ms to 1d, in seconds. "15s" → 15.0."""
    from scaler.policy import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--resolution: {exc}") from None
    low, high = RESOLUTION_RANGE
    if not low <= seconds <= high:
        raise UsageError(f"--resolution: {text!r} is not allowed (a duration from 1ms to 1d, "
                         "e.g. 1s or 15s)")
    return seconds


# ------------------------------------------------------------------------------------ tune

@dataclass(frozen=True)
class TuneRun:
    """What ``scaler tune`` did: the variants and their figures, the front, the pick."""

    policy: Policy
    recording: Path
    samples: int
    knobs: list
    outcome: Any               # scaler.replay.tune.Outcome
    front: list[int]
    current: int
    picked: int | None
    objective: Any             # scaler.replay.tune.Objective
    table: str
    written: list[Path]


def run_tune(recording: str | Path, *, vary: list[str], policy_path: str | Path | None = None,
             name: str | None = None, column: str | None = None, out: str | Path = "tune-out",
             startup_delay: float = 0.0, pick: str | None = None, jobs: int | None = None,
             progress: Progress | None = None) -> TuneRun:
    """Replay every combination of the ``vary`` knobs on a recording, print the Pareto
    front, draw tune.png and write the picked variant as policy.yaml into ``out``."""
    _keep_freed_memory()
    from scaler.replay import tune
    from scaler.sources import recording as recordings

    if not (math.isfinite(startup_delay) and startup_delay >= 0):
        raise UsageError(f"--startup-delay: {startup_delay:g} is not allowed "
                         "(a number of seconds >= 0)")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs: {jobs} is not allowed (1 or more processes)")
    if not vary:
        raise UsageError("--vary KEY=V1,V2,... is required (at least one knob to tune)")
    try:
        knobs = [tune.parse_vary(v) for v in vary]
        objective = tune.parse_objective(pick or tune.DEFAULT_OBJECTIVE)
    except tune.TuneError as exc:
        raise UsageError(str(exc)) from None
    policy = select_policy(policy_path, name)
    document, source = tune.document_of(policy)
    try:
        grid = tune.variants(document, source, knobs)
    except tune.TuneError as exc:
        raise UsageError(str(exc)) from None
    found = grid.variants
    path = Path(recording)
    _phase(progress, "reading recording", 0.0)
    try:
        rec = recordings.load(path, column)
    except recordings.RecordingError as exc:
        raise UsageError(str(exc)) from None
    longest = max((rec.times[-1] - rec.times[0]) / v.policy.tick_interval for v in found)
    if longest > MAX_TICKS:
        raise UsageError(f"{rec.source}: spans {longest:,.0f} ticks; replay handles up to "
                         f"{MAX_TICKS:,} (about a year at 1 s)")
    if longest < 1:
        raise UsageError(f"{rec.source}: the recording spans less than one tick; nothing "
                         "to replay")
    _phase(progress, f"{len(found)} variants", 0.05)
    try:
        outcome = tune.run(found, rec.times, rec.values, startup_delay, jobs=jobs,
                           progress=progress and (lambda f: progress.update(0.05 + 0.9 * f)))
    except tune.TuneError as exc:
        raise UsageError(f"{rec.source}: {exc}") from None
    current = next(i for i, v in enumerate(found) if v.current)
    front = tune.pareto_front(outcome.figures)
    picked = objective.pick(outcome.figures, current)
    table = tune.format_table(knobs, outcome, front, current, picked, objective)
    if grid.skipped:
        table += (f"\n\nskipped {len(grid.skipped)} combination"
                  f"{'s' if len(grid.skipped) != 1 else ''} the policy validator rejects "
                  f"(scaler validate says why): {'; '.join(grid.skipped[:3])}"
                  f"{'; ...' if len(grid.skipped) > 3 else ''}")
    _phase(progress, "writing outputs", 0.95)
    written = _write_tune(Path(out), tune, knobs, outcome, front, current, picked, objective,
                          path, policy, startup_delay)
    if progress:
        progress.done()
    return TuneRun(policy, path, len(rec), knobs, outcome, front, current, picked,
                   objective, table, written)


def _write_tune(out: Path, tune: Any, knobs: list, outcome: Any, front: list[int],
                current: int, picked: int | None, objective: Any, recording: Path,
                policy: Policy, startup_delay: float) -> list[Path]:
    """variants.csv, tune.png and (when a variant was picked) policy.yaml, all or nothing."""
    import shutil
    import tempfile

    from scaler.replay.report.tune_chart import draw_tune_chart

    keys = " x ".join(k.key for k in knobs)
    title = f"scaler tune: {recording.name} with policy {policy.name}"
    subtitle = (f"{len(outcome.variants)} variants of {keys}, startup delay "
                f"{startup_delay:g}s; picked by {objective}")
    figures = outcome.figures
    files = {"variants.csv": tune.variants_csv(knobs, outcome, set(front), picked)}
    if picked is not None:
        files["policy.yaml"] = tune.policy_yaml(outcome.variants[picked], [
            f"scaler tune {recording.name}: picked by {objective} from "
            f"{len(outcome.variants)} variants (startup delay {startup_delay:g}s)",
            tune.with_values(outcome.variants[picked], knobs)])
    try:
        out.resolve().parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.resolve().parent))
        try:
            for name, text in files.items():
                (staging / name).write_text(text)
            draw_tune_chart(
                staging / "tune.png",
                pod_seconds=[f["pod_seconds"] for f in figures],
                unserved=[f["under_provisioned_demand_seconds"] for f in figures],
                cold_starts=[f["cold_start_episodes"] for f in figures],
                front=front, current=current, picked=picked, title=title, subtitle=subtitle)
            names = [*files, "tune.png"]
            out.mkdir(parents=True, exist_ok=True)
            if picked is None:
                (out / "policy.yaml").unlink(missing_ok=True)   # no longer this run's pick
            for name in names:
                os.replace(staging / name, out / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
    return [out / n for n in names]


def _subtitle(policy: Policy, startup_delay: float, summary: dict) -> str:
    # The capacity line is ready x target (what a replica can serve); the decider aims at
    # target x utilisation (the target value): name both, each for what it is.
    subtitle = (f"capacity {policy.target:g} per replica, aiming at {policy.target_value:g} "
                f"({policy.target_utilization_percentage:g}%), stable {policy.stable_window}s, "
                f"panic {policy.panic_window}s at {policy.panic_threshold_percentage:g}%, "
                f"startup delay {startup_delay:g}s")
    quality = summary.get("forecast")
    if quality and quality["mae"] is not None:
        # Forecast quality goes on the chart too, next to the dashed forecast line.
        subtitle += (f"; forecast ({quality['model']}, {quality['mode']}) MAE "
                     f"{quality['mae']:.1f}, MAPE {_pct(quality['mape'])}, coverage "
                     f"{_pct(quality['coverage'])}")
    return subtitle


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def _phase(progress: Progress | None, label: str, fraction: float) -> None:
    if progress:
        progress.phase(label, fraction)


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


# ---------------------------------------------------------------------------------- daemon

def prometheus_connection(url: str | None, *, bearer_token_file: str | None = None,
                          basic_auth: str | None = None, ca_file: str | None = None,
                          insecure_skip_verify: bool = False,
                          headers: list[str] = ()) -> Connection:
    """How to reach Prometheus, from the ``--prometheus-*`` flags: ``basic_auth`` is
    ``USER:PASSWORD_FILE``, each header ``NAME:VALUE``."""
    from scaler.sources.prometheus import Connection

    if not url:
        raise UsageError("--prometheus-url (or PROMETHEUS_URL) is required")
    basic = None
    if basic_auth:
        user, sep, password_file = basic_auth.partition(":")
        if not sep or not user:
            raise UsageError("--prometheus-basic-auth: expected USER:PASSWORD_FILE")
        try:
            basic = (user, Path(password_file).read_text().strip())
        except OSError as exc:
            raise UsageError(f"--prometheus-basic-auth: {password_file}: {exc.strerror}") from None
    extra = {}
    for item in headers:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--prometheus-header {item!r}: expected NAME:VALUE")
        extra[name.strip()] = value.strip()
    try:
        return Connection(url, bearer_token_file=bearer_token_file, basic_auth=basic,
                          ca_bundle=ca_file, insecure_skip_verify=insecure_skip_verify,
                          headers=extra)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@dataclass
class DaemonParts:
    """A daemon and the edges it was built with, for :func:`serve` to run and close."""

    daemon: Daemon
    source: Any            # PrometheusSource (or the stand-in when no policy needs it)
    actuator: Any          # KubernetesActuator (the live one, also under a dry run)
    registry: Any          # the metrics' CollectorRegistry
    elector: LeaderElector | None
    kubernetes: str        # the API server's address, for the log
    stop: threading.Event
    activators: Any = None  # ActivatorSource, when activators are given or discovered
    objects: Any = None     # scaler.daemon.status.ObjectsRunner, with --policy-source kubernetes
    shards: Any = None      # scaler.daemon.buckets.Shards with --shard


def context_namespace(kubeconfig: str | None, context: str | None = None) -> str | None:
    """The kubeconfig context's namespace (kubectl's default namespace), if any."""
    from scaler.kubeconfig import KubeconfigError
    from scaler.kubeconfig import context_namespace as namespace_of

    try:
        return namespace_of(kubeconfig, context=context)
    except KubeconfigError:
        return None   # build_daemon reports the broken kubeconfig


def namespace_scope(namespaces: list[str]) -> tuple[bool, tuple[str, ...] | None]:
    """``--namespace``: (watch every namespace, the namespaces served or None for those
    the policies name). ``all`` alone means every namespace."""
    from scaler.policy import names

    if not namespaces:
        return False, None
    if "all" in namespaces:
        if len(namespaces) > 1:
            raise UsageError("--namespace all stands alone (it already means every namespace)")
        return True, None
    for ns in namespaces:
        why = names.dns1123_label(ns)
        if why:
            raise UsageError(f"--namespace {ns!r}: {why}")
    return False, tuple(dict.fromkeys(namespaces))


def needs_prometheus(policies: list[Policy]) -> bool:
    """Whether any policy reads its load with PromQL (the others read the activators)."""
    return any(p.metric.source == "prometheus" for p in policies)


class _NoPrometheus:
    """The source for PromQL policies when the daemon was started without Prometheus
    (every policy read the activators then; a reload may add one that does not)."""

    class connection:   # noqa: N801 (read by serve()'s log line)
        url = None

    def read(self, query: str, start: float, end: float, *, deadline: float):
        from scaler.sources import Reading

        return Reading(error="unreachable", detail="no Prometheus configured: start the "
                                                   "daemon with --prometheus-url")

    def history(self, query, start, end, step=1.0, *, deadline=None):
        return self.read(query, start, end, deadline=0.0)

    def close(self) -> None:
        pass


def _activator_service(text: str) -> tuple[str, int | str]:
    name, _, port = text.partition(":")
    if not name:
        raise UsageError(f"--activator-service {text!r}: expected NAME[:PORT]")
    return name, (int(port) if port.isdigit() else port or "admin")


def activator_source(urls: list[str], service: str | None, namespace: str | None, client: Any,
                     clock: Clock, stop: threading.Event):
    """The activators' stats reader: ``--activator-url``s and, with ``service``, the
    endpoints of that Service (its port named ``admin`` unless given) in ``namespace``."""
    import structlog

    from scaler.endpointslices import list_slices, ready_endpoints, url_host
    from scaler.sources.activator import ActivatorSource

    discover = None
    if service:
        name, port = _activator_service(service)
        if not namespace:
            raise UsageError("--activator-service needs the namespace: POD_NAMESPACE or "
                             "--lease-namespace")

        def discover() -> list[str]:
            slices = list_slices(client, namespace, name, timeout=2.0)
            return sorted({f"http://{url_host(e.address)}:{e.port}"
                           for e in ready_endpoints(slices, port)})
    try:
        return ActivatorSource(urls, discover=discover, clock=clock, shutdown=stop,
                               log=structlog.get_logger("scaler"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def configure_logging(log_format: str = "auto") -> None:
    """``auto``: JSON lines unless stdout is a terminal; ``json``; ``console``."""
    from scaler.daemon import observability

    observability.configure_logging(json={"auto": None, "json": True,
                                          "console": False}[log_format])


def build_daemon(policies: list[Policy], policy_path: str | Path | None,
                 connection: Connection | None, *, policy_namespace: str | None = None,
                 kubeconfig: str | None = None, context: str | None = None,
                 dry_run: bool = False,
                 leader_elect: bool = False, lease_name: str = "scaler",
                 lease_namespace: str | None = None, identity: str | None = None,
                 clock: Clock | None = None, activator_urls: list[str] = (),
                 activator_service: str | None = None, shard: bool = False,
                 buckets: int = 10, namespaces: list[str] = (),
                 tick_log: str = "all") -> DaemonParts:
    """The live daemon for ``policies`` (read from ``policy_path``, re-read on change):
    Prometheus and the activators in, the Kubernetes scale subresource (and the public
    Services of ``activator.mode: whenNeeded``) out, only reported under ``dry_run``, on
    the system clock. ``connection`` may be None when no policy uses PromQL. With
    ``policy_namespace``, the ScalingPolicy objects of that namespace are policies too
    (``scaler.daemon.policy_objects``), and their status is written back."""
    from prometheus_client import CollectorRegistry

    from scaler.actuators.dry_run import DryRunActuator
    from scaler.actuators.kubernetes import KubernetesActuator
    from scaler.actuators.traffic import TrafficSwitch
    from scaler.daemon.loop import Daemon
    from scaler.daemon.observability import Metrics
    from scaler.daemon.poke import PokeInbox
    from scaler.kube import KubeClient
    from scaler import __version__

    if leader_elect and not lease_namespace:
        raise UsageError("--leader-elect needs --lease-namespace (or POD_NAMESPACE)")
    if shard and not lease_namespace:
        raise UsageError("--shard needs --lease-namespace (or POD_NAMESPACE)")
    if shard and leader_elect:
        raise UsageError("--shard and --leader-elect: choose one (--shard elects a writer "
                         "per bucket of targets, --leader-elect one for them all)")
    if not 1 <= buckets <= 1000:
        raise UsageError(f"--buckets: {buckets} is not allowed (1..1000)")
    watch_all, watched = namespace_scope(namespaces)
    if watched is not None:
        outside = [f"{p.name} ({p.scale_target_ref.namespace})" for p in policies
                   if p.scale_target_ref.namespace not in watched]
        if outside:
            raise UsageError(f"--namespace {', '.join(sorted(watched))}: policies target "
                             f"other namespaces: {', '.join(outside[:5])}"
                             f"{' ...' if len(outside) > 5 else ''}")
    if connection is None and needs_prometheus(policies):
        raise UsageError("--prometheus-url (or PROMETHEUS_URL) is required: "
                         + ", ".join(p.name for p in policies if p.metric.source == "prometheus")
                         + " read their load with PromQL")
    reading = [p.name for p in policies if p.metric.source == "activator"]
    if reading and not activator_urls and not activator_service:
        raise UsageError(f"{', '.join(reading)}: metric.source activator needs "
                         "--activator-url or --activator-service")
    clock = clock or SystemClock()
    stop = threading.Event()
    identity = identity or os.environ.get("POD_NAME") or None
    # The API server names the writer "scaler" (the User-Agent up to its first "/"); the
    # rest tells replicas apart in its audit log.
    agent = f"scaler/{__version__}" + (f" ({identity})" if identity else "")
    try:
        client = KubeClient.from_config(kubeconfig, context=context, user_agent=agent)
    except Exception as exc:   # kubeconfig missing, malformed, or not in a cluster
        raise UsageError(f"cannot load Kubernetes configuration: {exc}") from None
    if connection is not None:
        from scaler.sources.prometheus import PrometheusSource

        # Requests are short (a tick's worth of seconds) and capped at 3 s, so an answer
        # still in flight at SIGTERM cannot hold shutdown past its 5 s budget.
        source = PrometheusSource(connection, clock=clock, shutdown=stop, request_timeout=3.0)
    else:
        source = _NoPrometheus()
    activators = None
    if activator_urls or activator_service:
        activators = activator_source(list(activator_urls), activator_service,
                                      lease_namespace, client, clock, stop)
    from scaler.actuators.kubernetes import TargetCache

    cache = TargetCache(client, clock=clock, stop=stop, all_namespaces=watch_all,
                        namespaces=watched)
    live = KubernetesActuator(client, clock=clock, stop=stop, cache=cache)
    registry = CollectorRegistry()
    elector = None
    if leader_elect:
        from scaler.daemon.lease import LeaderElector

        # The holder's name: the pod's (from the Downward API) unless given.
        # serve() releases the lease itself, within the shutdown budget.
        elector = LeaderElector(client, lease_namespace, lease_name, identity=identity,
                                clock=clock, stop=stop, release_on_cancel=False)
    shards = None
    if shard:
        from scaler.daemon.buckets import Shards
        from scaler.daemon.lease import default_identity

        shards = Shards(client, lease_namespace, lease_name, identity or default_identity(),
                        buckets=buckets, clock=clock, stop=stop)
    daemon = Daemon(policies, source=source, actuator=DryRunActuator(live) if dry_run else live,
                    clock=clock, metrics=Metrics(registry),
                    policy_path=Path(policy_path) if policy_path else None,
                    is_leader=elector.is_leader if elector else None, stop=stop,
                    activator_source=activators, shards=shards, tick_log=tick_log,
                    traffic=TrafficSwitch(client, clock=clock, dry_run=dry_run))
    if shards is not None:
        daemon.metrics.buckets_held.set_function(lambda: len(shards.held()))
        shards.on_gain = daemon.wake.set     # serve a bucket taken over at once
    daemon.pokes = PokeInbox(daemon.wake, known=lambda name: name in daemon.targets and (
        daemon.targets[name].policy.activator is not None), now=clock.now)
    objects = None
    if policy_namespace:
        objects = policy_objects(daemon, client, policy_namespace, elector=elector,
                                 dry_run=dry_run, stop=stop)
    return DaemonParts(daemon, source, live, registry, elector, client.host, stop, activators,
                       objects=objects, shards=shards)


def policy_objects(daemon: Daemon, client: Any, namespace: str, *, elector: Any,
                   dry_run: bool, stop: threading.Event, list_interval: float = 5.0):
    """The ScalingPolicy reader and status writer of ``namespace``, hooked into the loop
    (its policies as origin "kubernetes", its tick reports to the status writer), with a
    first list done now so the first pass already runs them."""
    import structlog

    from scaler.daemon.policy_objects import PolicyObjects
    from scaler.daemon.status import ObjectsRunner, StatusWriter

    log = structlog.get_logger("scaler")
    objects = PolicyObjects(client, namespace, others=lambda: daemon.origin("files"), log=log)
    writer = StatusWriter(client, objects, is_leader=elector.is_leader if elector else None,
                          write=not dry_run, now=daemon.clock.now, log=log)
    daemon.add_tick_listener(writer.on_tick)
    runner = ObjectsRunner(objects, writer, lambda ps: daemon.set_policies("kubernetes", ps),
                           stop, list_interval=list_interval,
                           monotonic=daemon.clock.monotonic)
    runner.poll_once()
    if objects.error is not None and "HTTP 404" in objects.error:
        raise UsageError(f"--policy-source kubernetes: the ScalingPolicy CRD is not installed "
                         f"(kubectl apply -f deploy/crd/crd.yaml): {objects.error}")
    return runner


def serve(parts: DaemonParts, *, metrics_port: int = 9464, health_port: int = 8081,
          bind_address: str = "0.0.0.0", dry_run: bool = False) -> int:
    """Run a built daemon until SIGTERM or SIGINT (SIGHUP reloads the policies), with its
    /metrics and health endpoints; release the lease and close the clients on the way out."""
    import signal

    import structlog

    from scaler.daemon import observability

    daemon = parts.daemon
    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
    try:
        metrics_server = observability.serve_metrics(parts.registry, metrics_port,
                                                     bind_address)
    except OSError as exc:
        raise UsageError(f"--metrics-port {metrics_port}: cannot listen on "
                         f"{bind_address}:{metrics_port}: {exc.strerror or exc}") from None
    posts = {"/v1/poke": daemon.pokes.handle} if daemon.pokes is not None else {}
    try:
        health = observability.HealthServer(health_port, healthy=daemon.healthy,
                                            ready=daemon.ready, host=bind_address,
                                            posts=posts).start()
    except OSError as exc:
        metrics_server.shutdown()
        raise UsageError(f"--health-port {health_port}: cannot listen on "
                         f"{bind_address}:{health_port}: {exc.strerror or exc}") from None
    lease_thread = parts.elector.start() if parts.elector else None
    shards_thread = parts.shards.start() if parts.shards else None
    if parts.activators is not None:
        parts.activators.start()
    if parts.objects is not None:
        parts.objects.start()
    structlog.get_logger("scaler").info(
        # Both addresses are free of credentials (the Prometheus URL's went into basic
        # auth, the API server's host is shown without them).
        "serving", metrics_port=metrics_port, health_port=health_port,
        prometheus=parts.source.connection.url, kubernetes=parts.kubernetes,
        leader_election=parts.elector is not None, dry_run=dry_run,
        shards=(f"{parts.shards.buckets} buckets" if parts.shards else None),
        activators=parts.activators.static if parts.activators else None)
    try:
        daemon.run()
    finally:
        daemon.request_stop()
        if parts.elector is not None:
            # Released from here, by a deadline, rather than by the election thread: with
            # a slow API server that thread may be inside a request for seconds.
            stopped = daemon.stop_requested_at or parts.daemon.clock.monotonic()
            parts.elector.release(deadline=stopped + SHUTDOWN_RELEASE_BY)
            lease_thread.join(timeout=0.5)
        if parts.shards is not None:
            stopped = daemon.stop_requested_at or parts.daemon.clock.monotonic()
            parts.shards.release(deadline=stopped + SHUTDOWN_RELEASE_BY)
            shards_thread.join(timeout=0.5)
        health.stop()
        metrics_server.shutdown()
        if parts.activators is not None:
            parts.activators.close()
        parts.source.close()
        parts.actuator.close()
    return 0


# ------------------------------------------------------------------------------- activator

def run_activator(args: Any) -> int:
    """``scaler activator``: the activator process (its own argument checks, exit codes and
    event loop live in ``scaler.activator.cli``)."""
    from scaler.activator.cli import run_args

    return run_args(args)


# ---------------------------------------------------------------------------------- record

def parse_time(text: str, now: float) -> float:
    """Unix seconds, an RFC 3339 time with a zone, "now", or now minus a duration."""
    from scaler.policy import parse_duration
    from scaler.sources.wire import parse_timestamp

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


def record_range(start: str, end: str = "now", step: str = "1s",
                 clock: Clock | None = None) -> tuple[float, float, float]:
    """(first, last, step) in seconds from the times and the step as the user wrote them."""
    from scaler.policy import parse_duration

    now = (clock or SystemClock()).now()
    first, last = parse_time(start, now), parse_time(end, now)
    try:
        seconds = parse_duration(step)
    except ValueError as exc:
        raise UsageError(f"--step: {exc}") from None
    if seconds <= 0:
        raise UsageError("--step must be positive")
    if last < first:
        raise UsageError(f"--end ({end}) is before --start ({start})")
    return first, last, seconds


# How long `scaler record` tries to reach Prometheus before it says it cannot: a refused
# connection or a wrong address is reported within seconds, not after the whole budget.
RECORD_PROBE_SECONDS = 5.0
# Reasons the first query gives that no amount of waiting for history will fix.
_RECORD_FATAL = ("unreachable", "timeout", "http_error", "query_error", "bad_response")


def record(connection: Connection, query: str, out: str | Path,
           span: tuple[float, float, float], clock: Clock | None = None,
           progress: Progress | None = None) -> Recorded:
    """Save ``query``'s history from Prometheus over ``span`` (:func:`record_range`) as a
    recording: a first short query says at once when Prometheus cannot be reached or
    refuses the query; then the history, chunk by chunk (``progress`` shows them)."""
    from scaler.sources.prometheus import PrometheusSource
    from scaler.sources.recording.write import RecordError
    from scaler.sources.recording.write import record as write_recording

    clock = clock or SystemClock()
    first, last, step = span
    # A week at 1 s is ~55 range queries; give them time (the daemon's budget is a tick).
    with PrometheusSource(connection, clock=clock, history_timeout=600.0) as source:
        probe = source.fetch_history(query, max(first, last - step), last, step,
                                     deadline=clock.monotonic() + RECORD_PROBE_SECONDS).reading
        if probe.error in _RECORD_FATAL:
            hint = (" (is it running? for a cluster's Prometheus: kubectl port-forward -n "
                    "monitoring svc/prometheus 9090, then --prometheus-url "
                    "http://127.0.0.1:9090)" if probe.error in ("unreachable", "timeout")
                    else "")
            raise UsageError(f"cannot record from {connection.url}: {probe.error}: "
                             f"{probe.detail}{hint}")
        if progress is not None:
            progress.phase("recording", 0.0)
            source.on_chunk = lambda done, total: progress.update(done / total, force=True)
        try:
            done = write_recording(source, query, first, last, step, out)
        except (RecordError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        finally:
            if progress is not None:
                progress.done()
        return done
