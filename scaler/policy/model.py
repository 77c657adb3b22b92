"""A scaling policy as the code sees it: frozen values, durations in seconds. Pure.

One class per block of the YAML document: :class:`Policy` is ``spec`` (with
``metadata.name``), :class:`ScaleTargetRef` and :class:`MetricSpec` its two required
blocks, :class:`PredictionPolicy` the ``prediction`` block, :class:`ActivatorPolicy` the
``activator`` block. ``scaleToZeroGracePeriod``
and ``scaleToZero.keepAlive`` are two fields of :class:`Policy`; ``scaler.decide.zero``
turns them into the policy's scale-to-zero strategy. ``scaler.policy.parse`` builds these
from YAML; nothing here reads files or YAML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scaler.policy import names
from scaler.policy.durations import format_duration

# The forecasters ``scaler.decide.predict`` has, and what it may do with a forecast.
MODELS = ("seasonal-level", "holt-winters", "linear", "ewma")
MODES = ("act", "observe")
# Knative's two ways of averaging a window (spec.windowAlgorithm).
WINDOW_ALGORITHMS = ("linear", "weighted-exponential")
# The scale-to-zero strategies ``scaler.decide.zero`` has (spec.scaleToZero.keepAlive).
KEEP_ALIVE = ("fixed", "histogram")
# Where a policy's load comes from (spec.metric.source), and how its activator sits in
# the traffic's path (spec.activator.mode).
METRIC_SOURCES = ("prometheus", "activator")
ACTIVATOR_MODES = ("always", "whenNeeded")
DAY = 86_400.0
# Which models use which prediction keys: a key set for a model that ignores it is an
# error (scaler.policy.parse), so a knob never silently does nothing.
MODEL_KEYS = {
    "maxExtraCost": ("seasonal-level",),
    "quantile": ("holt-winters", "linear", "ewma"),
    "refitInterval": ("holt-winters", "ewma"),
    "minHistory": ("holt-winters",),
}


@dataclass(frozen=True)
class ScaleTargetRef:
    """The workload whose scale subresource the policy drives.

    Its fields become a request path, so construction refuses anything but valid
    Kubernetes names (ValueError): an invalid reference cannot exist, whoever builds it.
    """

    name: str
    namespace: str = "default"
    kind: str = "Deployment"
    api_version: str = "apps/v1"

    def __post_init__(self) -> None:
        errors = self.problems(self.name, self.namespace, self.kind, self.api_version)
        if errors:
            raise ValueError("scaleTargetRef: " + "; ".join(
                f"{key} {value!r} {why}" for key, value, why in errors))

    @staticmethod
    def problems(name: object, namespace: object, kind: object,
                 api_version: object) -> list[tuple[str, object, str]]:
        """(key, value, rule broken) for each field that is not a valid Kubernetes word."""
        out = []
        for key, value, check in (("name", name, names.dns1123_subdomain),
                                  ("namespace", namespace, names.dns1123_label),
                                  ("kind", kind, names.kind),
                                  ("apiVersion", api_version, names.api_version)):
            why = check(value) if isinstance(value, str) else "is not a string"
            if why:
                out.append((key, value, why))
        return out

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class MetricSpec:
    type: str = "concurrency"   # concurrency | rps
    query: str = ""             # PromQL giving the workload's total load, also at zero replicas
    source: str = "prometheus"  # prometheus (the query) | activator (its counts; no query)
    # spec.metric.select: the query may answer many series (``sum by (service) (...)``);
    # the policy's load is the one whose labels match all of these. Policies with the same
    # query share one query per tick. Sorted (label, value) pairs: hashable and ordered.
    select: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ActivatorPolicy:
    """The ``activator`` block: how the activator routes, holds and counts the policy's
    traffic. The Service and the public Service live in the target's namespace."""

    service: str                       # the workload's Service: its EndpointSlices are the pods
    port: int | str                    # the endpoints' port, a number or the slice port's name
    hosts: tuple[str, ...]             # Host header values routed to this policy
    max_pending_requests: int = 1000   # held at zero; beyond: 503 with Retry-After
    timeout: float = 60.0              # a held request waits at most this long: then 504
    mode: str = "whenNeeded"           # always in the path, or only at (or near) zero
    public_service: str = ""           # the selector-less Service the ingress sends to;
                                       # "" = "<service>-public"

    @property
    def public(self) -> str:
        """The public Service (and its one EndpointSlice) the daemon points at the pods or
        at the activators: the serve/proxy switch of ``mode: whenNeeded``."""
        return self.public_service or f"{self.service}-public"


