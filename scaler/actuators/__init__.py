"""Actuators: where a decision goes.

Enters: a target and a replica count. Leaves: the target's :class:`ScaleStatus`, and
a write (or, for a dry run, a report of the write). One module per actuator, each
behind :class:`Actuator`:

* ``kubernetes`` — the live daemon's actuator (the target's scale subresource), with
  ``events`` recording its Kubernetes Events as client-go does;
* ``simulated``  — replay's workload model (start-up delay, ReplicaSet victim order),
  and an actuator over it for running the daemon's loop on a recording;
* ``dry_run``    — wraps another actuator: reads pass through, writes are only logged.

Dry-run and replay are wiring choices (``scaler.app``): the loop never knows which
actuator it feeds. May import: ``scaler.kube``, ``scaler.clock``, ``scaler.policy``
(for :class:`~scaler.policy.ScaleTargetRef`) and the standard library; never a source,
the decider or the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from scaler.policy import ScaleTargetRef


@dataclass(frozen=True)
class ScaleStatus:
    """What the actuator knows about the target right now."""

    replicas: int               # spec.replicas of the scale subresource (what we would patch)
    ready_replicas: int         # ready pods, from the target's status (the decider's ready_pods)
    resource_version: str = ""  # for optimistic concurrency on the next write
    paused: bool = False        # annotation scaler/paused: "true" on the target
    # Who else last set spec.replicas (its managedFields manager), "" when it was us or
    # nobody knows: provenance, not state, so it takes no part in comparisons.
    replicas_owner: str = field(default="", compare=False)


class ActuatorError(Exception):
    """A failure that is specific to one target (e.g. 403, 404); other policies keep running."""

    def __init__(self, target: ScaleTargetRef, reason: str, detail: str) -> None:
        super().__init__(f"{target}: {reason}: {detail}")
        self.target = target
        self.reason = reason      # label value for scaler_patch_errors_total
        self.detail = detail


class Conflict(ActuatorError):
    """The target changed since it was read (HTTP 409): re-read and decide again."""

    def __init__(self, target: ScaleTargetRef, detail: str = "resourceVersion changed") -> None:
        super().__init__(target, "conflict", detail)


class Actuator(Protocol):
    def read(self, target: ScaleTargetRef, *, deadline: float | None = None) -> ScaleStatus:
        """Read the target's scale and readiness; give up (retries included) by
        ``deadline``, a ``Clock.monotonic()`` value."""

    def scale(
        self,
        target: ScaleTargetRef,
        replicas: int,
        *,
        resource_version: str,
        reason: str,
        message: str,
        deadline: float | None = None,
    ) -> bool:
        """Set spec.replicas, only if ``resource_version`` is still current (else Conflict).

        ``reason`` is ScaledUp, ScaledDown or ScaledToZero and ``message`` explains the
        decision; a live actuator records both as a Kubernetes Event on the target.
        Returns True when the target now has ``replicas`` (written, or already so), False
        when the actuator only reported the write (a dry run).
        """

    def warn(self, target: ScaleTargetRef, reason: str, message: str, *,
             deadline: float | None = None) -> bool:
        """Tell the target's owners something is wrong (a Kubernetes Warning Event such
        as FailedGetScale); best effort, never raises. True when recorded."""
