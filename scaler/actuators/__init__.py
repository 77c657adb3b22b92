"""Actuators: where a decision goes.

One module per actuator, each behind :class:`Actuator`:

* ``kubernetes`` — the live daemon's actuator (the target's scale subresource);
* ``simulated``  — replay's workload model (start-up delay, ReplicaSet victim order).

Dry-run and replay are wiring choices: the decider never knows which actuator it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from scaler.policy import ScaleTargetRef


@dataclass(frozen=True)
class ScaleStatus:
    """What the actuator knows about the target right now."""

    replicas: int               # spec.replicas of the scale subresource (what we would patch)
    ready_replicas: int         # ready pods, from the target's status (the decider's ready_pods)
    resource_version: str = ""  # for optimistic concurrency on the next write
    paused: bool = False        # annotation scaler/paused: "true" on the target


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
    ) -> None:
        """Set spec.replicas, only if ``resource_version`` is still current (else Conflict).

        ``reason`` is ScaledUp, ScaledDown or ScaledToZero and ``message`` explains the
        decision; a live actuator records both as a Kubernetes Event on the target.
        """