@dataclass(frozen=True)
class PredictionPolicy:
    """The ``prediction`` block: the forecaster's whole configuration, in seconds.

    The fields after ``refit_interval`` are not policy keys (yet); their defaults are the
    product's. ``seasonality`` is kept sorted ascending; for holt-winters the longest
    season must be a multiple of every shorter one (e.g. 1d and 7d); seasonal-level takes
    one season or none. Construction rejects any combination the forecaster cannot run
    (ValueError), so a policy that parsed is a policy the forecaster accepts. Fields a
    model does not use (:data:`MODEL_KEYS`) keep their defaults and are ignored.
    """

    enabled: bool = False
    mode: str = "act"                  # act | observe (forecast, log, chart; never act)
    model: str = "seasonal-level"      # one of MODELS
    seasonality: tuple[float, ...] = (DAY,)   # seasonal-level: one season, or () for none
    horizon: float = 60.0              # lead time, about the workload's start-up time
    max_extra_cost: float = 0.10       # seasonal-level: the floor's cost budget (a fraction)
    min_history: float = 2.0           # longest seasons of history before holt-winters acts
    quantile: float = 0.9              # holt-winters, linear, ewma: quantile of the errors
    refit_interval: float = 3600.0     # holt-winters, ewma
    grid: float = 60.0                 # forecast bucket
    error_window: float = 3600.0       # recent horizon errors kept for the quantile and fallback
    min_errors: int = 30               # horizon errors needed before acting
    max_error: float = 0.5             # fall back when the recent weighted MAPE exceeds this
    linear_window: float = 900.0       # history of the linear model (and warm-up of linear/ewma)
    max_history: float = 14 * DAY      # history kept and fitted on (longer if min_history needs)
    stale_after: float | None = None   # advice inactive this long after the last final bucket;
                                       # None = 2 × grid

    def __post_init__(self) -> None:
        object.__setattr__(self, "seasonality",
                           tuple(sorted(float(s) for s in self.seasonality)))
        errors = self._problems()
        if errors:
            raise ValueError("prediction: " + "; ".join(errors))

    def _problems(self) -> list[str]:
        errors = []
        if self.mode not in MODES:
            errors.append(f"mode {self.mode!r} not in {MODES}")
        if self.model not in MODELS:
            errors.append(f"model {self.model!r} not in {MODELS}")
        if not (math.isfinite(self.grid) and self.grid >= 1 and self.grid == int(self.grid)):
            errors.append(f"grid must be a whole number of seconds >= 1, got {self.grid}")
        if not (math.isfinite(self.horizon) and self.horizon >= 0):
            errors.append(f"horizon must be >= 0, got {self.horizon}")
        if not (math.isfinite(self.max_extra_cost) and 0 <= self.max_extra_cost <= 1):
            errors.append(f"maxExtraCost must be in [0, 1] (0 %..100 %), got "
                          f"{self.max_extra_cost}")
        if not 0 < self.quantile < 1:
            errors.append(f"quantile must be in (0, 1), got {self.quantile}")
        if not self.refit_interval > 0:
            errors.append(f"refitInterval must be > 0, got {self.refit_interval}")
        if not self.error_window > 0:
            errors.append(f"error_window must be > 0, got {self.error_window}")
        if self.min_errors < 1:
            errors.append(f"min_errors must be >= 1, got {self.min_errors}")
        if not self.max_error > 0:
            errors.append(f"max_error must be > 0, got {self.max_error}")
        if not self.linear_window > 0:
            errors.append(f"linear_window must be > 0, got {self.linear_window}")
        if self.stale_after is not None and not self.stale_after > 0:
            errors.append(f"stale_after must be > 0, got {self.stale_after}")
        if self.model == "holt-winters" and not errors:
            errors += self._season_problems()
        if self.model == "seasonal-level" and not errors:
            errors += self._one_season_problems()
        return errors

    def _one_season_problems(self) -> list[str]:
        """seasonal-level: at most one season, a whole number (>= 2) of grid buckets, longer
        than the horizon's reach."""
        if len(self.seasonality) > 1:
            return [f"seasonal-level takes one season or none, got {self.seasonality}"]
        if not self.seasonality:
            return []
        m = self.seasonality[0] / self.grid
        if m != round(m) or m < 2:
            return [f"season {self.seasonality[0]:g}s must be a whole multiple (>= 2) of grid "
                    f"{self.grid:g}s"]
        if self.horizon_steps[1] > m:
            return [f"horizon {self.horizon:g}s must be shorter than the season"]
        return []

    def _season_problems(self) -> list[str]:
        if not self.seasonality:
            return ["holt-winters needs at least one season"]
        errors = []
        if not self.min_history >= 1:
            errors.append(f"minHistory must be >= 1 season, got {self.min_history}")
        for s in self.seasonality:
            m = s / self.grid
            if m != round(m) or m < 2:
                errors.append(f"season {s:g}s must be a whole multiple (>= 2) of grid "
                              f"{self.grid:g}s")
        if errors:
            return errors
        ms = self.season_buckets
        if any(ms[-1] % m for m in ms):
            return [f"the longest season must be a multiple of the others, got "
                    f"{self.seasonality}"]
        if self.horizon_steps[1] > ms[0]:
            return [f"horizon {self.horizon:g}s must be shorter than the shortest season"]
        return []

    # Derived sizes, in buckets of ``grid`` seconds --------------------------------------
    @property
    def season_buckets(self) -> tuple[int, ...]:
        return tuple(round(s / self.grid) for s in self.seasonality)

    @property
    def horizon_steps(self) -> tuple[int, int]:
        """Steps ahead of the last final bucket that ``now + horizon`` can fall in."""
        r = self.horizon / self.grid
        return math.floor(r) + 1, math.ceil(r) + 1

    @property
    def stale_seconds(self) -> float:
        return 2.0 * self.grid if self.stale_after is None else float(self.stale_after)

    @property
    def warm_history(self) -> float:
        """Seconds of history that let the model act as soon as it is read (what a
        restarted daemon reads): Holt-Winters minHistory longest seasons plus one, at most
        14 days; seasonal-level with a season all it keeps (``max_history``, the profile's
        14 days); an hour for the others."""
        if self.model == "holt-winters":
            return min((self.min_history + 1) * max(self.seasonality), 14 * DAY)
        if self.model == "seasonal-level" and self.seasonality:
            return self.max_history
        return 3600.0


