"""One policy's per-tick pipeline: windows → kpa decider → forecast and schedule floors →
min/max and scale to zero.

:class:`PolicyScaler` is the whole pipeline: its two windows, the forecaster when
prediction is on, and a :class:`Decider` for everything after the windows. It does no
I/O: the daemon's loop feeds it metric samples and the target's ready count, replay's
per-tick engine feeds it a recording. Replay's fast engine computes the windows and the
forecast for a whole recording at once and drives the same :class:`Decider`, so all
three decide with the same code.

Prediction only raises a floor under the decider's count — want = max(decider, floor) —
before the min/max clamps; it never lowers a decision and never changes the decider's
own state. Scale to zero is the policy's strategy from :mod:`scaler.decide.zero`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scaler.decide import kpa, schedules, zero
from scaler.decide.windows import BucketWindow
from scaler.policy import Policy

if TYPE_CHECKING:
    from scaler.decide.predict import Advice, Forecaster


def decider_spec(policy: Policy) -> kpa.DeciderSpec:
    """The spec Knative's MakeDecider would build for this policy: at the defaults a
    target value of 100 × 70 % = 70, total value 100, panic at 2.0."""
    return kpa.DeciderSpec(
        target_value=policy.target_value,
        total_value=policy.target,
        target_burst_capacity=policy.target_burst_capacity,
        panic_threshold=policy.panic_threshold_percentage / 100.0,
        max_scale_up_rate=policy.max_scale_up_rate,
        max_scale_down_rate=policy.max_scale_down_rate,
        stable_window=policy.stable_window,
        scale_down_delay=policy.scale_down_delay,
        activation_scale=policy.activation_replicas,
        reachable=True,
    )


def clamp(count: int, min_replicas: int, max_replicas: int) -> int:
    """Knative's applyBounds: raise to the minimum, then cap at the maximum (0 = none).
    6 within 1..4 → 4; 0 within 2..0 → 2."""
    if count < min_replicas:
        count = min_replicas
    if max_replicas and count > max_replicas:
        count = max_replicas
    return count


class Decider:
    """Everything after the windows for one policy: the kpa decider (its state built at
    the first tick, as Knative builds it with the first ready count it sees), the
    forecast floor, the min/max clamps and scale to zero."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.spec = decider_spec(policy)
        self.state: kpa.DeciderState | None = None
        self.zero = zero.for_policy(policy)
        self._before = kpa.DeciderState()      # the decider's state before the last step
        # The last valid step: ready pods, replicas before and after it, stable average.
        self._last_valid: tuple[int, int, int, float] | None = None

    @property
    def in_panic(self) -> bool:
        state = self.state
        return state is not None and state.panic_time is not None

    def step(self, now: float, ready_pods: int | None, current: int, stable: float | None,
             panic: float | None, floor: int = 0) -> tuple[kpa.Decision, int]:
        """Decide at ``now`` on the window averages (``stable`` None: no data); returns
        the decider's decision and the replicas to set (``current`` when invalid)."""
        state = self.state
        if state is None:
            state = kpa.initial_state(self.spec, ready_pods, now)
        self._before = state
        decision, self.state = kpa.decide(self.spec, state, now, ready_pods, stable, panic)
        if not decision.valid:
            self._last_valid = None
            return decision, current
        p = self.policy
        want = clamp(max(decision.desired_pods, floor), p.min_replicas, p.max_replicas)
        replicas = self.zero.replicas(want, current, now, ready_pods)
        self._last_valid = (ready_pods, current, replicas, stable)
        return decision, replicas

    def steady(self, now: float) -> kpa.Steady | None:
        """Whether the last :meth:`step` is repeated exactly by every later tick with the
        same forecast floor and raw counts within the returned
        :class:`~scaler.decide.kpa.Steady`: it was valid, changed no replica count, every
        replica was ready (so the next ticks see the same ready count), the decider is at
        a fixed point and scale to zero is settled. Replay's fast engine skips such ticks,
        then calls :meth:`fast_forward`."""
        if self._last_valid is None or self.state is None:
            return None
        ready_pods, current, replicas, stable = self._last_valid
        if not (replicas == current == ready_pods and self.zero.settled(now, replicas)):
            return None
        return kpa.steady(self.spec, self._before, self.state, ready_pods, stable)

    def fast_forward(self, now: float) -> None:
        """Bring the state to what repeating the steady tick up to ``now`` would leave."""
        assert self.state is not None
        self.state = kpa.fast_forward(self.spec, self.state, now)

    def remaining(self, now: float) -> float | None:
        return self.zero.remaining(now)

    def update_policy(self, policy: Policy) -> None:
        """Knative's Update(): a new spec, the same state; scale to zero keeps its clock
        when the strategy is unchanged."""
        self.policy = policy
        self.spec = decider_spec(policy)
        self.zero = zero.for_policy(policy, self.zero)


