"""Load forecasts that may raise a replica floor: Holt-Winters, linear trend, EWMA.

Pure: no I/O, no clock reads, no logging; ``now`` and every sample time are arguments.
Only imported when prediction is on (it imports scipy).

What it computes
================
Samples (unix seconds, load >= 0) go into buckets of ``grid`` (whole) seconds aligned to
multiples of ``grid`` (bucket k covers [k·grid, (k+1)·grid)), so seasons line up with the
wall clock. The load of a second is the sum of its samples, as the decider's windows sum a
1 s bucket; a bucket's value is the mean load over its seconds that have samples. A bucket
is final once a sample of a later bucket arrives; buckets skipped by a gap are final at the
same moment and count as *missing* (no data is not zero: a missing bucket updates no model
and no error statistic). Samples that are not finite or negative are
ignored, and a sample for a bucket that is already final is dropped. A gap longer than
``max_history`` starts the forecaster over (warming again).

The model is updated once per final bucket, in O(1) (linear: O(window)), and refitted on the
bucket history at most every ``refit_interval``:

* ``holt-winters``: additive Holt-Winters with one or more seasons (Taylor's double seasonal
  form for e.g. [1d, 7d]), error-correction form::

      e = y − (l + b + Σ s_i[k − m_i]);  l ← l + b + α e;  b ← b + β e;  s_i[k] = s_i[k − m_i] + γ_i e

  with β = α·β*, γ_i = (1 − α)·γ*_i and α, β*, γ*_i in [0, 1] fitted by
  ``scipy.optimize.minimize`` (Nelder-Mead over their logits, with a faint pull towards
  the cold-start values for parameters the history cannot identify) on the one-step
  squared error over the history (the last ``max_history``). The initial state comes from the first longest season of the
  history window: level = its mean, trend 0, each season = its phase means of what the
  shorter seasons left (centred). A refit runs the recursion season-block by season-block:
  inside a block of the shortest season every seasonal term is known from the previous
  blocks, so level and trend are a second-order linear filter (``scipy.signal.lfilter``)
  and the seasonal updates are one vector operation (scipy.signal is imported for lfilter
  alone: a Python loop over 20,160 buckets costs 100× more per pass). Missing buckets are filled for the
  fit (value one shortest season earlier, else the last value). The first fit waits for
  ``min_history`` longest seasons of history; refits start from the previous parameters
  with few iterations (cost: benchmarks/forecast_speed.py).
* ``linear``: least-squares line over the buckets of the last ``linear_window``,
  extrapolated (PHPA's linear model, on load instead of replicas).
* ``ewma``: s ← s + α (y − s), α fitted by ``scipy.optimize.minimize_scalar`` on the one-step
  squared error; the forecast is flat.

Advice at ``now``
=================
The advice uses the state after the last final bucket K − 1. While ``now`` lies in bucket K,
``now + horizon`` lies in one of the buckets K + floor(horizon/grid) .. K + ceil(horizon/grid);
the *point* forecast is the largest forecast over those buckets (h = j − (K − 1) steps ahead),
clamped at 0, so the advice only changes when a bucket becomes final.

The *upper* forecast is ``max(0, point + Q_q(r))`` where Q_q is the empirical ``quantile``
(linear interpolation, numpy's default) of the recent out-of-sample errors at the horizon:
r = y_k − f_{k | k − H}, the realised bucket mean minus the forecast made H = ceil(horizon/grid)
+ 1 buckets earlier (the farthest target above) for that bucket, over the buckets of the last
``error_window``. So with quantile 0.9 the upper forecast covers the actual about 90 % of the
time if the recent errors are representative; a biased model shifts it accordingly.

The advice is *active* (may raise the floor) only when all hold, checked in this order:
a model is fitted (holt-winters: at least ``min_history`` longest seasons seen; linear, ewma:
``linear_window`` seen); at least ``min_errors`` horizon errors are in the error window; the
error window's weighted MAPE, Σ|r| / Σ y, is at most ``max_error`` ("fallback" otherwise);
and the last final bucket ended less than ``stale_after`` (default 2 × grid) before ``now``.

The replica floor is ``ceil(upper / target_value)`` while active, else none (see
:func:`replica_floor`); prediction only ever raises the reactive count.

Replay
======
:func:`forecast_series` gives, for a whole recording and any ticks, exactly (bit for bit) what
feeding a :class:`Forecaster` every sample with time <= tick and calling ``advise(tick)``
gives: it aggregates with ``np.bincount`` (sequential sums, like the online ``+=``), runs the
same per-bucket code once per final bucket, and maps ticks to buckets with ``searchsorted``.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.optimize
from scipy.signal import lfilter

MODELS = ("holt-winters", "linear", "ewma")
MODES = ("act", "observe")
DAY = 86_400.0

# Nelder-Mead over the logits of α, β*, γ*_i (L-BFGS-B and SLSQP spend more time in
# multithreaded BLAS calls on 3-vectors than in the objective; logits keep the search off
# the sticky bounds 0 and 1): a cold fit, then refits that start from the previous
# parameters with a smaller simplex and few iterations.
_Z = 9.0
_FIRST_FIT_ITER, _FIRST_FIT_STEP = 150, 1.0
_REFIT_ITER, _REFIT_STEP = 12, 0.5
_PRIOR = 1e-6
_Z0 = (-1.5, -3.0, -1.5)  # cold start: α 0.18, β* 0.05, γ* 0.18 (every season)


@dataclass(frozen=True)
class PredictionSpec:
    """The ``prediction`` policy block, durations in seconds.

    The fields after ``grid`` are not in the policy YAML (yet); their defaults are the
    product's. ``seasonality`` is sorted ascending; the longest season must be a multiple
    of every shorter one (e.g. 1d and 7d) for holt-winters.
    """

    enabled: bool = False
    mode: str = "act"                  # act | observe (forecast-only)
    model: str = "holt-winters"        # holt-winters | linear | ewma
    seasonality: tuple[float, ...] = (DAY,)
    horizon: float = 30.0              # lead time
    min_history: float = 2.0           # longest seasons before holt-winters may act
    quantile: float = 0.9              # act on this quantile of the recent horizon errors
    refit_interval: float = 3600.0
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
        errors = []
        if self.mode not in MODES:
            errors.append(f"mode {self.mode!r} not in {MODES}")
        if self.model not in MODELS:
            errors.append(f"model {self.model!r} not in {MODELS}")
        if not (math.isfinite(self.grid) and self.grid >= 1 and self.grid == int(self.grid)):
            errors.append(f"grid must be a whole number of seconds >= 1, got {self.grid}")
        if not (math.isfinite(self.horizon) and self.horizon >= 0):
            errors.append(f"horizon must be >= 0, got {self.horizon}")
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
            if not self.seasonality:
                errors.append("holt-winters needs at least one season")
            if not self.min_history >= 1:
                errors.append(f"minHistory must be >= 1 season, got {self.min_history}")
            for s in self.seasonality:
                m = s / self.grid
                if m != round(m) or m < 2:
                    errors.append(f"season {s:g}s must be a whole multiple (>= 2) of grid "
                                  f"{self.grid:g}s")
            if not errors:
                ms = self.season_buckets
                if any(ms[-1] % m for m in ms):
                    errors.append(f"the longest season must be a multiple of the others, "
                                  f"got {self.seasonality}")
                elif self.horizon_steps[1] > ms[0]:
                    errors.append(f"horizon {self.horizon:g}s must be shorter than the "
                                  f"shortest season")
        if errors:
            raise ValueError("prediction: " + "; ".join(errors))

    # Derived sizes, in buckets --------------------------------------------------------
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


@dataclass(frozen=True)
class Advice:
    point: float | None      # forecast load at now + horizon (None: no model yet)
    upper: float | None      # point + error quantile (None: not enough errors yet)
    active: bool             # may raise the replica floor
    reason: str              # "active", "warming: …", "fallback: …", "stale: …"


@dataclass(frozen=True)
class ForecastSeries:
    """Per-tick advice for a replay: NaN where the Advice field was None."""

    point: np.ndarray
    upper: np.ndarray
    active: np.ndarray       # bool


_NO_HISTORY = Advice(None, None, False, "warming: no complete bucket yet")


def replica_floor(advice: Advice, target_value: float) -> int:
    """The replica floor the advice asks for: ceil(upper / target) while active, else 0."""
    if not advice.active or advice.upper is None:
        return 0
    return math.ceil(advice.upper / target_value)


def floor_series(series: ForecastSeries, target_value: float) -> np.ndarray:
    """:func:`replica_floor` for every tick of a :class:`ForecastSeries` (int64)."""
    upper = np.where(series.active, series.upper, 0.0)
    return np.ceil(upper / target_value).astype(np.int64)


# ------------------------------------------------------------------------------------------
# Models: O(1) update per bucket, fit on history.


def _ffill(y: np.ndarray) -> np.ndarray:
    """Fill NaN with the last value before it, leading NaN with the first value."""
    miss = np.isnan(y)
    if not miss.any():
        return y
    present = np.flatnonzero(~miss)
    idx = np.where(miss, 0, np.arange(y.size))
    np.maximum.accumulate(idx, out=idx)
    out = y[idx]
    out[: present[0]] = y[present[0]]
    return out


def _impute_seasonal(y: np.ndarray, m: int) -> np.ndarray:
    """Missing buckets take the value one season earlier, else the last value."""
    if not np.isnan(y).any():
        return y
    y = y.copy()
    for start in range(m, y.size, m):
        seg = y[start:start + m]
        prev = y[start - m:start - m + seg.size]
        np.copyto(seg, prev, where=np.isnan(seg))
    return _ffill(y)


class _HoltWinters:
    def __init__(self, ms: tuple[int, ...]) -> None:
        self.ms = ms
        self.x: tuple[float, ...] | None = None   # fitted α, β*, γ*_i
        self.z: np.ndarray | None = None          # their logits, where the search runs
        self.level = 0.0
        self.trend = 0.0
        self.rings: list[list[float]] = []        # ring[i][k % m_i] = latest s_i of that phase
        self.alpha = self.beta = 0.0
        self.gammas: tuple[float, ...] = ()

    def update(self, k: int, y: float) -> None:
        p = self.level + self.trend
        if math.isnan(y):     # missing: carry the state forward
            self.level = p
            return
        c = 0.0
        for ring, m in zip(self.rings, self.ms):
            c += ring[k % m]
        e = y - (p + c)
        self.level = p + self.alpha * e
        self.trend = self.trend + self.beta * e
        for ring, m, g in zip(self.rings, self.ms, self.gammas):
            ring[k % m] += g * e

    def forecast(self, k: int, h: int) -> float:
        j = k + h
        c = 0.0
        for ring, m in zip(self.rings, self.ms):
            c += ring[j % m]
        return (self.level + h * self.trend) + c

    def fit(self, y: np.ndarray, k0: int) -> None:
        ms = self.ms
        y = _impute_seasonal(y, ms[0])
        big = ms[-1]
        head = y[:big]
        level0 = float(head.mean())
        resid = head - level0
        rings0 = []
        for m in ms:
            phase = (k0 + np.arange(big)) % m
            s = np.bincount(phase, resid, minlength=m) / np.bincount(phase, minlength=m)
            s -= s.mean()
            rings0.append(s)
            resid = resid - s[phase]
        scale = float(y.var()) * y.size + 1e-12

        def objective(x: np.ndarray) -> float:
            sse = _hw_pass(y, k0, ms, level0, rings0, x, None)
            return sse / scale if math.isfinite(sse) else 1e300

        warm = self.z is not None
        z0 = self.z if warm else np.array(_Z0[:2] + (_Z0[2],) * len(ms))
        prior = np.array(_Z0[:2] + (_Z0[2],) * len(ms))
        # A faint pull towards the cold-start values keeps parameters the history cannot
        # identify (a weekly γ with two weeks of data) where they were.
        def penalised(z: np.ndarray) -> float:
            d = z - prior
            return objective(_sigmoid(z)) + _PRIOR * float(d @ d)

        z = _nelder_mead(penalised, z0, _REFIT_STEP if warm else _FIRST_FIT_STEP,
                         _REFIT_ITER if warm else _FIRST_FIT_ITER)
        self.z = z
        x = _sigmoid(z)
        state: dict = {}
        _hw_pass(y, k0, ms, level0, rings0, x, state)
        self.x = tuple(float(v) for v in x)
        self.alpha, self.beta, self.gammas = _hw_params(self.x)
        self.level, self.trend, self.rings = state["level"], state["trend"], state["rings"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _nelder_mead(objective, z0: np.ndarray, step: float, maxiter: int) -> np.ndarray:
    """Minimise over logits in [-_Z, _Z]^n from z0; never returns a point worse than z0."""
    simplex = [z0]
    for i in range(z0.size):
        v = z0.copy()
        v[i] = v[i] + step if v[i] + step <= _Z else v[i] - step
        simplex.append(v)
    res = scipy.optimize.minimize(
        objective, z0, method="Nelder-Mead", bounds=[(-_Z, _Z)] * z0.size,
        options={"maxiter": maxiter, "initial_simplex": np.array(simplex),
                 "xatol": 1e-2, "fatol": 1e-7})
    z = np.clip(res.x, -_Z, _Z)
    return z if objective(z) <= objective(z0) else z0


def _hw_params(x) -> tuple[float, float, tuple[float, ...]]:
    alpha = float(x[0])
    return alpha, alpha * float(x[1]), tuple((1.0 - alpha) * float(g) for g in x[2:])


_HOLT_B = np.array([1.0, -2.0, 1.0])


def _hw_pass(y: np.ndarray, k0: int, ms: tuple[int, ...], level0: float,
             rings0: list[np.ndarray], x, state: dict | None) -> float:
    """One Holt-Winters pass over ``y`` (bucket k0 first): the sum of squared one-step errors.

    Block by block of the shortest season L: every s_i[k − m_i] read inside a block was
    written before it (m_i >= L), so u = y − Σ s_i[k − m_i] is known and the errors of the
    level/trend recursion on u are the linear filter

        E(z) / U(z) = (1 − z⁻¹)² / (1 + (α + β − 2) z⁻¹ + (1 − α) z⁻²)

    whose direct-form-II-transposed state is exactly (−(l + b), l).
    """
    alpha, beta, gammas = _hw_params(x)
    n = y.size
    seas = []
    for m, ring in zip(ms, rings0):
        s = np.empty(n + m)
        s[:m] = ring[(k0 + np.arange(m)) % m]
        seas.append(s)
    a = np.array([1.0, alpha + beta - 2.0, 1.0 - alpha])
    zi = np.array([-level0, level0])   # trend 0: l + b = l
    sse = 0.0
    step = ms[0]
    for t0 in range(0, n, step):
        t1 = min(t0 + step, n)
        c = seas[0][t0:t1]
        for s in seas[1:]:
            c = c + s[t0:t1]
        e, zi = lfilter(_HOLT_B, a, y[t0:t1] - c, zi=zi)
        for s, m, g in zip(seas, ms, gammas):
            s[t0 + m:t1 + m] = s[t0:t1] + g * e
        sse += float(e @ e)
    if state is not None:
        state["level"] = float(zi[1])
        state["trend"] = float(-zi[0] - zi[1])
        rings = []
        for s, m in zip(seas, ms):
            ring = np.empty(m)
            ring[(k0 + n - m + np.arange(m)) % m] = s[n:n + m]
            rings.append(ring.tolist())
        state["rings"] = rings
    return sse


class _Ewma:
    def __init__(self) -> None:
        self.alpha: float | None = None
        self.x: float | None = None
        self.level = 0.0

    def update(self, k: int, y: float) -> None:
        if not math.isnan(y):
            self.level = self.level + self.alpha * (y - self.level)

    def forecast(self, k: int, h: int) -> float:
        return self.level

    def fit(self, y: np.ndarray, k0: int) -> None:
        y = _ffill(y)
        zi = np.array([-y[0]])
        scale = float(y.var()) * y.size + 1e-12

        def objective(alpha: float) -> float:
            e, _ = lfilter([1.0, -1.0], [1.0, alpha - 1.0], y, zi=zi)
            return float(e @ e) / scale

        res = scipy.optimize.minimize_scalar(objective, bounds=(0.001, 1.0), method="bounded",
                                             options={"xatol": 1e-4})
        self.alpha = float(res.x)
        self.x = self.alpha
        _, zf = lfilter([1.0, -1.0], [1.0, self.alpha - 1.0], y, zi=zi)
        self.level = float(-zf[0])


class _Linear:
    """Least squares over the present buckets of the last ``n`` (refitted every bucket)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.points: deque[tuple[int, float]] = deque()
        self.x = None
        self.last = 0
        self.slope = 0.0
        self.intercept = 0.0

    def update(self, k: int, y: float) -> None:
        self.last = k
        if not math.isnan(y):
            self.points.append((k, y))
        while self.points and self.points[0][0] <= k - self.n:
            self.points.popleft()
        if len(self.points) < 2:
            self.x = None
            return
        xs = [float(kk - k) for kk, _ in self.points]
        ys = [yy for _, yy in self.points]
        count = float(len(xs))
        mx = sum(xs) / count
        my = sum(ys) / count
        sxx = sum((xi - mx) * (xi - mx) for xi in xs)
        sxy = sum((xi - mx) * (yi - my) for xi, yi in zip(xs, ys))
        self.slope = sxy / sxx if sxx > 0 else 0.0
        self.intercept = my - self.slope * mx
        self.x = (self.intercept, self.slope)

    def forecast(self, k: int, h: int) -> float:
        return self.intercept + self.slope * float(h + k - self.last)

    def fit(self, y: np.ndarray, k0: int) -> None:   # refitted in update()
        pass


