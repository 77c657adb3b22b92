"""scaler: Knative's request-driven autoscaling (KPA) for any Kubernetes workload.

Data flow, one module per stage:

    policy ──> sources (prometheus | recorded) ──> windows ──> predict ──> kpa ──> zero
                                                                            └──> actuators (kubernetes | simulated)

``loop`` drives the ticks with an injected clock, ``cli`` wires the objects together.
The pure stages (policy, windows, predict, kpa, zero) do no I/O and never read the clock.
"""

__version__ = "0.1.0"
