"""The forecasting models: O(1) update per bucket, a fit on the bucket history.

Holt-Winters (additive, one or more seasons, fitted with Nelder-Mead over the logits of
its parameters), a linear trend, and EWMA; the package docstring has the formulas.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

# scipy (optimize, signal) is imported inside the functions that fit: only holt-winters and
# ewma need it, and importing it costs about a second, so linear and the daemon without
# these models never pay for it.

# Nelder-Mead over the logits of α, β*, γ*_i (L-BFGS-B and SLSQP spend more time in
# multithreaded BLAS calls on 3-vectors than in the objective; logits keep the search off
# the sticky bounds 0 and 1): a cold fit, then refits that start from the previous
# parameters with a smaller simplex and few iterations.
_Z = 9.0
_FIRST_FIT_ITER, _FIRST_FIT_STEP = 150, 1.0
_REFIT_ITER, _REFIT_STEP = 12, 0.5
_PRIOR = 1e-6
_Z0 = (-1.5, -3.0, -1.5)  # cold start: α 0.18, β* 0.05, γ* 0.18 (every season)


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


class HoltWinters:
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
            sse = hw_pass(y, k0, ms, level0, rings0, x, None)
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
        hw_pass(y, k0, ms, level0, rings0, x, state)
        self.x = tuple(float(v) for v in x)
        self.alpha, self.beta, self.gammas = hw_params(self.x)
        self.level, self.trend, self.rings = state["level"], state["trend"], state["rings"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _nelder_mead(objective, z0: np.ndarray, step: float, maxiter: int) -> np.ndarray:
    """Minimise over logits in [-_Z, _Z]^n from z0; never returns a point worse than z0."""
    import scipy.optimize

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


def hw_params(x) -> tuple[float, float, tuple[float, ...]]:
    alpha = float(x[0])
    return alpha, alpha * float(x[1]), tuple((1.0 - alpha) * float(g) for g in x[2:])


_HOLT_B = np.array([1.0, -2.0, 1.0])


def hw_pass(y: np.ndarray, k0: int, ms: tuple[int, ...], level0: float,
             rings0: list[np.ndarray], x, state: dict | None) -> float:
    """One Holt-Winters pass over ``y`` (bucket k0 first): the sum of squared one-step errors.

    Block by block of the shortest season L: every s_i[k − m_i] read inside a block was
    written before it (m_i >= L), so u = y − Σ s_i[k − m_i] is known and the errors of the
    level/trend recursion on u are the linear filter

        E(z) / U(z) = (1 − z⁻¹)² / (1 + (α + β − 2) z⁻¹ + (1 − α) z⁻²)

    whose direct-form-II-transposed state is exactly (−(l + b), l).
    """
    from scipy.signal import lfilter

    alpha, beta, gammas = hw_params(x)
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


class Ewma:
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
        import scipy.optimize
        from scipy.signal import lfilter

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


class Linear:
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