# ------------------------------------------------------------------------------------------
# The per-bucket core shared by Forecaster and forecast_series.


class _Core:
    """Everything that changes when a bucket becomes final, and the advice it implies."""

    def __init__(self, spec: PredictionSpec) -> None:
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
        spec = self.spec
        if spec.model == "holt-winters":
            self.model = _HoltWinters(spec.season_buckets)
        elif spec.model == "ewma":
            self.model = _Ewma()
        else:
            self.model = _Linear(self.linear_n)
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
        self.advice = _NO_HISTORY
        self.end = 0.0

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
        upper = max(0.0, point + _quantile(self.sorted_errors, spec.quantile))
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


def _quantile(sorted_values: list[float], q: float) -> float:
    """numpy's default ('linear') quantile of an ascending list."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _stale(advice: Advice, age: float) -> Advice:
    return Advice(advice.point, advice.upper, False,
                  f"stale: last complete bucket ended {age:g}s ago")


# ------------------------------------------------------------------------------------------
# Online and batch front ends.


class Forecaster:
    """Online forecaster: ``observe`` every sample in time order, ``advise`` at each tick.

    Feed only samples with time <= now before ``advise(now)`` (the loop and the replay do),
    so each tick's advice uses its past only. A refit runs inside the ``observe`` call that
    completes a bucket (see benchmarks/forecast_speed.py for its cost).
    """

    def __init__(self, spec: PredictionSpec) -> None:
        self.spec = spec
        self._core = _Core(spec)
        self._bucket: int | None = None
        self._sum = 0.0      # of the bucket's samples
        self._count = 0      # seconds with samples in the bucket
        self._second: int | None = None

    def observe(self, t: float, value: float) -> None:
        if not (math.isfinite(t) and math.isfinite(value) and value >= 0):
            return   # no data is not zero
        k = math.floor(t / self.spec.grid)
        if self._bucket is None:
            self._bucket, self._sum, self._count = k, 0.0, 0
        elif k > self._bucket:
            self._core.complete(self._bucket, self._sum / self._count, k)
            self._bucket, self._sum, self._count = k, 0.0, 0
        elif k < self._bucket:
            return   # late sample for a final bucket
        second = math.floor(t)
        if self._count == 0 or second != self._second:
            self._count += 1
            self._second = second
        self._sum += value

    def advise(self, now: float) -> Advice:
        core = self._core
        if core.last is None:
            return _NO_HISTORY
        age = now - core.end
        if age >= self.spec.stale_seconds:
            return _stale(core.advice, age)
        return core.advice

    @property
    def parameters(self) -> tuple[float, ...] | float | None:
        """The fitted parameters (holt-winters: α, β*, γ*_i; ewma: α), for logs."""
        return self._core.model.x


def forecast_series(spec: PredictionSpec, times, values, ticks) -> ForecastSeries:
    """Advice at every tick of a recording, exactly as a :class:`Forecaster` fed every
    sample with time <= tick would give at that tick. ``times`` must be non-decreasing."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    ticks = np.asarray(ticks, dtype=np.float64)
    if times.shape != values.shape or times.ndim != 1:
        raise ValueError("times and values must be 1-D arrays of the same length")
    ok = np.isfinite(times) & np.isfinite(values) & (values >= 0)
    t, v = times[ok], values[ok]
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise ValueError("times must be non-decreasing")
    n_ticks = ticks.size
    point = np.full(n_ticks, np.nan)
    upper = np.full(n_ticks, np.nan)
    active = np.zeros(n_ticks, dtype=bool)
    if t.size == 0:
        return ForecastSeries(point, upper, active)
    k = np.floor(t / spec.grid).astype(np.int64)
    change = np.flatnonzero(k[1:] != k[:-1]) + 1
    first = np.concatenate(([0], change))
    group = np.zeros(k.size, dtype=np.int64)
    group[change] = 1
    np.cumsum(group, out=group)
    means = np.bincount(group, weights=v) / _seconds_per_bucket(t, group)
    buckets = k[first].tolist()
    means_l = means.tolist()
    # Event i: the first sample of bucket i + 1 arrives and bucket i becomes final.
    n_events = len(buckets) - 1
    ev_time = t[first[1:]]
    ev_point = np.full(n_events, np.nan)
    ev_upper = np.full(n_events, np.nan)
    ev_ready = np.zeros(n_events, dtype=bool)
    ev_end = np.full(n_events, np.inf)   # inf: no history (never stale, never active)
    core = _Core(spec)
    for i in range(n_events):
        core.complete(buckets[i], means_l[i], buckets[i + 1])
        if core.last is None:
            continue
        a = core.advice
        if a.point is not None:
            ev_point[i] = a.point
        if a.upper is not None:
            ev_upper[i] = a.upper
        ev_ready[i] = a.active
        ev_end[i] = core.end
    idx = np.searchsorted(ev_time, ticks, side="right") - 1
    seen = idx >= 0
    j = idx[seen]
    point[seen] = ev_point[j]
    upper[seen] = ev_upper[j]
    fresh = (ticks[seen] - ev_end[j]) < spec.stale_seconds
    active[seen] = ev_ready[j] & fresh
    return ForecastSeries(point, upper, active)


