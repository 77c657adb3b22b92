"""Replay with the activator in the path: demand at zero ready replicas is held, not lost.

With ``spec.activator`` in the policy, the activator holds the requests that arrive while
the workload has no ready replica — at most ``maxPendingRequests`` at once, each for at
most ``timeout`` — and sends them on, in arrival order, as soon as a replica is ready.
Replay reads the recording second by second the same way (:func:`hold`):

* the demand recorded in a second with no ready replica arrives, as requests, in the
  middle of that second (for a ``rps`` metric a second's load is its requests; for
  ``concurrency`` it is read as that many requests arriving, which is exact for requests
  shorter than a second and counts a longer one once for each second it is in flight);
* requests that find ``maxPendingRequests`` already held overflow (503): lost;
* a held request waits until the first second with a ready replica; one that would wait
  longer than ``timeout`` times out (504): lost, and it leaves the queue at its timeout;
* the held requests are served in the second the replica is ready, on top of that
  second's own demand — so a queue larger than the first replica can serve still shows
  as under-provisioned demand then, not as demand lost at zero.

The summary then counts the demand at zero as delayed (how much, and its total, p99 and
longest wait) instead of unserved; what timed out or overflowed stays unserved. Requests
still held when the recording ends, not yet past their timeout, are reported apart.

Both engines give the same per-second ready replicas, so the hold is the same for both.
Replay decides on its tick grid; the daemon, poked by the activator, decides at the first
held request, up to one tick earlier (design: the poke).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Held:
    delayed: float          # requests held at zero and served once a replica was ready
    wait_total: float       # their summed wait, seconds
    wait_p99: float         # the 99th percentile of their wait (0 when none)
    wait_max: float
    timed_out: float        # held longer than the timeout: 504
    overflowed: float       # arrived with maxPendingRequests already held: 503
    held_at_end: float      # still held when the recording ends, within their timeout
    peak_pending: float     # the most requests held at once
    served: np.ndarray      # demand per second as served: held demand moved to its release

    @property
    def lost(self) -> float:
        return self.timed_out + self.overflowed

    def as_dict(self, max_pending: int, timeout: float) -> dict:
        return {
            "requests_delayed": self.delayed,
            "wait_seconds_total": self.wait_total,
            "wait_seconds_p99": self.wait_p99,
            "wait_seconds_max": self.wait_max,
            "requests_timed_out": self.timed_out,
            "requests_overflowed": self.overflowed,
            "requests_held_at_end": self.held_at_end,
            "peak_pending_requests": self.peak_pending,
            "max_pending_requests": max_pending,
            "timeout_seconds": timeout,
        }


def hold(demand: np.ndarray, ready: np.ndarray, *, max_pending: int,
         timeout: float) -> Held:
    """The activator's hold over per-second ``demand`` (NaN: unknown, nothing arrives)
    and ``ready`` replicas. Loops over the seconds with demand and no ready replica only
    (a few per scale from zero)."""
    served = np.array(demand, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cold = np.flatnonzero((ready == 0) & (served > 0))
    if not len(cold):
        return Held(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, served)
    n = len(served)
    warm = np.flatnonzero(ready > 0)
    after = np.searchsorted(warm, cold, "right")
    release = np.where(after < len(warm), warm[np.minimum(after, len(warm) - 1)], n)
    arriving = served[cold].tolist()
    served[cold] = 0.0

    delayed = wait_total = timed_out = overflowed = at_end = peak = 0.0
    waits: list[tuple[float, float]] = []     # (wait, requests)
    pending: deque[tuple[int, float]] = deque()
    pending_sum = 0.0
    stretch = -1
    for s, r, units in zip(cold.tolist(), release.tolist(), arriving):
        if r != stretch:        # a new stretch at zero: the queue was released or expired
            pending.clear()
            pending_sum = 0.0
            stretch = r
        while pending and s - pending[0][0] > timeout:   # timed out before s + 0.5
            pending_sum -= pending.popleft()[1]
        took = min(units, max(0.0, max_pending - pending_sum))
        overflowed += units - took
        if took <= 0:
            continue
        pending.append((s, took))
        pending_sum += took
        peak = max(peak, pending_sum)
        wait = r - s - 0.5     # from mid-second to the first second with a ready replica
        if wait > timeout:
            timed_out += took
        elif r >= n:
            at_end += took
        else:
            delayed += took
            wait_total += wait * took
            waits.append((wait, took))
            served[r] += took   # an unknown second stays unknown (NaN): in no demand figure
    return Held(delayed, wait_total, _weighted_quantile(waits, 0.99),
                max((w for w, _ in waits), default=0.0), timed_out, overflowed, at_end,
                peak, served)


def _weighted_quantile(pairs: list[tuple[float, float]], q: float) -> float:
    """The smallest wait at or below which at least ``q`` of the requests waited."""
    if not pairs:
        return 0.0
    pairs = sorted(pairs)
    total = sum(w for _, w in pairs)
    running = 0.0
    for value, weight in pairs:
        running += weight
        if running >= q * total - 1e-9 * total:
            return value
    return pairs[-1][0]
