"""Knative's window averages for every tick of a recording at once (replay's fast path).

:class:`BatchWindows` gives exactly what feeding a :class:`scaler.decide.windows.BucketWindow`
sample by sample (and unknown second by unknown second) and querying it at each tick
gives: it replays the very same sequence of floating-point additions and subtractions
(``np.add.accumulate`` is strictly sequential), Go's rounding, and the same rules for
unknown seconds. A property test holds it to that.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import numpy as np

from bisect import bisect_left

from scaler.decide.windows import LINEAR, go_pow_int, smoothing_coefficient, weight_table


def _running_bucket_sums(values: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For each sample, the sum of its bucket's samples up to and including it, added
    left to right from 0.0 exactly as ``buckets[i] += v`` does one record at a time.
    ``rank`` is each sample's position within its bucket (0 for the first)."""
    sums = values.copy()
    # Samples sharing a bucket are rare; add them in order, one rank at a time.
    for r in range(1, int(rank.max(initial=0)) + 1):
        pos = np.flatnonzero(rank == r)
        sums[pos] = sums[pos - 1] + values[pos]
    return sums


class BatchWindows:
    """Precomputed bucket structure of a recording, shared by the stable and panic windows.

    ``times``/``values`` are the samples (ascending times); ``ticks`` the decision times
    (whole seconds, ascending); ``unknown`` the whole seconds whose value is unknown
    (ascending, none of them holding a sample). At tick T every sample with time <= T has
    been recorded and every unknown second <= T marked.
    """

    def __init__(self, times: np.ndarray, values: np.ndarray, ticks: np.ndarray,
                 unknown: np.ndarray | None = None) -> None:
        times = np.asarray(times, dtype=np.float64)
        self.unknown = np.zeros(0, dtype=np.int64) if unknown is None else \
            np.asarray(unknown, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float64)
        self.ticks = np.asarray(ticks, dtype=np.int64)
        ns = len(self.values)
        self.sample_bucket = np.floor(times).astype(np.int64)
        starts = np.ones(ns, dtype=bool)
        starts[1:] = self.sample_bucket[1:] != self.sample_bucket[:-1]
        if starts.all():
            # One sample per bucket (the usual recording): every bucket is its sample.
            self.sample_pos = np.arange(ns)
            self.bucket_first_sample = self.sample_pos
            self.bucket = self.sample_bucket
            self.running = self.values
            self.bucket_sum = self.values
        else:
            self.sample_pos = np.cumsum(starts) - 1          # index of each sample's bucket
            self.bucket_first_sample = np.flatnonzero(starts)
            self.bucket = self.sample_bucket[self.bucket_first_sample]   # written buckets
            rank = np.arange(ns) - self.bucket_first_sample[self.sample_pos]
            self.running = _running_bucket_sums(self.values, rank)
            self.bucket_sum = self.running[np.append(self.bucket_first_sample[1:], ns) - 1]
        # One sample in every second, no gaps: the common shape of a recording, whose
        # update sequence is a simple interleave (see _dense_running_totals).
        self.dense = (bool(ns) and len(self.bucket) == ns
                      and int(self.bucket[-1] - self.bucket[0]) == ns - 1)
        # Samples recorded by each tick; the newest of them and its bucket.
        self.recorded = np.searchsorted(times, self.ticks, "right")
        self.last_sample = np.maximum(self.recorded - 1, 0)
        self.last = self.sample_bucket[self.last_sample] if ns else np.zeros(len(ticks), np.int64)

    def averages(self, window: int, algorithm: str) -> tuple[np.ndarray, np.ndarray]:
        """(average per tick, no data per tick) for a window of ``window`` seconds:
        :meth:`BucketWindow.value <scaler.decide.windows.BucketWindow.value>` at every
        tick, None given as "no data" with an average of 0."""
        n = int(window)
        ticks = self.ticks
        avg = np.zeros(len(ticks), dtype=np.float64)
        has = self.recorded > 0
        if not len(self.values):
            return avg, np.ones(len(ticks), dtype=bool)
        last_sample, last = self.last_sample, self.last
        d = ticks - last
        empty = ~has | (d > n)

        bucket = self.bucket
        # A run (segment) restarts whenever a write comes a whole window after the last,
        # or ends an outage of unknown seconds that outweighs what came before it.
        restart = np.ones(len(bucket), dtype=bool)
        restart[1:] = np.diff(bucket) >= n
        if len(self.unknown):
            self._outage_restarts(n, restart)
        segment = np.cumsum(restart) - 1
        segment_start = bucket[restart]
        first = segment_start[segment[self.sample_pos[last_sample]]]

        live = has & (d < n)
        if algorithm == LINEAR:
            total = self._running_totals(n, segment, restart)[last_sample]
            ret = total
            gap = live & (d > 0)
            if gap.any():
                # Buckets that fell out of the window since the last write are still in
                # their slots; Knative subtracts them one by one, oldest first.
                idx = np.flatnonzero(gap)
                lo_b = np.maximum(first[idx], last[idx] + 1 - n)
                hi_b = ticks[idx] - n
                lo = np.searchsorted(bucket, lo_b, "left")
                hi = np.searchsorted(bucket, hi_b, "right")
                count = np.maximum(hi - lo, 0)
                sub = ret[idx]
                for r in range(int(count.max(initial=0))):
                    m = count > r
                    sub[m] = sub[m] - self.bucket_sum[lo[m] + r]
                ret[idx] = sub
            divisor = np.minimum((last - first).astype(np.float64) + 1.0,
                                 (n - np.maximum(d, 0)).astype(np.float64))
            with np.errstate(divide="ignore", invalid="ignore"):
                raw = ret / divisor
            avg = np.where(live, _round6(raw), 0.0)
            if len(self.unknown):
                self._known_linear(n, avg, empty, first, d, ret, divisor)
            return avg, empty
        avg = self._weighted(n, live, d, last, last_sample, first)
        if len(self.unknown):
            self._known_weighted(n, avg, empty, first)
        return avg, empty

    # ------------------------------------------------------------------ unknown seconds

    def _outage_restarts(self, n: int, restart: np.ndarray) -> None:
        """Add to ``restart`` the writes that end an outage — at least half a window of
        unknown seconds — outnumbering the known seconds of the window before it
        (``BucketWindow._outage_ends``). Each depends on where the run before it started,
        so they are found in order; there is one candidate per such outage."""
        unknown, bucket = self.unknown, self.bucket
        run = (np.searchsorted(unknown, bucket[1:], "left")
               - np.searchsorted(unknown, bucket[:-1], "right"))
        candidates = np.flatnonzero((2 * run >= n) & ~restart[1:]) + 1
        if not len(candidates):
            return
        # The latest whole-window restart at or before each write.
        since = np.where(restart, np.arange(len(bucket)), 0)
        np.maximum.accumulate(since, out=since)
        marks = unknown.tolist()
        ours = -1
        for j, r in zip(candidates.tolist(), run[candidates - 1].tolist()):
            first = int(bucket[max(int(since[j - 1]), ours)])
            bt = int(bucket[j])
            lo = max(first, bt - n)
            known = (bt - lo) - (bisect_left(marks, bt) - bisect_left(marks, lo))
            if r > known:
                restart[j] = True
                ours = j

    def _marked(self, n: int, empty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ticks with data whose window holds unknown seconds, unknown seconds <= each tick)."""
        unknown, ticks = self.unknown, self.ticks
        upto = np.searchsorted(unknown, ticks, "right")
        inside = upto > np.searchsorted(unknown, ticks - n + 1, "left")
        idx = np.flatnonzero(inside & ~empty)
        return idx, upto[idx]

    def _known_linear(self, n: int, avg: np.ndarray, empty: np.ndarray, first: np.ndarray,
                      d: np.ndarray, ret: np.ndarray, divisor: np.ndarray) -> None:
        idx, _ = self._marked(n, empty)
        if not len(idx):
            return
        unknown = self.unknown
        t, f = self.ticks[idx], first[idx]
        lo = np.maximum(f, t - n + 1)
        from_lo = np.searchsorted(unknown, lo, "left")
        mostly = 2 * (np.searchsorted(unknown, t, "right") - from_lo) > t - lo + 1
        live = d[idx] < n
        known = divisor[idx] - (np.searchsorted(unknown, self.last[idx], "right") - from_lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(live, _round6(ret[idx] / known), 0.0)
        none = mostly | (live & ~(known > 0))
        avg[idx] = np.where(none, 0.0, value)
        empty[idx] = none

    def _known_weighted(self, n: int, avg: np.ndarray, empty: np.ndarray,
                        first: np.ndarray) -> None:
        idx, upto = self._marked(n, empty)
        if not len(idx):
            return
        unknown = self.unknown
        weights, prefix = (np.array(a) for a in weight_table(n))
        t, f = self.ticks[idx], first[idx]
        lo = np.maximum(f, t - n + 1)
        from_lo = np.searchsorted(unknown, lo, "left")
        count = upto - from_lo
        mostly = 2 * count > t - lo + 1
        # The weight of the unknown seconds, added newest first.
        unknown_weight = np.zeros(len(idx))
        for r in range(int(count.max(initial=0))):
            m = count > r
            unknown_weight[m] = unknown_weight[m] + weights[t[m] - unknown[upto[m] - 1 - r]]
        known_weight = prefix[np.clip(t - f + 1, 0, n)] - unknown_weight
        with np.errstate(divide="ignore", invalid="ignore"):
            value = avg[idx] * prefix[n] / known_weight
        none = mostly | ~(known_weight > 0)
        avg[idx] = np.where(none, 0.0, value)
        empty[idx] = none

    def _running_totals(self, n: int, segment: np.ndarray, restart: np.ndarray) -> np.ndarray:
        """Knative's windowTotal after each sample, via the exact sequence of its updates."""
        bucket, bucket_sum = self.bucket, self.bucket_sum
        nb = len(bucket)
        ns = len(self.values)
        if self.dense:
            return _dense_running_totals(self.values, n)
        # Bucket w leaves the total when the write position first reaches w + n within
        # the same run; the subtraction happens before that bucket's first value is added,
        # in the order of w. leave_at is non-decreasing in w, so the subtractions are
        # already grouped by the bucket they precede.
        leave_at = np.searchsorted(bucket, bucket + n, "left")
        leaves = leave_at < nb
        leaves[leaves] = segment[leave_at[leaves]] == segment[leaves]
        sub_at = leave_at[leaves]
        subs_before = np.bincount(sub_at, minlength=nb)
        samples_in = np.diff(np.append(self.bucket_first_sample, ns))
        # Op stream: per bucket, its subtractions then its samples.
        offset = np.concatenate(([0], np.cumsum(subs_before + samples_in)[:-1]))
        ops = np.empty(len(sub_at) + ns, dtype=np.float64)
        if len(sub_at):
            first_sub = np.concatenate(([0], np.cumsum(subs_before)[:-1]))
            rank = np.arange(len(sub_at)) - first_sub[sub_at]
            ops[offset[sub_at] + rank] = -bucket_sum[leaves]
        sample_op = (offset + subs_before)[self.sample_pos] + (
            np.arange(ns) - self.bucket_first_sample[self.sample_pos])
        ops[sample_op] = self.values
        # Each run starts from an exact 0.0; accumulate runs one after the other.
        bounds = np.append(offset[restart], len(ops))
        if len(bounds) == 2:
            np.add.accumulate(ops, out=ops)
        else:
            for a, b in zip(bounds[:-1], bounds[1:]):
                np.add.accumulate(ops[a:b], out=ops[a:b])
        return ops[sample_op]

    def _weighted(self, n: int, live: np.ndarray, d: np.ndarray, last: np.ndarray,
                  last_sample: np.ndarray, first: np.ndarray) -> np.ndarray:
        m = smoothing_coefficient(n)
        decay = 1 - m
        avg = np.zeros(len(self.ticks), dtype=np.float64)
        bucket, bucket_sum = self.bucket, self.bucket_sum
        # The newest bucket may still be filling at the tick: use its running sum.
        newest = self.running[last_sample]
        # The distinct distances from the last write (0 <= d < n where live), in order.
        for dz in np.flatnonzero(np.bincount(d[live], minlength=1)).tolist():
            idx = np.flatnonzero(live & (d == dz))
            count = n - dz
            mult = np.empty(count, dtype=np.float64)
            mult[0] = m * go_pow_int(decay, dz) if dz > 0 else m
            for i in range(1, count):
                mult[i] = mult[i - 1] * decay
            ret = newest[idx] * mult[0]
            # Older buckets, newest first; zero buckets add exactly nothing, so skip them.
            last_i = last[idx]
            lo_b = np.maximum(first[idx], last_i - count + 1)
            if self.dense:   # bucket j is second bucket[0] + j
                lo, hi = lo_b - bucket[0], last_i - bucket[0]
            else:
                lo = np.searchsorted(bucket, lo_b, "left")
                hi = np.searchsorted(bucket, last_i, "left")   # excludes the newest bucket
            k = hi - lo
            if self.dense and count > 1:
                k = _strided_full_windows(ret, hi, k, count - 1, bucket_sum, mult)
            for r in range(int(k.max(initial=0))):
                sel = k > r
                pos = hi[sel] - 1 - r
                ret[sel] = ret[sel] + bucket_sum[pos] * mult[last_i[sel] - bucket[pos]]
            avg[idx] = ret
        return avg


