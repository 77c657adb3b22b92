"""Dry run: an actuator that wraps the live one, reads through it and writes nothing.

Everything the daemon does stays the same — queries, decisions, the tick's log line,
the metrics — except that a write becomes a ``would_scale`` log line here and ``scale``
answers False, so the loop's tick line says ``"action": "would_scale"``.
"""

from __future__ import annotations

import structlog

from scaler.actuators import Actuator, ScaleStatus
from scaler.policy import ScaleTargetRef

log = structlog.get_logger(__name__)


class DryRunActuator:
    """Implements :class:`~scaler.actuators.Actuator` over ``live`` without writing."""

    def __init__(self, live: Actuator) -> None:
        self.live = live

    def read(self, target: ScaleTargetRef, *, deadline: float | None = None) -> ScaleStatus:
        return self.live.read(target, deadline=deadline)

    def scale(self, target: ScaleTargetRef, replicas: int, *, resource_version: str,
              reason: str, message: str, deadline: float | None = None) -> bool:
        log.info("would_scale", target=str(target), replicas=replicas, reason=reason,
                 message=message)
        return False

    def warn(self, target: ScaleTargetRef, reason: str, message: str, *,
             deadline: float | None = None) -> bool:
        log.warning("would_warn", target=str(target), reason=reason, message=message)
        return False
