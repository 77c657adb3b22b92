"""One policy's per-tick pipeline: windows → kpa decider → min/max and scale to zero.

:class:`PolicyScaler` holds the state a policy needs between ticks (its two windows, the
decider's state, the scale-to-zero clock) and does no I/O: the daemon's loop feeds it
metric samples and the target's ready count, replay feeds it a recording. Both therefore
run the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaler import kpa, zero
from scaler.policy import Policy
from scaler.windows import BucketWindow


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


class PolicyScaler:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.spec = policy.decider_spec()
        self.stable_window = BucketWindow(int(policy.stable_window), policy.window_algorithm)
        self.panic_window = BucketWindow(int(policy.panic_window), policy.window_algorithm)
        self.decider_state: kpa.DeciderState | None = None
        self.zero_state = zero.ZeroState()

    def record(self, t: float, value: float) -> None:
        """One metric sample (the workload's total load at time ``t``) into both windows."""
        self.stable_window.record(t, value)
        self.panic_window.record(t, value)

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
        replicas = current
        if decision.valid:
            replicas, self.zero_state = zero.replicas_to_set(
                decision.desired_pods, current, now, self.zero_state,
                min_replicas=p.min_replicas, max_replicas=p.max_replicas,
                grace_period=p.scale_to_zero_grace_period,
            )
        return TickResult(
            now=now, stable=stable, panic=panic, ready_pods=ready_pods, current=current,
            decision=decision, replicas=replicas,
            in_panic=self.decider_state.panic_time is not None,
            grace_remaining=zero.grace_remaining(
                self.zero_state, now, p.scale_to_zero_grace_period),
        )

    def same_windows(self, policy: Policy) -> bool:
        """Whether ``policy`` can keep this scaler's window contents (same data, same sizes)."""
        p = self.policy
        return (policy.metric.query == p.metric.query
                and policy.stable_window == p.stable_window
                and policy.panic_window == p.panic_window
                and policy.window_algorithm == p.window_algorithm)

    def update_policy(self, policy: Policy) -> None:
        """Swap in a new policy, keeping windows and decider state (Knative's Update()).

        Only valid when :meth:`same_windows` is true; otherwise build a new PolicyScaler.
        """
        if not self.same_windows(policy):
            raise ValueError(f"policy {policy.name}: windows changed; build a new PolicyScaler")
        self.policy = policy
        self.spec = policy.decider_spec()