@dataclass(frozen=True)
class TickResult:
    """Everything one tick decided, with the inputs that explain it."""

    now: float
    stable: float | None          # None: no data in the stable window (or held)
    panic: float | None           # None: no data in the panic window (the decider read stable)
    ready_pods: int | None
    current: int                  # replicas before the tick
    decision: kpa.Decision        # the decider's output, before min/max and grace
    replicas: int                 # replicas to set after this tick
    in_panic: bool
    grace_remaining: float | None  # seconds until the last replica goes, if counting
    advice: Advice | None = None  # the forecaster's advice, when prediction is on
    floor: int = 0                # the replica floor the forecast asked for (act mode)
    schedule_floor: int = 0       # the floor of the open schedule windows (spec.schedules)
    schedule: str | None = None   # the schedule that sets it ("0 8 * * 1-5 Europe/Berlin")


def _forecaster(policy: Policy) -> Forecaster | None:
    if not policy.prediction.enabled:
        return None
    from scaler.decide.predict import Forecaster   # numpy and scipy: only when asked for

    return Forecaster.for_policy(policy)


class PolicyScaler:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.stable_window = BucketWindow(policy.stable_window, policy.window_algorithm)
        self.panic_window = BucketWindow(policy.panic_window, policy.window_algorithm)
        self.decider = Decider(policy)
        self.forecaster = _forecaster(policy)

    def record(self, t: float, value: float) -> None:
        """One metric sample (the workload's total load at time ``t``) into both windows."""
        self.stable_window.record(t, value)
        self.panic_window.record(t, value)
        if self.forecaster is not None:
            self.forecaster.observe(t, value)

    def mark_unknown(self, second: int) -> None:
        """A whole second whose load is unknown: never a zero, in either window."""
        self.stable_window.mark_unknown(second)
        self.panic_window.mark_unknown(second)

    def observe(self, samples: Iterable[tuple[float, float]], unknown: Iterable[int] = ()) -> None:
        """Samples and unknown seconds (each ascending) into the windows in time order,
        as the windows need them: an unknown second before any later sample."""
        marks = iter(unknown)
        mark = next(marks, None)
        for t, value in samples:
            while mark is not None and mark < t:
                self.mark_unknown(mark)
                mark = next(marks, None)
            self.record(t, value)
        while mark is not None:
            self.mark_unknown(mark)
            mark = next(marks, None)

    def tick(self, now: float, ready_pods: int | None, current: int, *,
             hold: bool = False) -> TickResult:
        """Decide at ``now``. ``hold`` forces "no data" (e.g. the metric query failed).

        No data in the stable window holds; no data in the panic window alone (its seconds
        unknown) lets the decider read the stable average in its place."""
        stable = None if hold else self.stable_window.value(now)
        panic = None if stable is None else self.panic_window.value(now)
        advice, floor = None, 0
        if self.forecaster is not None:
            from scaler.decide.predict import replica_floor

            advice = self.forecaster.advise(now)
            if self.policy.prediction.mode == "act":
                floor = replica_floor(advice, self.decider.spec.target_value)
        # A schedule's floor joins the forecast's: under the decider, before the clamps.
        scheduled, schedule = (schedules.active(self.policy.schedules, now)
                               if self.policy.schedules else (0, None))
        decision, replicas = self.decider.step(now, ready_pods, current, stable, panic,
                                               max(floor, scheduled))
        return TickResult(
            now=now, stable=stable, panic=panic, ready_pods=ready_pods, current=current,
            decision=decision, replicas=replicas, in_panic=self.decider.in_panic,
            grace_remaining=self.decider.remaining(now), advice=advice, floor=floor,
            schedule_floor=scheduled, schedule=None if schedule is None else str(schedule),
        )

    def same_windows(self, policy: Policy) -> bool:
        """Whether ``policy`` can keep this scaler's window contents (same data, same sizes)."""
        p = self.policy
        return (policy.metric.query == p.metric.query
                and policy.metric.select == p.metric.select
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
        self.decider.update_policy(policy)
        if policy.prediction == old.prediction:
            return False
        self.forecaster = _forecaster(policy)
        return self.forecaster is not None