# Shorter stretches of full windows than this are summed by the general gathers: each
# stretch costs one numpy call per bucket of the window, worth it only over many ticks.
STRIDED_MIN_TICKS = 32


def _strided_full_windows(ret: np.ndarray, hi: np.ndarray, k: np.ndarray, full: int,
                          bucket_sum: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """Add the older buckets' weighted terms to ``ret`` for the ticks whose window is full
    (``k == full`` older buckets, one per second: a dense recording) and whose newest
    bucket indices ``hi`` step evenly from tick to tick; return ``k`` with those ticks
    done (0). There the r-th older bucket of every tick is ``bucket_sum[hi - 1 - r]``, one
    strided view, and its multiplier ``mult[r + 1]`` one number: the same products added
    in the same order as the gathers do, one multiply-add per bucket for all the ticks."""
    at = np.flatnonzero(k == full)
    if len(at) < STRIDED_MIN_TICKS:
        return k
    h = hi[at]
    # Stretches of evenly stepping indices: break where the step changes.
    step = np.diff(h)
    breaks = np.flatnonzero(step[1:] != step[:-1]) + 1
    bounds = np.concatenate(([0], breaks + 1, [len(at)])) if len(step) else np.array([0, 1])
    k = k.copy()
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if b - a < STRIDED_MIN_TICKS:
            continue
        stride = int(h[a + 1] - h[a]) if b - a > 1 else 1
        if stride <= 0:
            continue
        rows = at[a:b]
        contiguous = int(rows[-1] - rows[0]) == b - a - 1
        acc = ret[rows[0]:rows[-1] + 1] if contiguous else ret[rows]
        first_hi, count = int(h[a]), b - a
        term = np.empty(count, dtype=np.float64)
        for r in range(full):
            start = first_hi - 1 - r
            np.multiply(bucket_sum[start:start + stride * (count - 1) + 1:stride], mult[r + 1],
                        out=term)
            np.add(acc, term, out=acc)
        if not contiguous:
            ret[rows] = acc
        k[rows] = 0
    return k


def _dense_running_totals(values: np.ndarray, n: int) -> np.ndarray:
    """windowTotal after each sample when there is exactly one sample per second and no
    gap: each new value is added right after the value n seconds older is taken out —
    the same operations, in the same order, as the general op stream."""
    ns = len(values)
    out = ns - n if ns > n else 0
    ops = np.empty(ns + out, dtype=np.float64)
    ops[: min(n, ns)] = values[:n]
    if out:
        ops[n::2] = -values[:out]
        ops[n + 1::2] = values[n:]
    np.add.accumulate(ops, out=ops)
    return np.concatenate((ops[: min(n, ns)], ops[n + 1::2])) if out else ops


def _round6(x: np.ndarray) -> np.ndarray:
    """Vectorised :func:`round6`."""
    with np.errstate(invalid="ignore"):
        y = x * 1e6
        t = np.trunc(y)
        t = np.where(np.abs(y - t) >= 0.5, t + np.copysign(1.0, y), t)
    return t / 1e6
