"""Replay: a recording through the decision code the daemon runs, against a simulated
workload, and what that would have cost.

Enters: a policy, a recording's samples (``scaler.sources.recording``) and the simulated
workload's start-up delay (``scaler.actuators.simulated``). Leaves: a
:class:`~scaler.replay.engine.ReplayResult` — per-tick decisions, windows, panic, ready
replicas — and the ``report`` built from it. ``engine`` holds the per-tick reference
engine and the fast one; ``scaler.app`` wires a replay together.

May import: numpy, ``scaler.decide``, ``scaler.policy``, ``scaler.actuators.simulated``;
never the daemon, a live source or a live actuator.
"""
