"""scaler: Knative's request-driven autoscaling (KPA) for any Kubernetes workload.

Data flow, one module per stage:

    policy ──> sources (prometheus | recorded) ──> windows ──> kpa ──> predict (floor) ──> zero | keepalive
                                                                                              └──> actuators (kubernetes | simulated)

``scaling`` is one policy's per-tick pipeline, ``loop`` drives the daemon's ticks with an
injected clock, ``replay`` drives a recording, ``cli`` wires the objects together.
The pure stages (policy, windows, kpa, predict, zero, keepalive, scaling) do no I/O and
never read the clock.
"""

__version__ = "0.1.0"
