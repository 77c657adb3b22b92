"""From final buckets to advice: the per-bucket core shared by the online
:class:`~scaler.decide.predict.forecaster.Forecaster` and the batch
:func:`~scaler.decide.predict.series.forecast_series`, so both give the same advice.

:class:`Core` runs the fitted models (holt-winters, linear, ewma) with a fixed error
quantile; ``seasonal-level`` has its own core (:mod:`scaler.decide.predict.seasonal`);
:func:`new_core` picks one. The models are imported when a core needs them, so
seasonal-level never loads scipy."""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

from typing import TYPE_CHECKING, Any

import numpy as np

from scaler.policy import PredictionPolicy

if TYPE_CHECKING:
    from scaler.decide.predict.seasonal import SeasonalLevel


@dataclass(frozen=True)
class Advice:
    point: float | None      # forecast load at now + horizon (None: no model yet)
    upper: float | None      # point + error quantile (None: not enough errors yet)
    active: bool             # may raise the replica floor
    reason: str              # "active", "warming: …", "fallback: …", "stale: …"
    coverage: float | None = None   # seasonal-level: the error quantile the budget allows


NO_HISTORY = Advice(None, None, False, "warming: no complete bucket yet")


def replica_floor(advice: Advice, target_value: float) -> int:
    """The replica floor the advice asks for: ceil(upper / target) while active, else 0."""
    if not advice.active or advice.upper is None:
        return 0
    return math.ceil(advice.upper / target_value)


def new_core(spec: PredictionPolicy, target_value: float | None = None,
             shape: Any = None) -> Core | SeasonalLevel:
    """The per-bucket core of ``spec.model``; seasonal-level needs the decider's
    ``target_value`` (its band is costed in replicas), and takes a
    :class:`~scaler.decide.predict.seasonal.Shape` (its fixed sizes; benchmarks vary them)."""
    if spec.model == "seasonal-level":
        from scaler.decide.predict.seasonal import SHAPE, SeasonalLevel

        if target_value is None:
            raise ValueError("model seasonal-level needs the decider's target value")
        return SeasonalLevel(spec, target_value, shape or SHAPE)
    return Core(spec)


