"""``seasonal-level``: a seasonal profile plus a robust level, with a band sized by a cost
budget instead of a fixed quantile. The default model; numpy only, nothing is fitted.

Why this model (benchmarks/README.md has the figures): on a real 28-day web trace a 30-minute
level forecasts as well as anything up to 15 minutes ahead, a daily profile helps from 30
minutes on, and a fitted Holt-Winters is worse than both at every horizon (each of its 1,440
per-minute seasonal states learns from a handful of noisy points). And no fixed quantile of
the errors keeps the cost in check at every scale: the band is in load units, the cost in
whole replicas, so the same 0.7 costs +3 % when one replica is a large share of the load and
+14 % when it is a tenth of it. So the band's quantile is chosen online, as the widest whose
cost over the recent past stays within ``maxExtraCost``.

The forecast, per final bucket (bucket means y_k on the ``grid``, k counts buckets)
===================================================================================
* Profile S(φ), φ = k mod m (m = season / grid; 1,440 for a day): the median of the present
  y over the last ``seasons`` seasons (as many as ``max_history`` holds, 14 for a daily season)
  at phases φ − 7 … φ + 7 (neighbouring minutes pool their noise: 14 days × 15 = 210 values),
  recomputed when a season boundary passes. S ≡ 0 until a whole season has been seen, and
  without a season (``seasonality: none``).
* Level ℓ: the median of the residuals y_k − S(k mod m) over the present buckets among the
  last 30. A median, so a 5-minute burst does not move it and the floor does not hold burst
  capacity afterwards (a mean held a one-hour burst's capacity for half an hour).
* Point forecast for bucket j: f(j) = max(0, S(j mod m) + ℓ). While ``now`` lies in bucket K
  (last final bucket K − 1), ``now + horizon`` falls in buckets K − 1 + h for h = h_lo..h_hi;
  the point is the largest f over them.

The band, and the budget it keeps
=================================
Horizon errors of the forecast made h_hi buckets before each bucket, scaled by
s(f) = √max(f, TV/10) (TV: the decider's target value; Poisson load noise grows like the
square root of the load): z = (y − f)/s(f), over the last day of buckets. For a coverage p,
the upper forecast is U_p = f + Q_p(z)·s(f) and the replica floor ceil(U_p / TV) — the
decider's own utilisation, so a perfect point forecast asks for what the decider will want
once the load is there.

p is the largest of :data:`COVERAGES` whose *counterfactual extra cost* stays within the
budget B = ``maxExtraCost``. For every final bucket k and every p, the floor F_k(p) that p
would have set during k is compared with the decider's count while that floor was in force
— its stable window slides from minute k − 1 to minute k, so the count is taken at three
points, R ∈ {ceil(y_{k−1}/TV), ceil((y_{k−1} + y_k)/2/TV), ceil(y_k/TV)}:
extra_k(p) = mean over the three of max(0, F_k(p) − R), base_k = mean of the three R. With
sums decayed by half every day (1,440 buckets), p is the largest with Σextra(p) ≤ B·Σbase (the
smallest candidate if none is); p = 0.5 until ``min_errors`` buckets have been costed. So
coarse replicas get a narrow band and fine ones a wide band, from the same default. (The
estimate is conservative: a floor costs less than it, measured 0.4–0.75 × the budget.)

Active when a span of 30 buckets has been seen, with at least ``min_errors`` horizon errors,
and the last final bucket is fresh (``stale_after``). There is no error fallback: the budget
bounds what a poor forecast can cost, and a floor never lowers the decider's count.

Cost: O(1) per bucket (13 quantiles of a sorted list, a 30-value median) and one
210 × m median per season; 14 days × 1,440 floats of history.
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np

from scaler.decide.predict.advice import NO_HISTORY, Advice, quantile_of_sorted
from scaler.policy import PredictionPolicy

COVERAGES = (0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


@dataclass(frozen=True)
class Shape:
    """The model's fixed sizes, in buckets (not policy keys; the defaults are the product's)."""

    max_seasons: int = 14            # seasons the profile pools
    profile_halfwidth: int = 7       # buckets either side of a phase pooled into it
    level_window: int = 30           # buckets whose residuals make the level
    error_window: int = 1440         # horizon errors kept for the band
    cost_halflife: float = 1440.0    # buckets over which a bucket's cost weight halves
    coverages: tuple[float, ...] = COVERAGES


SHAPE = Shape()


class Profile:
    """S(φ): per-phase medians over the last seasons, recomputed once per season."""

    def __init__(self, m: int, seasons: int, halfwidth: int) -> None:
        self.m, self.seasons, self.w = m, seasons, halfwidth
        self.values: list[float] | None = None    # S per phase; None: S ≡ 0
        self.boundary: int | None = None          # bucket index of the last recompute

    def value(self, j: int) -> float:
        return 0.0 if self.values is None else self.values[j % self.m]

    def recompute(self, k_next: int, history: deque[float], first: int) -> bool:
        """At a season boundary (k_next ≡ 0 mod m) with a whole season of history since
        ``first``; ``history[-1]`` is bucket k_next − 1. True when it recomputed."""
        m, w = self.m, self.w
        if not m or k_next % m or k_next - first < m or self.boundary == k_next:
            return False
        self.boundary = k_next
        n = min(self.seasons, (k_next - first) // m)
        need = n * m + w
        h = np.array(history, dtype=np.float64)[-need:]
        # left-padded to `need` (older than the history: unknown), right-padded by w (the
        # future of the last season's late phases)
        h = np.concatenate((np.full(need - h.size, np.nan), h, np.full(w, np.nan)))
        # row (season d, offset o), column φ: bucket w + d·m + o + φ of h
        rows = (w + m * np.arange(n)[:, None] + np.arange(-w, w + 1)[None, :]).reshape(-1)
        stack = h[rows[:, None] + np.arange(m)[None, :]]
        if not np.isfinite(stack).any():
            self.values = None
            return True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # phases with no value at all
            prof = np.nanmedian(stack, axis=0)
            fill = np.nanmean(prof) if np.isfinite(prof).any() else 0.0
        self.values = np.where(np.isnan(prof), fill, prof).tolist()
        return True


class SeasonalLevel:
    """The per-bucket core of ``seasonal-level``: what changes when a bucket becomes final,
    and the advice it implies. Same interface as :class:`~scaler.decide.predict.advice.Core`
    (``complete``, ``advice``, ``first``, ``last``, ``end``), so the online forecaster and
    the batch series drive it alike."""

    def __init__(self, spec: PredictionPolicy, target_value: float,
                 shape: Shape = SHAPE) -> None:
        if not (math.isfinite(target_value) and target_value > 0):
            raise ValueError(f"seasonal-level needs the decider's target value > 0, got "
                             f"{target_value}")
        self.spec, self.tv, self.shape = spec, float(target_value), shape
        self.h_lo, self.h_hi = spec.horizon_steps
        self.m = round(spec.seasonality[0] / spec.grid) if spec.seasonality else 0
        self.seasons = max(1, int(spec.max_history // (self.m * spec.grid))) if self.m else 0
        self.s_min = self.tv / 10.0
        self.history_n = max(1, math.ceil(spec.max_history / spec.grid))
        self.decay = 0.5 ** (1.0 / shape.cost_halflife)
        self.reset()

    def reset(self) -> None:
        shape = self.shape
        self.profile = Profile(self.m, self.seasons, shape.profile_halfwidth)
        keep = self.seasons * self.m + shape.profile_halfwidth if self.m else 2
        self.history: deque[float] = deque(maxlen=keep)
        self.first: int | None = None
        self.last: int | None = None
        self.resid: deque[tuple[int, float]] = deque()     # (bucket, y − S) of present buckets
        self.prev_y = math.nan
        self.pending: deque[tuple[int, float]] = deque()   # (target bucket, forecast)
        self.in_force: tuple[int, tuple[int, ...]] | None = None   # (bucket, floor per p)
        self.errors: deque[tuple[int, float]] = deque()    # (bucket, z)
        self.sorted_z: list[float] = []
        self.cost_extra = [0.0] * len(shape.coverages)
        self.cost_base = 0.0
        self.costed = 0
        self.advice = NO_HISTORY
        self.end = 0.0

    @property
    def parameters(self) -> float | None:
        """The coverage p in force (for logs), None while there is none."""
        return self.advice.coverage

    # -- one final bucket, then the empty buckets up to next_k (exclusive) --------------
    def complete(self, k: int, y: float, next_k: int) -> None:
        self._push(k, y)
        if next_k - k - 1 > self.history_n:
            self.reset()   # a gap longer than the history: start over
            return
        for kk in range(k + 1, next_k):
            self._push(kk, math.nan)
        self._advise()

    def _scale(self, f: float) -> float:
        return math.sqrt(max(f, self.s_min))

    def _push(self, k: int, y: float) -> None:
        shape, tv = self.shape, self.tv
        if self.first is None:
            self.first = k
        self.last = k
        self.end = (k + 1) * self.spec.grid
        self.history.append(y)
        present = not math.isnan(y)
        # the horizon error of the forecast made h_hi buckets ago for this bucket
        pending = self.pending
        while pending and pending[0][0] < k:
            pending.popleft()
        if pending and pending[0][0] == k:
            _, f = pending.popleft()
            if present:
                z = (y - f) / self._scale(f)
                self.errors.append((k, z))
                bisect.insort(self.sorted_z, z)
        while self.errors and self.errors[0][0] <= k - shape.error_window:
            _, z = self.errors.popleft()
            del self.sorted_z[bisect.bisect_left(self.sorted_z, z)]
        # what each coverage's floor would have cost during this bucket
        if self.in_force is not None and self.in_force[0] == k and present:
            prev = y if math.isnan(self.prev_y) else self.prev_y
            counts = (math.ceil(prev / tv), math.ceil(0.5 * (prev + y) / tv), math.ceil(y / tv))
            dec = self.decay
            self.costed += 1
            self.cost_base = self.cost_base * dec + sum(counts) / 3.0
            extra = self.cost_extra
            for i, fl in enumerate(self.in_force[1]):
                extra[i] = extra[i] * dec + sum(fl - c for c in counts if fl > c) / 3.0
        self.in_force = None
        # the level's residuals: present buckets among the last level_window
        if present:
            self.resid.append((k, y - self.profile.value(k)))
        while self.resid and self.resid[0][0] <= k - shape.level_window:
            self.resid.popleft()
        self.prev_y = y
        if self.profile.recompute(k + 1, self.history, self.first):
            # residuals were taken against the old profile: retake them from the new one
            recent = list(self.history)[-shape.level_window:]
            base = k + 1 - len(recent)
            self.resid = deque((base + i, v - self.profile.value(base + i))
                               for i, v in enumerate(recent) if not math.isnan(v))
        if self.resid:
            j = k + self.h_hi
            pending.append((j, self._forecast(j)))

    def _level(self) -> float:
        r = sorted(v for _, v in self.resid)
        n = len(r)
        return r[n // 2] if n % 2 else 0.5 * (r[n // 2 - 1] + r[n // 2])

    def _forecast(self, j: int) -> float:
        return max(0.0, self.profile.value(j) + self._level())

    def _floors(self, f: float) -> tuple[int, ...]:
        """The replica floor every coverage would set for the point forecast f."""
        s, tv, zs = self._scale(f), self.tv, self.sorted_z
        return tuple(math.ceil(max(0.0, f + quantile_of_sorted(zs, p) * s) / tv)
                     for p in self.shape.coverages)

    def _choose(self) -> int:
        """The index of the widest coverage within the budget (0.5 until costed)."""
        coverages = self.shape.coverages
        if self.costed < self.spec.min_errors:
            return min(range(len(coverages)), key=lambda i: abs(coverages[i] - 0.5))
        budget = self.spec.max_extra_cost * self.cost_base
        best = 0
        for i, extra in enumerate(self.cost_extra):
            if extra <= budget:
                best = i
        return best

    def _advise(self) -> None:
        spec, shape = self.spec, self.shape
        span = self.last - self.first + 1
        if not self.resid or span < shape.level_window:
            self.advice = Advice(None, None, False,
                                 f"warming: {span} of {shape.level_window} buckets")
            return
        point = max(self._forecast(self.last + h) for h in range(self.h_lo, self.h_hi + 1))
        n = len(self.sorted_z)
        if n < spec.min_errors:
            self.advice = Advice(point, None, False,
                                 f"warming: {n} of {spec.min_errors} forecast errors")
            return
        self.in_force = (self.last + 1, self._floors(point))
        p = shape.coverages[self._choose()]
        upper = max(0.0, point + quantile_of_sorted(self.sorted_z, p) * self._scale(point))
        self.advice = Advice(point, upper, True, "active", p)