def _seconds_per_bucket(t: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Seconds with samples in each group (t sorted): runs of equal floor(t) per group."""
    sec = np.floor(t)
    new = np.ones(t.size, dtype=bool)
    new[1:] = (sec[1:] != sec[:-1]) | (group[1:] != group[:-1])
    return np.bincount(group, weights=new)


# ------------------------------------------------------------------------------------------
# Forecast quality for the report (reference/predictive.md §4.3 item 7).


def realised(spec: PredictionSpec, times, values, ticks) -> np.ndarray:
    """What each tick's forecast aims at: the mean load of the grid bucket holding
    ``tick + horizon`` (NaN when that bucket has no valid sample)."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(times) & np.isfinite(values) & (values >= 0)
    k = np.floor(times[ok] / spec.grid).astype(np.int64)
    target = np.floor((np.asarray(ticks, dtype=np.float64) + spec.horizon) / spec.grid)
    out = np.full(target.size, np.nan)
    if k.size == 0:
        return out
    uniq, inverse = np.unique(k, return_inverse=True)
    seconds = np.unique(np.stack([inverse, np.floor(times[ok]).astype(np.int64)]), axis=1)
    means = (np.bincount(inverse, weights=values[ok])
             / np.bincount(seconds[0], minlength=uniq.size))
    pos = np.searchsorted(uniq, target.astype(np.int64))
    hit = (pos < uniq.size) & (uniq[np.minimum(pos, uniq.size - 1)] == target)
    out[hit] = means[pos[hit]]
    return out


def quality(point, actual, upper=None) -> dict:
    """MAE and MAPE of ``point`` against ``actual``, and coverage: the share of ticks where
    the forecast (``upper`` when given, else ``point``) was at or above the actual.

    Ticks where either side is NaN are left out; MAPE also leaves out actual == 0.
    """
    point = np.asarray(point, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    cover = point if upper is None else np.asarray(upper, dtype=np.float64)
    both = np.isfinite(point) & np.isfinite(actual)
    err = np.abs(point[both] - actual[both])
    pos = actual[both] > 0
    with_cover = np.isfinite(cover) & np.isfinite(actual)
    return {
        "n": int(both.sum()),
        "mae": float(err.mean()) if err.size else math.nan,
        "mape": float((err[pos] / actual[both][pos]).mean()) if pos.any() else math.nan,
        "coverage": (float((cover[with_cover] >= actual[with_cover]).mean())
                     if with_cover.any() else math.nan),
    }