@dataclass(frozen=True)
class Schedule:
    """One entry of ``spec.schedules``: from each time ``cron`` fires (in ``timezone``)
    and for ``duration`` seconds after it, at least ``min_replicas`` replicas. The
    parser has checked the expression and the zone (``scaler.decide.schedules``
    evaluates them)."""

    cron: str                     # five fields: minute hour day-of-month month day-of-week
    duration: float               # seconds of elapsed time from each firing
    min_replicas: int
    timezone: str = "UTC"         # an IANA zone; the cron's hours are its wall-clock hours

    def __str__(self) -> str:
        return f"{self.cron} {self.timezone}"


@dataclass(frozen=True)
class Policy:
    """A validated scaling policy. Durations are in seconds.

    ``stable_window`` is a whole number of seconds (an int): it sizes a window of 1 s
    buckets, and so does :attr:`panic_window`, derived from it.
    """

    name: str = "default"
    scale_target_ref: ScaleTargetRef = ScaleTargetRef(name="default")
    metric: MetricSpec = MetricSpec()
    target: float = 100.0                      # per-replica capacity (Knative TotalValue)
    target_utilization_percentage: float = 70.0
    min_replicas: int = 0
    max_replicas: int = 0                      # 0 = unlimited
    initial_replicas: int = 1
    activation_replicas: int = 0               # Knative activation-scale; 0 = off
    stable_window: int = 60
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_down_delay: float = 0.0
    scale_to_zero_grace_period: float = 30.0
    target_burst_capacity: float = 211.0
    tick_interval: float = 2.0
    window_algorithm: str = "linear"           # one of WINDOW_ALGORITHMS
    prediction: PredictionPolicy = PredictionPolicy()
    keep_alive: str = "fixed"                  # one of KEEP_ALIVE: fixed (the grace) | histogram
    cold_start_cost: float = 600.0             # histogram: the fixed keep-alive it must beat
    prewarm_lead: float | None = None          # histogram: pre-warm this early; None = learnt
    activator: ActivatorPolicy | None = None   # spec.activator: held at zero, counted exactly
    schedules: tuple[Schedule, ...] = ()       # spec.schedules: replica floors by the clock
    source: str = field(default="<built-in>", compare=False)  # where it was read, for messages

    @property
    def target_value(self) -> float:
        """Knative's TargetValue: the per-replica load the decider aims for.
        100 × 70 % = 70; never below 0.01."""
        return max(0.01, self.target * (self.target_utilization_percentage / 100.0))

    @property
    def panic_window(self) -> int:
        """Panic window in whole seconds, as Knative's MakeMetric computes it:
        ``time.Duration(float64(stable) * pct / 100).Round(time.Second)``, at least 1 s —
        the product in float nanoseconds, truncated to whole nanoseconds, then rounded to
        the second with halves away from zero. 60 s × 10 % = 6 s; 25 s × 10 % = 2.5 s →
        3 s; 6 s × 10 % → 1 s; 500 s × 16.9 % is 84,499,999,999 ns → 84 s, not 85."""
        second = 1_000_000_000
        ns = int(float(self.stable_window * second) * self.panic_window_percentage / 100.0)
        rest = ns % second
        rounded = ns - rest if rest + rest < second else ns + second - rest
        return max(1, rounded // second)

    def describe(self) -> str:
        """One line for ``scaler validate``."""
        upper = "unlimited" if self.max_replicas == 0 else str(self.max_replicas)
        return (
            f"{self.name}: {self.scale_target_ref}, {self.metric.type}"
            f"{' from the activator' if self.metric.source == 'activator' else ''}"
            + (" (series " + ", ".join(f"{k}={v}" for k, v in self.metric.select) + ")"
               if self.metric.select else "")
            + " target "
            f"{self.target_value:g} per replica ({self.target:g} × "
            f"{self.target_utilization_percentage:g}%), replicas {self.min_replicas}..{upper}, "
            f"stable {format_duration(self.stable_window)} / panic "
            f"{format_duration(self.panic_window)} at {self.panic_threshold_percentage:g}%, "
            f"tick {format_duration(self.tick_interval)}"
            + (f", activator {self.activator.mode} for {', '.join(self.activator.hosts)}"
               if self.activator else "")
            + "".join(f", at least {s.min_replicas} from \"{s.cron}\" {s.timezone} for "
                      f"{format_duration(s.duration)}" for s in self.schedules)
        )
