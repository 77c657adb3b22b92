"""One policy's per-tick pipeline: windows → kpa decider → forecast floor → min/max and
scale to zero.

:class:`PolicyScaler` holds the state a policy needs between ticks (its two windows, the
decider's state, the forecaster when prediction is on, the scale-to-zero clock) and does
no I/O: the daemon's loop feeds it metric samples and the target's ready count, replay
feeds it a recording. Both therefore run the same decisions.

Prediction only raises a floor under the decider's count — want = max(decider, floor) —
before the min/max clamps; it never lowers a decision and never changes the decider's
own state. Scale to zero is the fixed grace period (:mod:`scaler.zero`) or the idle-time
histogram (:mod:`scaler.keepalive`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scaler import kpa, zero
from scaler.policy import Policy, PredictionPolicy
from scaler.windows import BucketWindow


def prediction_spec(p: PredictionPolicy):
    """The forecaster's spec for a policy's prediction block (imports numpy and scipy)."""
    from scaler import predict

    return predict.PredictionSpec(
        enabled=p.enabled, mode=p.mode, model=p.model, seasonality=p.seasonality,
        horizon=p.horizon, min_history=p.min_history, quantile=p.quantile,
        refit_interval=p.refit_interval)


def initial_zero_state(policy: Policy) -> Any:
    if policy.keep_alive == "histogram":
        from scaler import keepalive

        return keepalive.KeepAliveState()
    return zero.ZeroState()


def replicas_for(policy: Policy, want: int, current: int, now: float,
                 state: Any) -> tuple[int, Any]:
    """Min/max clamps and scale to zero for the (floored) decider count ``want``."""
    if policy.keep_alive == "histogram":
        from scaler import keepalive

        # Pre-warm brings back initialReplicas, early by the forecast horizon (the
        # workload's start-up time) so they are ready when the request is expected.
        return keepalive.keepalive_step(
            state, now, zero.clamp(want, policy.min_replicas, policy.max_replicas), current,
            fallback_grace=policy.scale_to_zero_grace_period,
            prewarm_replicas=max(1, policy.initial_replicas), lead=policy.prediction.horizon)
    return zero.replicas_to_set(want, current, now, state, min_replicas=policy.min_replicas,
                                max_replicas=policy.max_replicas,
                                grace_period=policy.scale_to_zero_grace_period)


def settled(policy: Policy, state: Any, now: float, replicas: int) -> bool:
    """Whether the scale-to-zero state gives the same answer at every later tick with the
    same want (no clock running): replay's fast engine may then skip ticks."""
    if policy.keep_alive == "histogram":
        if state.idle_since is None:
            return True
        return replicas == 0 and now - state.idle_since >= state.windows.keepalive
    return state.zero_since is None or replicas == 0


def grace_remaining(policy: Policy, state: Any, now: float) -> float | None:
    if policy.keep_alive == "histogram":
        if state.idle_since is None:
            return None
        return max(0.0, state.windows.keepalive - (now - state.idle_since))
    return zero.grace_remaining(state, now, policy.scale_to_zero_grace_period)


@dataclass(frozen=True)
class TickResult:
    """Everything one tick decided, with the inputs that explain it."""

    now: float
    stable: float | None          # None: no data in the stable window (or held)
    panic: float | None
    ready_pods: int | None
    current: int                  # replicas before the tick
    decision: kpa.Decision        # the decider's output, before min/max and grace
    replicas: int                 # replicas to set after this tick
    in_panic: bool
    grace_remaining: float | None  # seconds until the last replica goes, if counting
    advice: Any = None            # the forecaster's Advice, when prediction is on
    floor: int = 0                # the replica floor the forecast asked for (act mode)


class PolicyScaler:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.spec = policy.decider_spec()
        self.stable_window = BucketWindow(int(policy.stable_window), policy.window_algorithm)
        self.panic_window = BucketWindow(int(policy.panic_window), policy.window_algorithm)
        self.decider_state: kpa.DeciderState | None = None
        self.zero_state = initial_zero_state(policy)
        self.forecaster = None
        if policy.prediction.enabled:
            from scaler import predict

            self.forecaster = predict.Forecaster(prediction_spec(policy.prediction))

    def record(self, t: float, value: float) -> None:
        """One metric sample (the workload's total load at time ``t``) into both windows."""
        self.stable_window.record(t, value)
        self.panic_window.record(t, value)
        if self.forecaster is not None:
            self.forecaster.observe(t, value)

    def tick(self, now: float, ready_pods: int | None, current: int, *,
             hold: bool = False) -> TickResult:
        """Decide at ``now``. ``hold`` forces "no data" (e.g. the metric query failed)."""
        p = self.policy
        if self.decider_state is None:
            # Knative builds its decider with the ready count it first sees.
            self.decider_state = kpa.initial_state(self.spec, ready_pods, now)
        empty = hold or self.stable_window.is_empty(now)
        stable = None if empty else self.stable_window.average(now)
        panic = None if empty else self.panic_window.average(now)
        decision, self.decider_state = kpa.decide(
            self.spec, self.decider_state, now, ready_pods, stable, panic
        )
        advice, floor = None, 0
        if self.forecaster is not None:
            from scaler import predict

            advice = self.forecaster.advise(now)
            if p.prediction.mode == "act":
                floor = predict.replica_floor(advice, self.spec.target_value)
        replicas = current
        if decision.valid:
            replicas, self.zero_state = replicas_for(
                p, max(decision.desired_pods, floor), current, now, self.zero_state)
        return TickResult(
            now=now, stable=stable, panic=panic, ready_pods=ready_pods, current=current,
            decision=decision, replicas=replicas,
            in_panic=self.decider_state.panic_time is not None,
            grace_remaining=grace_remaining(p, self.zero_state, now),
            advice=advice, floor=floor,
        )

    def same_windows(self, policy: Policy) -> bool:
        """Whether ``policy`` can keep this scaler's window contents (same data, same sizes)."""
        p = self.policy
        return (policy.metric.query == p.metric.query
                and policy.stable_window == p.stable_window
                and policy.panic_window == p.panic_window
                and policy.window_algorithm == p.window_algorithm)

    def update_policy(self, policy: Policy) -> bool:
        """Swap in a new policy, keeping windows and decider state (Knative's Update()).

        A changed prediction block gets a fresh forecaster and a changed keep-alive a fresh
        scale-to-zero state; returns True when the forecaster was replaced (its history
        must be read again). Only valid when :meth:`same_windows` is true; otherwise build
        a new PolicyScaler.
        """
        if not self.same_windows(policy):
            raise ValueError(f"policy {policy.name}: windows changed; build a new PolicyScaler")
        old = self.policy
        self.policy = policy
        self.spec = policy.decider_spec()
        if policy.keep_alive != old.keep_alive:
            self.zero_state = initial_zero_state(policy)
        if policy.prediction == old.prediction:
            return False
        self.forecaster = None
        if policy.prediction.enabled:
            from scaler import predict

            self.forecaster = predict.Forecaster(prediction_spec(policy.prediction))
        return self.forecaster is not None