class Core:
    """Everything that changes when a bucket becomes final, and the advice it implies."""

    def __init__(self, spec: PredictionPolicy) -> None:
        self.spec = spec
        self.h_lo, self.h_hi = spec.horizon_steps
        g = spec.grid
        self.refit_n = max(1, round(spec.refit_interval / g))
        self.error_n = max(1, round(spec.error_window / g))
        self.linear_n = max(2, round(spec.linear_window / g))
        if spec.model == "holt-winters":
            self.season_n = spec.season_buckets[-1]
            self.warm_n = max(self.season_n, math.ceil(spec.min_history * self.season_n - 1e-9))
        else:
            self.season_n = 0
            self.warm_n = self.linear_n
        self.history_n = max(math.ceil(spec.max_history / g), self.warm_n)
        self.reset()

    def reset(self) -> None:
        from scaler.decide.predict.models import Ewma, HoltWinters, Linear

        spec = self.spec
        if spec.model == "holt-winters":
            self.model = HoltWinters(spec.season_buckets)
        elif spec.model == "ewma":
            self.model = Ewma()
        else:
            self.model = Linear(self.linear_n)
        self.first: int | None = None        # first bucket since the (re)start
        self.last: int | None = None         # last final bucket
        self.history: deque[float] = deque(maxlen=self.history_n)
        self.present = 0                     # present buckets in history
        self.fitted_at: int | None = None
        self.pending: deque[tuple[int, float]] = deque()   # (target bucket, forecast)
        self.errors: deque[tuple[int, float, float]] = deque()   # (bucket, r, y)
        self.sorted_errors: list[float] = []
        self.abs_sum = 0.0
        self.y_sum = 0.0
        self.advice = NO_HISTORY
        self.end = 0.0

    @property
    def parameters(self) -> tuple[float, ...] | float | None:
        return self.model.x

    # -- one final bucket, then the empty buckets up to next_k (exclusive) --------------
    def complete(self, k: int, y: float, next_k: int) -> None:
        self._push(k, y)
        if next_k - k - 1 > self.history_n:
            self.reset()
            return
        for kk in range(k + 1, next_k):
            self._push(kk, math.nan)
        self._advise()

    def _push(self, k: int, y: float) -> None:
        if self.first is None:
            self.first = k
        self.last = k
        self.end = (k + 1) * self.spec.grid
        if len(self.history) == self.history.maxlen and not math.isnan(self.history[0]):
            self.present -= 1
        self.history.append(y)
        if not math.isnan(y):
            self.present += 1
        # the horizon error of the forecast made h_hi buckets ago for this bucket
        pending = self.pending
        while pending and pending[0][0] < k:
            pending.popleft()
        if pending and pending[0][0] == k:
            _, f = pending.popleft()
            if not math.isnan(y):
                self._add_error(k, y - f, y)
        errors = self.errors
        while errors and errors[0][0] <= k - self.error_n:
            _, r, yy = errors.popleft()
            del self.sorted_errors[bisect.bisect_left(self.sorted_errors, r)]
            self.abs_sum -= abs(r)
            self.y_sum -= yy
        # the model
        model = self.model
        if model.x is not None or self.spec.model == "linear":
            model.update(k, y)   # linear refits here, every bucket
        span = k - self.first + 1
        if (self.spec.model != "linear" and span >= self.warm_n and self.present >= 2
                and (self.fitted_at is None or k - self.fitted_at >= self.refit_n)):
            model.fit(np.array(self.history), k - len(self.history) + 1)
            self.fitted_at = k
        if model.x is not None:
            f = model.forecast(k, self.h_hi)
            if math.isfinite(f):
                pending.append((k + self.h_hi, max(0.0, f)))

    def _add_error(self, k: int, r: float, y: float) -> None:
        self.errors.append((k, r, y))
        bisect.insort(self.sorted_errors, r)
        self.abs_sum += abs(r)
        self.y_sum += y

    def _advise(self) -> None:
        spec, model = self.spec, self.model
        span = self.last - self.first + 1
        if spec.model == "linear" and span < self.warm_n:
            self.advice = Advice(None, None, False,
                                 f"warming: {span} of {self.warm_n} buckets")
            return
        if model.x is None:
            if spec.model == "holt-winters":
                reason = (f"warming: {span / self.season_n:.1f} of {spec.min_history:g} "
                          f"seasons")
            elif span < self.warm_n:
                reason = f"warming: {span} of {self.warm_n} buckets"
            else:
                reason = "warming: not enough data"
            self.advice = Advice(None, None, False, reason)
            return
        point = -math.inf
        for h in range(self.h_lo, self.h_hi + 1):
            point = max(point, model.forecast(self.last, h))
        if not math.isfinite(point):
            self.advice = Advice(None, None, False, "fallback: forecast is not finite")
            return
        point = max(0.0, point)
        n = len(self.sorted_errors)
        if n < spec.min_errors:
            self.advice = Advice(point, None, False,
                                 f"warming: {n} of {spec.min_errors} forecast errors")
            return
        upper = max(0.0, point + quantile_of_sorted(self.sorted_errors, spec.quantile))
        abs_sum = max(0.0, self.abs_sum)
        y_sum = max(0.0, self.y_sum)
        if y_sum > 0:
            wmape = abs_sum / y_sum
        else:
            wmape = 0.0 if abs_sum == 0 else math.inf
        if wmape > spec.max_error:
            self.advice = Advice(point, upper, False,
                                 f"fallback: recent wMAPE {wmape:.2f} > {spec.max_error:g}")
            return
        self.advice = Advice(point, upper, True, "active")


def quantile_of_sorted(sorted_values: list[float], q: float) -> float:
    """numpy's default ('linear') quantile of an ascending list."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def stale(advice: Advice, age: float) -> Advice:
    return Advice(advice.point, advice.upper, False,
                  f"stale: last complete bucket ended {age:g}s ago", advice.coverage)
