"""The online forecaster the daemon (and replay's per-tick engine) feeds sample by sample."""

from __future__ import annotations

import math

from scaler.decide.predict.advice import NO_HISTORY, Advice, new_core, stale
from scaler.policy import Policy, PredictionPolicy


class Forecaster:
    """Online forecaster: ``observe`` every sample in time order, ``advise`` at each tick.

    Feed only samples with time <= now before ``advise(now)`` (the loop and the replay do),
    so each tick's advice uses its past only. A refit runs inside the ``observe`` call that
    completes a bucket (see benchmarks/forecast_speed.py for its cost).
    """

    def __init__(self, spec: PredictionPolicy, target_value: float | None = None) -> None:
        self.spec = spec
        self._core = new_core(spec, target_value)
        self._bucket: int | None = None
        self._sum = 0.0      # of the bucket's samples
        self._count = 0      # seconds with samples in the bucket
        self._second: int | None = None

    @classmethod
    def for_policy(cls, policy: Policy) -> Forecaster:
        """The policy's forecaster; seasonal-level costs its band at the decider's target
        value."""
        return cls(policy.prediction, policy.target_value)

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
            return NO_HISTORY
        age = now - core.end
        if age >= self.spec.stale_seconds:
            return stale(core.advice, age)
        return core.advice

    @property
    def parameters(self) -> tuple[float, ...] | float | None:
        """For logs: the fitted parameters (holt-winters: α, β*, γ*_i; ewma: α), or the
        seasonal-level band's coverage in force."""
        return self._core.parameters
