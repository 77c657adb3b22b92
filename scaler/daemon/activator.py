"""What the daemon does for policies with an ``activator`` block, mixed into its loop.

* **Metric.** ``metric: {source: activator}`` reads the activators (``activator_source``)
  instead of Prometheus; the query names the policy (``concurrency:checkout``). Their
  second T is read by T + 0.1 s, so such a policy's tick T runs then, not at T + 0.5 s.
* **Pokes.** An activator holding a request at zero pokes every daemon (``POST /v1/poke``).
  As Knative's autoscaler does with the stat an activator pushes, the loop records the
  poke's requests in flight into the policy's windows and, when its last decision was zero
  replicas, decides at once instead of at the next tick. Every replica records the poke, so
  a new leader's windows hold it too; only the leader writes.
* **The serve/proxy switch** (``mode: whenNeeded``), Knative's: after each decision the
  policy's public Service points at the pods when the target wants replicas and has burst
  capacity to spare (``want > 0`` and excess burst capacity ``>= 0``, with ``ready`` pods
  and ``targetBurstCapacity`` as Knative computes it), and at the activators otherwise.
  No decision (no data) keeps the current side. Only the leader switches, never for a
  paused target, and a dry run only logs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.decide.pipeline import TickResult, clamp
from scaler.sources import Reading

if TYPE_CHECKING:
    from scaler.actuators import ScaleStatus
    from scaler.daemon.loop import Target
    from scaler.sources import MetricSource


class _NoActivators:
    """The source for activator policies when the daemon was given no activator."""

    @staticmethod
    def query_for(policy: str, kind: str) -> str:
        return f"{kind}:{policy}"

    def read(self, query: str, start: float, end: float, *, deadline: float) -> Reading:
        return Reading(error="empty", detail="no activator to read: start the daemon with "
                                             "--activator-url or --activator-service")

    def history(self, query, start, end, step=1.0, *, deadline=None) -> Reading:
        return self.read(query, start, end, deadline=0.0)


def wants_serving(policy, result: TickResult) -> bool | None:
    """Knative's SKS mode: serve (True) when the clamped count is above zero and the excess
    burst capacity is not negative; proxy (False) otherwise; None without a decision."""
    decision = result.decision
    if not decision.valid:
        return None
    want = clamp(max(decision.desired_pods, result.floor), policy.min_replicas,
                 policy.max_replicas)
    return want > 0 and decision.excess_burst_capacity >= 0


# The activators are read just after each second (scaler.sources.activator); their
# second T is complete by T + 0.1, where Prometheus needs the loop's evaluation delay.
ACTIVATOR_EVALUATION_DELAY = 0.1


class ActivatorHooks:
    """Methods of :class:`~scaler.daemon.loop.Daemon` for the activator's side."""

    def _evaluation_delay(self, policy) -> float:
        """How long after tick T the loop processes it: the source's data for T must be in."""
        if policy.metric.source == "activator":
            return min(self.evaluation_delay, ACTIVATOR_EVALUATION_DELAY)
        return self.evaluation_delay

    def _metric_of(self, policy) -> tuple[MetricSource, str]:
        """The source a policy's load comes from, and what to ask it."""
        if policy.metric.source == "activator":
            source = self.activator_source or _NoActivators()
            return source, source.query_for(policy.name, policy.metric.type)
        return self.source, policy.metric.query

    def _take_pokes(self) -> None:
        """Record queued pokes; decide at once for the policies that were at zero."""
        if self.pokes is None:
            return
        due: dict[str, Target] = {}
        for poke in self.pokes.take():
            target = self.targets.get(poke.policy)
            if target is None:
                continue
            self.metrics.pokes.labels(target.name).inc()
            block = target.policy.activator
            if block is None:
                continue
            if self._last_replicas.get(target.name, 0) == 0 and poke.in_flight > 0:
                # At zero, what one activator has in flight is what it holds: no more than
                # its queue. The cap keeps a forged poke from scaling a target to its max.
                held = min(poke.in_flight, max(1, block.max_pending_requests))
                target.scaler.record(poke.received, float(held))
                due[target.name] = target
        for target in due.values():
            if self.stop.is_set():
                return
            now = self.clock.now()
            self.log.info("poked", policy=target.name, t=now)
            try:
                self.tick(target, now, refresh=False)
            except Exception:
                self.metrics.tick_errors.labels(target.name).inc()
                self.log.exception("poked tick failed; holding replicas", policy=target.name)

    def _after_tick(self, target: Target, status: ScaleStatus, result: TickResult,
                    act_by: float) -> None:
        self._last_replicas[target.name] = result.replicas
        policy = target.policy
        block = policy.activator
        if block is None or block.mode != "whenNeeded" or self.traffic is None:
            return
        if status.paused or (self.is_leader is not None and not self.is_leader()):
            return
        serve = wants_serving(policy, result)
        activators = self.activator_source.proxies() if self.activator_source else []
        try:
            side = self.traffic.point(policy, serve, activators, deadline=act_by)
        except Exception as exc:   # noqa: BLE001 (the switch must not fail the tick)
            reason = getattr(exc, "reason", type(exc).__name__)
            self.metrics.patch_errors.labels(policy.name, f"switch_{reason}").inc()
            self.log.error("traffic switch failed; the public Service keeps its endpoints",
                           policy=policy.name, reason=reason,
                           detail=getattr(exc, "detail", str(exc)))
            return
        if side is not None:
            self.metrics.activator_in_path.labels(policy.name).set(0 if side == "serve" else 1)
