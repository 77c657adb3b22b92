"""Synthetic load shapes for replay and evaluation.

A tool, not part of the scaler package: tools/make_recordings.py builds the bundled
recordings from these shapes, and the benchmarks and tests replay them. Import it with
tools/ on the path (the tests' pytest configuration and the benchmarks add it).

The five shapes of the evaluation suite, each stressing one part of an autoscaler:

- S1 ``diurnal`` / ``diurnal_weekly``: daily and weekly seasonality (forecast lead, warm-up);
- S2 ``burst``: a sudden 10x step (panic mode, scale-up rate, startup delay);
- S3 ``sparse_function``: a few requests between long idle gaps (scale to zero, cold starts);
- S4 ``ramp``: a linear ramp up and down (trend following, scale-down on the way down);
- S5 ``stationary_noise``: a noisy constant (flapping; nothing to follow).

Every generator is pure (numpy only: no I/O, no clock, no global random state), seeded and
deterministic: the same arguments give the same arrays, bit for bit, on a given numpy version.
Each returns ``(timestamps, values)``: int64 unix seconds, one per second, strictly ascending,
and float64 load in concurrency units (requests in flight averaged over each second, which is
what Knative's queue-proxy reports).

How load is made, so that its noise is the noise a real server would see:

1. a mean-concurrency *profile* c(t) describes the shape (a step, a sine, a ramp ...);
2. Little's law turns it into an arrival rate, λ(t) = c(t) / service_time;
3. arrivals in each second are Poisson(λ(t));
4. every request stays in flight for ``service_time`` seconds from a uniformly distributed
   offset inside its arrival second, and each second's value is the expected in-flight time
   that falls into it (an exact, closed-form kernel; see ``in_flight_kernel``).

So the mean of a long stretch equals the profile, and short windows (Knative's 6 s panic
window) see Poisson noise. Shapes that are naturally a list of arrivals (``sparse_function``)
skip steps 1–3 and feed their arrival counts to step 4 directly.

Arithmetic is element-wise only (no BLAS, no summation whose order depends on the CPU), and
the one vectorised transcendental (the diurnal cosine) is rounded before use, so a recording
built from these arrays is reproducible byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Timestamps = npt.NDArray[np.int64]
Values = npt.NDArray[np.float64]
Series = tuple[Timestamps, Values]

DEFAULT_START = 1_772_409_600  # 2026-03-02T00:00:00Z, a Monday
DAY = 86_400
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


# --------------------------------------------------------------------------------------
# Building blocks


def piecewise_linear(segments: Sequence[tuple[int, float, float]]) -> Values:
    """A mean-concurrency profile from ``(seconds, from_level, to_level)`` segments.

    Second i of a segment of n seconds has ``from + (to - from) * i / n``: the segment starts at
    ``from`` and the next segment supplies the end point, so ``(2, 175, 1750)`` followed by
    ``(300, 1750, 1750)`` is a 2 s ramp into a 5 min plateau.
    """
    parts = []
    for seconds, lo, hi in segments:
        if seconds < 1 or int(seconds) != seconds:
            raise ValueError(f"segment length must be whole seconds >= 1, got {seconds}")
        if lo < 0 or hi < 0:
            raise ValueError(f"levels must be non-negative, got {lo}, {hi}")
        i = np.arange(int(seconds), dtype=np.float64)
        parts.append(lo + (hi - lo) * i / seconds)
    return np.concatenate(parts) if parts else np.zeros(0)


def in_flight_kernel(service_time: float) -> Values:
    """Expected in-flight seconds that one request adds to its arrival second and the next ones.

    A request arrives at a uniform offset u in [0, 1) of second 0 and is in flight on
    [u, u + s). Its expected busy time before x is G(x) = Φ(x) − Φ(x − 1), where Φ is the
    integral of clip(v, 0, s); the kernel is h[j] = G(j + 1) − G(j) and sums to s (Little's law
    for one request).
    """
    s = float(service_time)
    if not s > 0:
        raise ValueError(f"service_time must be > 0, got {service_time}")
    length = math.ceil(s) + 1  # u + s < 1 + s <= ceil(s) + 1

    def phi(y: float) -> float:
        if y <= 0:
            return 0.0
        if y <= s:
            return y * y / 2
        return s * s / 2 + s * (y - s)

    g = np.array([phi(x) - phi(x - 1) for x in range(length + 1)])
    return np.diff(g)


def concurrency_from_arrivals(counts: npt.ArrayLike, service_time: float) -> Values:
    """Per-second average concurrency from per-second arrival counts (see ``in_flight_kernel``).

    Requests still in flight after the last second are cut off; nothing is in flight before the
    first. The convolution is written as shifted adds in a fixed order (np.convolve may call
    BLAS, whose rounding depends on the CPU).
    """
    n_arr = np.asarray(counts, dtype=np.float64)
    h = in_flight_kernel(service_time)
    out = np.zeros(n_arr.size)
    for j, hj in enumerate(h):
        if j >= n_arr.size:
            break
        out[j:] += hj * n_arr[: n_arr.size - j]
    return out


def from_profile(profile: npt.ArrayLike, *, service_time: float = 0.5, seed: int = 0,
                 start: int = DEFAULT_START) -> Series:
    """Realise a mean-concurrency profile as Poisson arrivals with a fixed service time.

    The series starts warm: as if the first level had been running before ``start``, so the
    first seconds are not depressed by requests that "arrived before the recording began".
    """
    c = np.asarray(profile, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError("profile must be a non-empty 1-D array")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("profile must be finite and non-negative")
    rng = np.random.default_rng(seed)
    warm = in_flight_kernel(service_time).size - 1
    rate = np.concatenate([np.full(warm, c[0]), c]) / service_time
    counts = rng.poisson(rate)
    values = concurrency_from_arrivals(counts, service_time)[warm:]
    return _series(values, start)


def _series(values: Values, start: int) -> Series:
    ts = np.int64(start) + np.arange(values.size, dtype=np.int64)
    return ts, values.astype(np.float64, copy=False)


def _seconds(span: float, unit: float, name: str) -> int:
    """The whole seconds in ``span`` units of ``unit`` seconds; at least one."""
    n = round(span * unit)
    if n < 1:
        raise ValueError(f"{name} must cover at least one second, got {span}")
    return n


def _day_fraction_and_weekday(ts: Timestamps) -> tuple[Values, npt.NDArray[np.int64]]:
    """Hour of the UTC day in [0, 24) and weekday (Monday = 0) for each timestamp."""
    day, second = np.divmod(ts, DAY)
    return second / 3600.0, (day + _EPOCH_WEEKDAY) % 7


# --------------------------------------------------------------------------------------
# S2: sudden 10x step burst


def burst(*, baseline: float = 171.5, factor: float = 10.0, before: int = 1800,
          duration: int = 300, after: int = 1800, ramp: int = 2, **draw: Any) -> Series:
    """Baseline, then a step to ``factor`` × baseline, then back (S2).

    ``before`` seconds at ``baseline``; a linear ramp of ``ramp`` seconds (2 s is "sudden",
    30 s and 300 s are the gentler variants); ``duration`` seconds held at the peak; the same
    ramp down; ``after`` seconds at ``baseline``. ``draw`` takes :func:`from_profile`'s
    ``service_time``, ``seed`` and ``start``.

    The default levels sit mid-way between replica counts at Knative's default target of 70
    per replica (171.5 / 70 = 2.45 -> 3 replicas, 1715 / 70 = 24.5 -> 25), so Poisson noise in
    the 60 s average does not flip the count; a round 175 -> 1750 = 25.0 would flap 25/26.
    """
    peak = baseline * factor
    profile = piecewise_linear(
        [
            (before, baseline, baseline),
            (ramp, baseline, peak),
            (duration, peak, peak),
            (ramp, peak, baseline),
            (after, baseline, baseline),
        ]
    )
    return from_profile(profile, **draw)


# --------------------------------------------------------------------------------------
# S1: diurnal (+ weekly) with noise


def diurnal(days: float = 1.0, *, mean: float = 350.0, amplitude: float = 0.6,
            peak_hour: float = 16.0, weekend_factor: float = 1.0, noise_cv: float = 0.1,
            noise_seconds: int = 60, seed: int = 0, start: int = DEFAULT_START,
            **draw: Any) -> Series:
    """A daily cycle: c(t) = mean · (1 + amplitude · cos(2π (hour − peak_hour)/24)) · (1 + ε).

    The peak/trough ratio of the mean profile is (1 + amplitude) / (1 − amplitude): 4 with the
    default 0.6, trough 12 h after the peak (04:00 UTC by default). ε is Gaussian with standard
    deviation ``noise_cv``, held for ``noise_seconds`` (real rate swings last minutes, not one
    second), on top of the Poisson noise of arrivals. ``days`` may be fractional; the cycle
    follows the UTC wall clock of ``start``. Saturdays and Sundays (UTC) carry
    ``weekend_factor`` (1: no weekly cycle). ``draw`` takes :func:`from_profile`'s
    ``service_time``.
    """
    if not 0 <= amplitude < 1:
        raise ValueError(f"amplitude must be in [0, 1), got {amplitude}")
    n = _seconds(days, DAY, "days")
    ts = np.int64(start) + np.arange(n, dtype=np.int64)
    hour, weekday = _day_fraction_and_weekday(ts)
    # Rounded so that a last-ulp difference between CPUs' vector cos cannot change a draw.
    daily = np.round(1.0 + amplitude * np.cos(2.0 * np.pi * (hour - peak_hour) / 24.0), 9)
    weekly = np.where(weekday >= 5, weekend_factor, 1.0)
    rng = np.random.default_rng(seed)
    blocks = -(-n // noise_seconds)
    eps = np.repeat(rng.normal(0.0, noise_cv, blocks), noise_seconds)[:n]
    profile = np.maximum(mean * daily * weekly * (1.0 + eps), 0.0)
    # A separate stream for arrivals, so changing noise_cv does not reshuffle the arrivals.
    return from_profile(profile, seed=seed + 1, start=start, **draw)


def diurnal_weekly(days: float = 14.0, *, weekend_factor: float = 0.6, **shape: Any) -> Series:
    """``diurnal`` with a weekly cycle: weekends at ``weekend_factor`` (S1); ``shape`` takes
    the rest of ``diurnal``'s keywords.

    Fourteen days by default, so a seasonal forecaster sees two full weeks. A 1 s series of 14
    days is 1,209,600 points.
    """
    return diurnal(days, weekend_factor=weekend_factor, **shape)


# --------------------------------------------------------------------------------------
# S3: sparse bursty function with long idle gaps


def sparse_function(hours: float = 24.0, *, period: float = 600.0, jitter: float = 0.1,
                    regular_share: float = 0.7, idle_median: float = 7200.0,
                    idle_sigma: float = 1.0, min_requests: int = 1, max_requests: int = 20,
                    burst_seconds: int = 5, service_time: float = 2.0, seed: int = 0,
                    start: int = DEFAULT_START) -> Series:
    """On/off invocations: bursts of a few requests separated by long idle gaps (S3).

    The time from one burst's start to the next is, with probability ``regular_share``, a
    timer-like ``period`` ± ``jitter`` (uniform), and otherwise lognormal with median
    ``idle_median`` and shape ``idle_sigma``. It is never shorter than the burst plus its
    service time plus 2 s, so consecutive bursts are always separated by idle seconds. The
    series starts idle (the first burst comes one gap after ``start``). Each burst is a uniform
    ``min_requests``..``max_requests`` requests spread uniformly over ``burst_seconds``, each
    in flight for ``service_time`` seconds.
    """
    n = _seconds(hours, 3600, "hours")
    if not 1 <= min_requests <= max_requests:
        raise ValueError(
            f"need 1 <= min_requests <= max_requests, got {min_requests}, {max_requests}")
    rng = np.random.default_rng(seed)
    min_gap = burst_seconds + math.ceil(service_time) + 2
    # Enough gaps to cover n seconds with certainty: each is at least min_gap long.
    k = n // min_gap + 2
    regular = rng.uniform(period * (1 - jitter), period * (1 + jitter), k)
    idle = rng.lognormal(math.log(idle_median), idle_sigma, k)
    gaps = np.maximum(np.where(rng.random(k) < regular_share, regular, idle), min_gap)
    starts = np.floor(np.cumsum(gaps)).astype(np.int64)
    starts = starts[starts < n]
    sizes = rng.integers(min_requests, max_requests, size=starts.size, endpoint=True)
    # Arrival second of each request: its burst's start plus a uniform offset in the burst.
    owner = np.repeat(np.arange(starts.size), sizes)
    arrival = starts[owner] + rng.integers(0, burst_seconds, size=owner.size)
    counts = np.bincount(arrival[arrival < n], minlength=n)
    return _series(concurrency_from_arrivals(counts, service_time), start)


# --------------------------------------------------------------------------------------
# S4: linear ramp up and down


def ramp(*, peak: float = 700.0, up: int = 3600, hold: int = 1800, down: int = 3600,
         idle_before: int = 0, idle_after: int = 0, **draw: Any) -> Series:
    """0 → ``peak`` over ``up`` seconds, ``hold`` at the peak, back to 0 over ``down`` (S4).

    Optional idle stretches before and after. The default peak, 700 concurrent requests, is
    10 replicas at a target of 70. ``draw`` takes :func:`from_profile`'s ``service_time``,
    ``seed`` and ``start``.
    """
    segments = [(idle_before, 0.0, 0.0), (up, 0.0, peak), (hold, peak, peak),
                (down, peak, 0.0), (idle_after, 0.0, 0.0)]
    profile = piecewise_linear([s for s in segments if s[0] > 0])
    return from_profile(profile, **draw)


# --------------------------------------------------------------------------------------
# S5: stationary, noisy (control)


def stationary_noise(hours: float = 1.0, *, mean: float = 350.0, cv: float = 0.75,
                     hold_seconds: int = 5, seed: int = 0, **draw: Any) -> Series:
    """A constant mean with heavy noise: nothing to follow, so any scaling is flapping (S5).

    The arrival rate is mean / service_time times a Gamma factor with mean 1 and coefficient
    of variation ``cv`` (Gamma keeps it non-negative), redrawn every ``hold_seconds``; arrivals
    on top are Poisson. ``draw`` takes :func:`from_profile`'s ``service_time`` and ``start``.
    """
    n = _seconds(hours, 3600, "hours")
    if not cv > 0:
        raise ValueError(f"cv must be > 0, got {cv}")
    rng = np.random.default_rng(seed)
    blocks = -(-n // hold_seconds)
    shape = 1.0 / (cv * cv)
    factor = np.repeat(rng.gamma(shape, 1.0 / shape, blocks), hold_seconds)[:n]
    return from_profile(mean * factor, seed=seed + 1, **draw)
